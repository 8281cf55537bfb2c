// Self-test of the CUDA backend, in the style of ggml's test-backend-ops:
//   host:   the shared block decoders (qformats.cuh) run on the CPU against
//           every dequant golden of ../shared/conformance/dequant, bit-exact;
//   device: every op of infer_cuda_ops() against the kernel goldens
//           (independent double-precision references) and against the CPU
//           op table on random inputs of Qwen2.5-0.5B shapes (hidden 896,
//           14/2 heads of 64, FFN 4864, vocab 151936), plus a planted
//           out-of-bounds write that the guard regions must catch.
// Usage: cuda_selftest [--host-only] [SHARED_DIR]   (default ../shared)
// Prints one PASS/FAIL line per check and a summary; exit 1 on any FAIL,
// 0 with "skipped" lines when the data or the device is absent.
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vector>
#include <string>
#include <algorithm>
#include <type_traits>

extern "C" {
#include "infer/backend.h"
#include "infer/quant.h"
}
#include "infer_cuda.h"
#include "kernels.cuh"
#include "qfast.cuh"
#include "minigguf.h"

extern "C" {
extern const uint8_t iq_ksigns[128];
extern const uint64_t iq2xxs_grid[256];
extern const uint64_t iq2xs_grid[512];
extern const uint64_t iq2s_grid[1024];
extern const uint32_t iq3xxs_grid[256];
extern const uint32_t iq3s_grid[512];
extern const uint64_t iq1s_grid[2048];
extern const int8_t kvalues_iq4nl[16];
extern const int8_t kvalues_fp4[16];
}

int cuda_selftest_oob(infer_error *err);

static int g_pass, g_fail, g_skip;

static void result(int ok, const char *name, const char *fmt, ...)
{
	va_list ap;

	printf("%s %-44s ", ok ? "PASS" : "FAIL", name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (ok)
		g_pass++;
	else
		g_fail++;
}

static void skipped(const char *name, const char *why)
{
	printf("SKIP %-44s %s\n", name, why);
	g_skip++;
}

struct errstat {
	double nmse, max_rel;
	int64_t nan, worst;
};

// nmse = sum (a-b)^2 / sum b^2; max_rel = max|a-b| / max|b|; NaN in a counts.
static errstat compare(const float *a, const float *ref, int64_t n)
{
	double num = 0, den = 0, mx = 0, mref = 0;
	errstat s = { 0, 0, 0, -1 };

	for (int64_t i = 0; i < n; i++) {
		if (isnan(a[i]) || isinf(a[i]) != isinf(ref[i])) {
			s.nan++;
			continue;
		}
		double d = (double)a[i] - ref[i];
		num += d * d;
		den += (double)ref[i] * ref[i];
		if (fabs(d) > mx) {
			mx = fabs(d);
			s.worst = i;
		}
		mref = fmax(mref, fabs((double)ref[i]));
	}
	s.nmse = den > 0 ? num / den : num;
	s.max_rel = mref > 0 ? mx / mref : mx;
	return s;
}

static std::vector<std::string> list_dir(const std::string &dir, const char *prefix)
{
	std::vector<std::string> v;
	DIR *d = opendir(dir.c_str());
	struct dirent *e;

	if (!d)
		return v;
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, prefix, strlen(prefix)) && strstr(e->d_name, ".gguf"))
			v.push_back(e->d_name);
	closedir(d);
	std::sort(v.begin(), v.end());
	return v;
}

static iq_tabs host_tabs(void)
{
	iq_tabs t = { iq_ksigns, iq2xxs_grid, iq2xs_grid, iq2s_grid, iq3xxs_grid,
		      iq3s_grid, iq1s_grid, kvalues_iq4nl, kvalues_fp4 };
	return t;
}

template <typename T> static void host_decode(const uint8_t *src, float *dst, int64_t n)
{
	iq_tabs t = host_tabs();
	for (int64_t gi = 0; gi < n / T::G; gi++)
		T::deq(src + (gi / (T::BS / T::G)) * T::TS, (int)(gi % (T::BS / T::G)), dst + gi * T::G, t);
}

static int host_dequant(uint32_t type, const uint8_t *src, float *dst, int64_t n)
{
	int ok = 0;
#define H(T)                              \
	do {                              \
		host_decode<T>(src, dst, n); \
		ok = 1;                   \
	} while (0)
	QTYPE_DISPATCH(type, H)
#undef H
	return ok;
}

static int64_t bits_mismatch(const float *a, const float *b, int64_t n, int64_t *first)
{
	int64_t bad = 0;
	*first = -1;
	for (int64_t i = 0; i < n; i++)
		if (memcmp(&a[i], &b[i], 4)) {
			if (*first < 0)
				*first = i;
			bad++;
		}
	return bad;
}

// Golden dequant files through a decoder (host or the device op table).
static void dequant_goldens(const std::string &dir, const infer_ops *ops)
{
	std::vector<std::string> files = list_dir(dir, "");
	int files_ok = 0, files_bad = 0, proved = 0;
	const char *who = ops ? "cuda" : "host";

	if (files.empty()) {
		skipped("dequant goldens", "skipped: reference set not found");
		return;
	}
	for (auto &fn : files) {
		mg_file *f = mg_open((dir + "/" + fn).c_str());
		if (!f)
			continue;
		const mg_tensor *b = mg_tensor_get(f, "blocks"), *e = mg_tensor_get(f, "expected");
		if (!b || !e) {
			mg_close(f);
			continue;
		}
		std::vector<float> out(e->nel);
		infer_error err = {};
		int ok;
		if (ops)
			ok = ops->dequant(b->type, b->data, out.data(), e->nel, &err) == 0;
		else
			ok = host_dequant(b->type, b->data, out.data(), e->nel);
		char name[96];
		snprintf(name, sizeof(name), "%s dequant %s", who, fn.c_str());
		if (!ok) {
			result(0, name, "error: %s", err.msg);
			files_bad++;
			mg_close(f);
			continue;
		}
		int64_t first, bad = bits_mismatch(out.data(), (const float *)e->data, e->nel, &first);
		if (bad) {
			float ev;
			memcpy(&ev, (const float *)e->data + first, 4);
			result(0, name, "%lld of %lld elements differ, first [%lld] got %.9g want %.9g",
			       (long long)bad, (long long)e->nel, (long long)first,
			       (double)out[first], (double)ev);
			files_bad++;
		} else {
			files_ok++;
		}
		// Prove once that the comparison can fail: one flipped bit is found.
		if (!proved) {
			out[e->nel / 2] = nextafterf(out[e->nel / 2], INFINITY);
			proved = 1;
			result(bits_mismatch(out.data(), (const float *)e->data, e->nel, &first) == 1,
			       "bit-exact compare detects a 1-ulp change", "(%s)", fn.c_str());
		}
		mg_close(f);
	}
	char name[64];
	snprintf(name, sizeof(name), "%s dequant goldens", who);
	result(files_bad == 0, name, "%d files bit-exact, %d differ", files_ok, files_bad);
}

// The wide-load decoders of the decode mat-vec (qfast.cuh) on the host and
// on the device (their device code differs: conversions without I2F)
// against the golden values, bit for bit: they must equal the generic ones.
template <typename T> static __global__ void qfast_kernel(const uint8_t *src, float *dst, int64_t n)
{
	const int64_t gi = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
	if (gi < n / 8)
		qfast<T>::deq(src + (gi * 8 / T::BS) * T::TS, (int)(gi % (T::BS / 8)), dst + gi * 8,
			      iq_tabs{});
}

template <typename T>
static int qfast_run(const uint8_t *src, float *dst, int64_t n, bool dev)
{
	const size_t nbytes = (size_t)(n / T::BS) * T::TS;

	if (!dev) {
		iq_tabs t = host_tabs();
		for (int64_t gi = 0; gi < n / 8; gi++)
			qfast<T>::deq(src + (gi * 8 / T::BS) * T::TS, (int)(gi % (T::BS / 8)),
				      dst + gi * 8, t);
		return 1;
	}
	uint8_t *ds = NULL;
	float *dd = NULL;
	bool ok = cudaMalloc(&ds, nbytes) == cudaSuccess && cudaMalloc(&dd, n * 4) == cudaSuccess &&
		  cudaMemcpy(ds, src, nbytes, cudaMemcpyHostToDevice) == cudaSuccess;
	if (ok) {
		qfast_kernel<T><<<(unsigned)((n / 8 + 127) / 128), 128>>>(ds, dd, n);
		ok = cudaMemcpy(dst, dd, n * 4, cudaMemcpyDeviceToHost) == cudaSuccess;
	}
	cudaFree(ds);
	cudaFree(dd);
	return ok;
}

/* qfast<T>::dot (the scale applied once per group) against the sum of the
 * decoded weights times x, over every group of the golden blocks with x
 * from a fixed PRNG: worst |dot - sum| / sum |w x|. For q4_K (w = dl * v -
 * ml, dot = dl * sum v x - ml * sum x) the magnitude is that of the two
 * terms, sum (|dl v| + |ml|) |x|: near-zero weights from large terms cancel
 * there by design. The constant offsets of q5_0, q6_K and q8_0 (-16, -32,
 * -128) are not taken out that way: byte_f subtracts them from each quant
 * exactly, so dot sums exactly the weights' own terms and sum |w x| stays
 * their magnitude (no cancellation to allow for). xscale != 1 feeds dot a
 * scaled x (the proof that the comparison fails). */
template <typename T> static double qfast_dot_err(const uint8_t *src, int64_t n, float xscale)
{
	iq_tabs t = host_tabs();
	uint64_t r = 0x9e3779b97f4a7c15ULL;
	double worst = 0.0;

	for (int64_t gi = 0; gi < n / 8; gi++) {
		const uint8_t *b = src + (gi * 8 / T::BS) * T::TS;
		const int g = (int)(gi % (T::BS / 8));
		float x[8], xs[8], w[8], xsum = 0.0f, xssum = 0.0f;
		double ref = 0.0, mag = 1e-30;
		for (int i = 0; i < 8; i++) {
			r ^= r << 13, r ^= r >> 7, r ^= r << 17;
			x[i] = (float)((double)(r >> 11) / 9007199254740992.0 * 2.0 - 1.0);
			xs[i] = x[i] * xscale;
			xsum += x[i];
			xssum += xs[i];
		}
		qfast<T>::deq(b, g, w, t);
		for (int i = 0; i < 8; i++) {
			ref += (double)w[i] * x[i];
			mag += fabs((double)w[i] * x[i]);
		}
		if constexpr (std::is_same<T, t_q4_K>::value) {
			float dl, ml;
			uint32_t lo, hi;
			const int h = qfast<T>::group(b, g, &dl, &ml, &lo, &hi);
			mag = 1e-30;
			for (int i = 0; i < 8; i++)
				mag += (fabs((double)dl * (((i < 4 ? lo : hi) >> (8 * (i & 3) + 4 * h)) & 0xf)) +
					fabs((double)ml)) * fabs((double)x[i]);
		}
		const double e = fabs((double)qfast<T>::dot(b, g, xs, xssum) - ref) / mag;
		worst = e > worst ? e : worst;
	}
	return worst;
}

/* For a type qfast_type() takes. */
static double qfast_dot_any(uint32_t type, const uint8_t *src, int64_t n, float xscale)
{
	switch (type) {
#define QF_CASE(id, T)                                                                       \
	case id:                                                                             \
		return qfast_dot_err<T>(src, n, xscale);
		QFAST_TYPES(QF_CASE)
#undef QF_CASE
	}
	return INFINITY;
}

static int qfast_run_any(uint32_t type, const uint8_t *src, float *dst, int64_t n, bool dev)
{
	switch (type) {
#define QF_CASE(id, T)                                                                       \
	case id:                                                                             \
		return qfast_run<T>(src, dst, n, dev);
		QFAST_TYPES(QF_CASE)
#undef QF_CASE
	}
	return 0;
}

/* Keeps the largest e seen per type in *w (a few types: a linear scan). */
static void note_worst(std::vector<std::pair<uint32_t, double>> *w, uint32_t type, double e)
{
	for (auto &tw : *w) {
		if (tw.first == type) {
			tw.second = e > tw.second ? e : tw.second;
			return;
		}
	}
	w->push_back({ type, e });
}

static void qfast_goldens(const std::string &dir, bool dev)
{
	const char *who = dev ? "cuda" : "host";
	std::vector<std::string> files = list_dir(dir, "");
	int ok = 0, bad = 0;
	double dot_worst = 0.0, dot_perturbed = 0.0;
	std::vector<std::pair<uint32_t, double>> dot_by_type; // worst per type

	for (auto &fn : files) {
		mg_file *f = mg_open((dir + "/" + fn).c_str());
		if (!f)
			continue;
		const mg_tensor *b = mg_tensor_get(f, "blocks"), *e = mg_tensor_get(f, "expected");
		if (!b || !e || !qfast_type(b->type)) {
			mg_close(f);
			continue;
		}
		if (!dev) {
			const double de = qfast_dot_any(b->type, b->data, e->nel, 1.0f);
			const double dp = qfast_dot_any(b->type, b->data, e->nel, 1.0f + 1e-3f);
			dot_worst = de > dot_worst ? de : dot_worst;
			dot_perturbed = dp > dot_perturbed ? dp : dot_perturbed;
			note_worst(&dot_by_type, b->type, de);
		}
		std::vector<float> out(e->nel);
		const int ran = qfast_run_any(b->type, b->data, out.data(), e->nel, dev);
		int64_t first, nbad = bits_mismatch(out.data(), (const float *)e->data, e->nel, &first);
		char name[96];
		snprintf(name, sizeof(name), "%s qfast dequant %s", who, fn.c_str());
		if (!ran) {
			result(0, name, "device copy or launch failed");
			bad++;
		} else if (nbad) {
			result(0, name, "%lld of %lld elements differ, first [%lld]", (long long)nbad,
			       (long long)e->nel, (long long)first);
			bad++;
		} else {
			ok++;
		}
		mg_close(f);
	}
	char name[64];
	snprintf(name, sizeof(name), "%s qfast dequant goldens", who);
	if (!ok && !bad) {
		skipped(name, "skipped: reference set not found");
		return;
	}
	result(bad == 0, name, "%d files bit-exact, %d differ", ok, bad);
	if (dev)
		return;
	// Rounding only: a few ulp of the group's magnitude (limit 1e-6).
	std::string per;
	for (auto &tw : dot_by_type) {
		char one[48];
		snprintf(one, sizeof(one), ", %s %.2e", infer_type_name(tw.first), tw.second);
		per += one;
	}
	result(dot_worst <= 1e-6, "host qfast dot vs sum of deq * x", "worst rel %.2e (<= 1e-6)%s",
	       dot_worst, per.c_str());
	result(dot_perturbed > 1e-6, "qfast dot check detects x scaled by 1 + 1e-3",
	       "worst rel %.2e (> 1e-6)", dot_perturbed);
}

static const float *tf(const mg_file *f, const char *name)
{
	const mg_tensor *t = mg_tensor_get(f, name);
	return t ? (const float *)t->data : NULL;
}

static void check(const char *name, const float *got, const float *ref, int64_t n, double tol_rel,
		  double tol_nmse)
{
	errstat s = compare(got, ref, n);
	int ok = s.nan == 0 && s.max_rel <= tol_rel && s.nmse <= tol_nmse;
	result(ok, name, "max_rel %.3g (<= %.0e) nmse %.3g (<= %.0e) nan %lld worst [%lld] %.7g vs %.7g",
	       s.max_rel, tol_rel, s.nmse, tol_nmse, (long long)s.nan, (long long)s.worst,
	       s.worst >= 0 ? (double)got[s.worst] : 0.0, s.worst >= 0 ? (double)ref[s.worst] : 0.0);
}

static void kernel_goldens(const std::string &dir, const infer_ops *ops)
{
	std::vector<std::string> files = list_dir(dir, "");
	infer_error err = {};

	if (files.empty()) {
		skipped("kernel goldens", "skipped: reference set not found");
		return;
	}
	for (auto &fn : files) {
		mg_file *f = mg_open((dir + "/" + fn).c_str());
		char name[128];
		if (!f)
			continue;
		snprintf(name, sizeof(name), "golden %s", fn.c_str());
		const mg_tensor *out = mg_tensor_get(f, "out");
		std::vector<float> y(out ? out->nel : 0);
		int rc = -1;
		if (!out) {
			mg_close(f);
			continue;
		}
		if (!strncmp(fn.c_str(), "rms_norm_mul.", 13)) {
			const mg_tensor *x = mg_tensor_get(f, "in.x");
			rc = ops->rms_norm_mul(tf(f, "in.x"), tf(f, "in.w"), y.data(), x->ne[0],
					       x->nel / x->ne[0], (float)mg_kv_num(f, "golden.eps", 1e-6), &err);
			if (!rc)
				check(name, y.data(), tf(f, "out"), out->nel, 1e-6, 1e-12);
		} else if (!strncmp(fn.c_str(), "rope_neox.", 10)) {
			const mg_tensor *x = mg_tensor_get(f, "in.x");
			memcpy(y.data(), x->data, x->nel * 4);
			rc = ops->rope(y.data(), (const int32_t *)mg_tensor_get(f, "in.pos")->data, x->ne[0],
				       x->ne[1], x->ne[2], (int64_t)mg_kv_num(f, "golden.n_dims", x->ne[0]),
				       (float)mg_kv_num(f, "golden.freq_base", 1e6), 1, &err);
			if (!rc)
				check(name, y.data(), tf(f, "out"), out->nel, 1e-6, 1e-12);
		} else if (!strncmp(fn.c_str(), "softmax.", 8)) {
			const mg_tensor *x = mg_tensor_get(f, "in.x");
			const mg_kv *qp = mg_kv_get(f, "golden.query_pos");
			std::vector<int32_t> pos(x->ne[1]);
			for (int64_t r = 0; r < x->ne[1]; r++)
				pos[r] = qp ? ((const int32_t *)qp->arr)[r] : (int32_t)x->ne[0] - 1;
			rc = ops->softmax(tf(f, "in.x"), y.data(), x->ne[0], x->ne[1],
					  (float)mg_kv_num(f, "golden.scale", 1.0), pos.data(), &err);
			if (!rc)
				check(name, y.data(), tf(f, "out"), out->nel, 1e-6, 1e-12);
		} else if (!strncmp(fn.c_str(), "swiglu.", 7)) {
			rc = ops->swiglu(tf(f, "in.gate"), tf(f, "in.up"), y.data(), out->nel, &err);
			if (!rc)
				check(name, y.data(), tf(f, "out"), out->nel, 1e-6, 1e-12);
		} else if (!strncmp(fn.c_str(), "attn_gqa.", 9)) {
			const mg_tensor *q = mg_tensor_get(f, "in.q"), *k = mg_tensor_get(f, "in.k");
			int64_t hd = q->ne[0], nh = q->ne[1], nt = q->nel / (hd * nh);
			int64_t nhk = k->ne[1], nkv = k->nel / (hd * nhk);
			rc = ops->attention(tf(f, "in.q"), tf(f, "in.k"), tf(f, "in.v"), y.data(), hd, nh,
					    nhk, nt, nkv, (int64_t)mg_kv_num(f, "golden.first_query_pos", nkv - nt),
					    (float)mg_kv_num(f, "golden.scale", 1.0 / sqrt((double)hd)), &err);
			if (!rc)
				check(name, y.data(), tf(f, "out"), out->nel, 1e-5, 1e-10);
		} else if (!strncmp(fn.c_str(), "mul_mat.", 8)) {
			const mg_tensor *w = mg_tensor_get(f, "in.w"), *x = mg_tensor_get(f, "in.x");
			int64_t K = w->ne[0], M = w->ne[1], nmax = x->ne[1];
			const mg_kv *nc = mg_kv_get(f, "golden.n_cols");
			int ncols = nc ? (int)nc->arr_n : 1;
			rc = 0;
			for (int c = 0; c < ncols && !rc; c++) {
				int N = nc ? (int)mg_num(nc->arr_vt, nc->arr + c * mg_vsize(nc->arr_vt)) : 1;
				char nm[160];
				snprintf(nm, sizeof(nm), "golden %s n%d", fn.c_str(), N);
				rc = ops->mul_mat(w->data, w->type, K, M, tf(f, "in.x"), N, y.data(), &err);
				if (!rc)
					check(nm, y.data(), tf(f, "out"), M * N, 1e-5, 1e-10);
			}
			// The cuBLAS path (N > 8): 16 columns cycling through in.x,
			// f16 activations: llama.cpp's NMSE bound for it.
			int N = 16;
			std::vector<float> x16(K * N), y16(M * N), r16(M * N);
			for (int n = 0; n < N && !rc; n++) {
				memcpy(&x16[n * K], tf(f, "in.x") + (n % nmax) * K, K * 4);
				memcpy(&r16[n * M], tf(f, "out") + (n % nmax) * M, M * 4);
			}
			if (!rc)
				rc = ops->mul_mat(w->data, w->type, K, M, x16.data(), N, y16.data(), &err);
			snprintf(name, sizeof(name), "golden %s n16 (cublas)", fn.c_str());
			if (!rc)
				check(name, y16.data(), r16.data(), M * N, 5e-2, 5e-4);
		} else {
			mg_close(f);
			continue;
		}
		if (rc)
			result(0, name, "error: %s", err.msg);
		mg_close(f);
	}
}

/* ---- random inputs of Qwen2.5-0.5B shapes, against the CPU op table ---- */

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static double urand(void)
{
	g_rng ^= g_rng << 13;
	g_rng ^= g_rng >> 7;
	g_rng ^= g_rng << 17;
	return (double)(g_rng >> 11) / 9007199254740992.0;
}

static float grand(void)
{
	double u = urand() + 1e-12, v = urand();
	return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

static std::vector<float> randv(int64_t n, float scale)
{
	std::vector<float> v(n);
	for (auto &x : v)
		x = grand() * scale;
	return v;
}

static void vs_cpu(const char *name, const infer_ops *cpu, const infer_ops *gpu)
{
	(void)name;
	infer_error e1 = {}, e2 = {};
	char nm[128];

	// rms_norm_mul
	for (int64_t n : { 896, 4864 }) {
		int64_t rows = 7;
		auto x = randv(n * rows, 2.0f), w = randv(n, 1.0f);
		std::vector<float> a(n * rows), b(n * rows);
		snprintf(nm, sizeof(nm), "cpu-vs-cuda rms_norm_mul n%lld r%lld", (long long)n, (long long)rows);
		if (cpu->rms_norm_mul(x.data(), w.data(), a.data(), n, rows, 1e-6f, &e1) ||
		    gpu->rms_norm_mul(x.data(), w.data(), b.data(), n, rows, 1e-6f, &e2))
			result(0, nm, "error: %s %s", e1.msg, e2.msg);
		else
			check(nm, b.data(), a.data(), n * rows, 1e-6, 1e-12);
	}
	// rope, both layouts, full and partial rotation, positions up to 32k
	for (int neox = 0; neox < 2; neox++)
		for (int64_t n_rot : { 64, 32 }) {
			int64_t hd = 64, nh = 14, nt = 7;
			auto x = randv(hd * nh * nt, 1.0f);
			std::vector<int32_t> pos(nt);
			for (auto &p : pos)
				p = (int32_t)(urand() * 32768);
			std::vector<float> a = x, b = x;
			snprintf(nm, sizeof(nm), "cpu-vs-cuda rope neox%d n_rot%lld", neox, (long long)n_rot);
			if (cpu->rope(a.data(), pos.data(), hd, nh, nt, n_rot, 1e6f, neox, &e1) ||
			    gpu->rope(b.data(), pos.data(), hd, nh, nt, n_rot, 1e6f, neox, &e2))
				result(0, nm, "error: %s %s", e1.msg, e2.msg);
			else
				check(nm, b.data(), a.data(), x.size(), 1e-6, 1e-12);
		}
	// softmax: the vocabulary row, and masked attention-like rows
	{
		int64_t n = 151936, rows = 2;
		auto x = randv(n * rows, 5.0f);
		std::vector<float> a(n * rows), b(n * rows);
		snprintf(nm, sizeof(nm), "cpu-vs-cuda softmax n%lld", (long long)n);
		if (cpu->softmax(x.data(), a.data(), n, rows, 1.0f, NULL, &e1) ||
		    gpu->softmax(x.data(), b.data(), n, rows, 1.0f, NULL, &e2))
			result(0, nm, "error: %s %s", e1.msg, e2.msg);
		else
			check(nm, b.data(), a.data(), n * rows, 1e-5, 1e-10);
	}
	{
		int64_t n = 512, rows = 16;
		auto x = randv(n * rows, 30.0f);
		std::vector<int32_t> qp(rows);
		for (auto &p : qp)
			p = (int32_t)(urand() * n);
		std::vector<float> a(n * rows), b(n * rows);
		snprintf(nm, sizeof(nm), "cpu-vs-cuda softmax masked n%lld r%lld", (long long)n, (long long)rows);
		if (cpu->softmax(x.data(), a.data(), n, rows, 0.125f, qp.data(), &e1) ||
		    gpu->softmax(x.data(), b.data(), n, rows, 0.125f, qp.data(), &e2))
			result(0, nm, "error: %s %s", e1.msg, e2.msg);
		else
			check(nm, b.data(), a.data(), n * rows, 1e-5, 1e-10);
	}
	// swiglu
	{
		int64_t n = 4864 * 7;
		auto g = randv(n, 3.0f), u = randv(n, 1.0f);
		std::vector<float> a(n), b(n);
		if (cpu->swiglu(g.data(), u.data(), a.data(), n, &e1) ||
		    gpu->swiglu(g.data(), u.data(), b.data(), n, &e2))
			result(0, "cpu-vs-cuda swiglu", "error: %s %s", e1.msg, e2.msg);
		else
			check("cpu-vs-cuda swiglu f4864 t7", b.data(), a.data(), n, 1e-6, 1e-12);
	}
	// attention: decode over a cache, prefill, a chunk after a long prefix
	struct { int64_t nt, nkv; } ac[] = { { 1, 333 }, { 32, 32 }, { 7, 1000 }, { 1, 4100 } };
	for (auto c : ac) {
		int64_t hd = 64, nh = 14, nhk = 2;
		auto q = randv(hd * nh * c.nt, 1.0f), k = randv(hd * nhk * c.nkv, 1.0f),
		     v = randv(hd * nhk * c.nkv, 1.0f);
		std::vector<float> a(q.size()), b(q.size());
		snprintf(nm, sizeof(nm), "cpu-vs-cuda attention t%lld kv%lld", (long long)c.nt, (long long)c.nkv);
		if (cpu->attention(q.data(), k.data(), v.data(), a.data(), hd, nh, nhk, c.nt, c.nkv,
				   c.nkv - c.nt, 0.125f, &e1) ||
		    gpu->attention(q.data(), k.data(), v.data(), b.data(), hd, nh, nhk, c.nt, c.nkv,
				   c.nkv - c.nt, 0.125f, &e2))
			result(0, nm, "error: %s %s", e1.msg, e2.msg);
		else
			check(nm, b.data(), a.data(), q.size(), 1e-5, 1e-10);
	}
}

// Weight rows of `type`: quantized from gaussian floats when the runtime
// has a quantizer, else tiled from the golden blocks of that type.
static int make_weights(uint32_t type, int64_t K, int64_t M, const std::string &deqdir,
			std::vector<uint8_t> *out)
{
	const infer_type_traits *tr = infer_type_traits_get(type);
	if (!tr)
		return 0;
	uint64_t rb = infer_row_size(type, K);
	if (!rb)
		return 0;
	out->resize(rb * M);
	if (tr->from_float) {
		std::vector<float> w = randv(K, 0.05f);
		infer_error err = {};
		for (int64_t m = 0; m < M; m++) {
			for (auto &v : w)
				v = grand() * 0.05f;
			if (infer_quantize(type, w.data(), out->data() + m * rb, K, NULL, &err))
				return 0;
		}
		return 1;
	}
	mg_file *f = mg_open((deqdir + "/" + tr->name + ".gauss.gguf").c_str());
	if (!f)
		return 0;
	const mg_tensor *b = mg_tensor_get(f, "blocks");
	size_t nb = b->nel / tr->block_size * tr->type_size;
	for (size_t i = 0; i < out->size(); i++)
		(*out)[i] = b->data[i % nb];
	mg_close(f);
	return 1;
}

static void mul_mat_vs_cpu(const infer_ops *cpu, const infer_ops *gpu, const std::string &deqdir)
{
	for (uint32_t type = 0; type < INFER_TYPE_COUNT; type++) {
		const infer_type_traits *tr = infer_type_traits_get(type);
		if (!tr || !tr->to_float || (type >= 24 && type <= 28))
			continue; // integer / f64 tensors are never weights
		int64_t K = tr->block_size > 128 ? 4864 : 896, M = tr->block_size > 128 ? 896 : 4864;
		std::vector<uint8_t> w;
		char nm[128];
		snprintf(nm, sizeof(nm), "cpu-vs-cuda mul_mat %s", tr->name);
		if (!make_weights(type, K, M, deqdir, &w)) {
			skipped(nm, "no quantizer and no golden blocks for this type");
			continue;
		}
		for (int64_t N : { 1, 7, 64 }) {
			auto x = randv(K * N, 1.0f);
			std::vector<float> a(M * N), b(M * N);
			infer_error e1 = {}, e2 = {};
			snprintf(nm, sizeof(nm), "cpu-vs-cuda mul_mat %s K%lld M%lld N%lld", tr->name,
				 (long long)K, (long long)M, (long long)N);
			if (cpu->mul_mat(w.data(), type, K, M, x.data(), N, a.data(), &e1) ||
			    gpu->mul_mat(w.data(), type, K, M, x.data(), N, b.data(), &e2)) {
				result(0, nm, "error: %s %s", e1.msg, e2.msg);
				continue;
			}
			if (N <= MV_MAX_COLS)
				check(nm, b.data(), a.data(), M * N, 1e-4, 1e-9);
			else if (type == 0)
				check(nm, b.data(), a.data(), M * N, 1e-4, 1e-9);
			else
				check(nm, b.data(), a.data(), M * N, 5e-2, 5e-4);
		}
	}
	// The LM head: vocab rows, tied embedding types.
	for (uint32_t type : { 8u, 1u, 14u }) {
		int64_t K = type == 14 ? 1024 : 896, M = 151936;
		std::vector<uint8_t> w;
		if (!make_weights(type, K, M, deqdir, &w))
			continue;
		for (int64_t N : { 1, 3 }) {
			auto x = randv(K * N, 1.0f);
			std::vector<float> a(M * N), b(M * N);
			infer_error e1 = {}, e2 = {};
			char nm[128];
			snprintf(nm, sizeof(nm), "cpu-vs-cuda lm_head %s K%lld M%lld N%lld",
				 infer_type_name(type), (long long)K, (long long)M, (long long)N);
			if (cpu->mul_mat(w.data(), type, K, M, x.data(), N, a.data(), &e1) ||
			    gpu->mul_mat(w.data(), type, K, M, x.data(), N, b.data(), &e2))
				result(0, nm, "error: %s %s", e1.msg, e2.msg);
			else
				check(nm, b.data(), a.data(), M * N, 1e-4, 1e-9);
		}
	}
}

int main(int argc, char **argv)
{
	int host_only = 0;
	std::string shared = getenv("INFER_SHARED_DIR") ? getenv("INFER_SHARED_DIR") : "../shared";
	infer_error err = {};

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--host-only"))
			host_only = 1;
		else
			shared = argv[i];
	}
	std::string deq = shared + "/conformance/dequant", ker = shared + "/conformance/kernels";
	dequant_goldens(deq, NULL);
	qfast_goldens(deq, false);
	if (host_only) {
		skipped("device checks", "skipped: --host-only");
	} else if (!infer_cuda_available(&err)) {
		skipped("device checks", err.msg);
	} else {
		const infer_ops *gpu = infer_cuda_ops(&err), *cpu = infer_backend_ops("cpu", &err);
		printf("device: %s\n", infer_cuda_device_name());
		if (!gpu || !cpu) {
			result(0, "cuda ops table", "error: %s", err.msg);
		} else {
			infer_error e = {};
			result(cuda_selftest_oob(&e) != 0 && strstr(e.msg, "out-of-bounds"),
			       "guard regions catch a planted OOB write", "(%s)", e.msg);
			dequant_goldens(deq, gpu);
			qfast_goldens(deq, true);
			kernel_goldens(ker, gpu);
			vs_cpu("", cpu, gpu);
			mul_mat_vs_cpu(cpu, gpu, deq);
		}
	}
	printf("summary: %d passed, %d failed, %d skipped\n", g_pass, g_fail, g_skip);
	return g_fail ? 1 : 0;
}
