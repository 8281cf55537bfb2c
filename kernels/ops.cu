// The kernel-level op table (backend.h) on the GPU: host pointers in and
// out, copies inside. Every device buffer is allocated with guard regions
// before and after it, filled with a known byte; after each op the guards
// are read back and any change is reported as an out-of-bounds write by that
// op (this is how the kernel checks catch OOB writes). Outputs are poisoned
// with NaN bytes first, so an element a kernel forgot to write cannot pass.
#include <stdlib.h>
#include <string.h>

#include "infer_cuda.h"
#include "kernels.cuh"

#define GUARD_BYTES 4096
#define GUARD_FILL 0xcb
#define POISON_FILL 0xff

struct dbuf {
	uint8_t *base; // guard | body | guard
	size_t n;
};

static void *body(const dbuf &b)
{
	return b.base + GUARD_BYTES;
}

static int dalloc(dbuf *b, size_t n, const void *host, infer_error *err)
{
	b->n = n;
	b->base = NULL;
	CK(cudaMalloc((void **)&b->base, n + 2 * GUARD_BYTES));
	CK(cudaMemset(b->base, GUARD_FILL, GUARD_BYTES));
	CK(cudaMemset(b->base + GUARD_BYTES + n, GUARD_FILL, GUARD_BYTES));
	if (host)
		CK(cudaMemcpy(b->base + GUARD_BYTES, host, n, cudaMemcpyHostToDevice));
	else
		CK(cudaMemset(b->base + GUARD_BYTES, POISON_FILL, n));
	return 0;
}

static int dcheck(const dbuf &b, const char *op, const char *what, infer_error *err)
{
	uint8_t g[2][GUARD_BYTES];

	CK(cudaMemcpy(g[0], b.base, GUARD_BYTES, cudaMemcpyDeviceToHost));
	CK(cudaMemcpy(g[1], b.base + GUARD_BYTES + b.n, GUARD_BYTES, cudaMemcpyDeviceToHost));
	for (int s = 0; s < 2; s++)
		for (int i = 0; i < GUARD_BYTES; i++)
			if (g[s][i] != GUARD_FILL)
				return cu_err(err, INFER_E_DEVICE,
					      "cuda %s: out-of-bounds write %s %s (guard byte %d)",
					      op, s ? "after" : "before", what,
					      s ? i : GUARD_BYTES - i);
	return 0;
}

static void dfree(dbuf *b)
{
	if (b->base)
		cudaFree(b->base);
	b->base = NULL;
}

/* Runs the common tail of an op: wait, check every buffer's guards, copy
 * the output back, free everything. */
static int finish(const char *op, dbuf *bufs, const char *const *names, int nb, int out_idx,
		  void *out_host, int rc, infer_error *err)
{
	if (!rc) {
		cudaError_t e = cudaDeviceSynchronize();
		if (e != cudaSuccess)
			rc = cu_err(err, INFER_E_DEVICE, "cuda %s: kernel failed: %s", op,
				    cudaGetErrorString(e));
	}
	for (int i = 0; i < nb && !rc; i++)
		if (bufs[i].base)
			rc = dcheck(bufs[i], op, names[i], err);
	if (!rc && out_host && bufs[out_idx].base) {
		cudaError_t e = cudaMemcpy(out_host, body(bufs[out_idx]), bufs[out_idx].n,
					   cudaMemcpyDeviceToHost);
		if (e != cudaSuccess)
			rc = cu_err(err, INFER_E_DEVICE, "cudaMemcpy(%s output) failed: %s (%s:%d)", op,
				    cudaGetErrorString(e), __FILE__, __LINE__);
	}
	for (int i = 0; i < nb; i++)
		dfree(&bufs[i]);
	return rc;
}

static int op_mul_mat(const void *w, uint32_t wtype, int64_t K, int64_t M, const float *x,
		      int64_t N, float *y, infer_error *err)
{
	static const char *names[] = { "weights", "x", "y" };
	dbuf b[3] = {};
	int bs, ts, rc = cuda_init(err);

	if (rc)
		return rc;
	if (!cuda_type_block(wtype, &bs, &ts))
		return cu_err(err, INFER_E_UNSUPPORTED, "cuda mul_mat: unsupported weight type id %u",
			      wtype);
	if (K <= 0 || M <= 0 || N <= 0 || K % bs)
		return cu_err(err, INFER_E_ARG, "mul_mat: bad shape K=%lld M=%lld N=%lld for %s",
			      (long long)K, (long long)M, (long long)N, cuda_type_name(wtype));
	size_t wbytes = (size_t)(M * (K / bs)) * ts;
	if ((rc = dalloc(&b[0], wbytes, w, err)) ||
	    (rc = dalloc(&b[1], (size_t)(N * K) * 4, x, err)) ||
	    (rc = dalloc(&b[2], (size_t)(N * M) * 4, NULL, err)))
		return finish("mul_mat", b, names, 3, 2, NULL, rc, err);
	if (N <= MV_MAX_COLS)
		rc = cuda_matvec(wtype, body(b[0]), K, M, (const float *)body(b[1]), N,
				 (float *)body(b[2]), 0, NULL, 0, err);
	else
		rc = cuda_gemm(wtype, body(b[0]), K, M, (const float *)body(b[1]), N,
			       (float *)body(b[2]), 0, NULL, NULL, 0, err);
	return finish("mul_mat", b, names, 3, 2, y, rc, err);
}

static int op_dequant(uint32_t type, const void *src, float *dst, int64_t n, infer_error *err)
{
	static const char *names[] = { "blocks", "output" };
	dbuf b[2] = {};
	int bs, ts, rc = cuda_init(err);

	if (rc)
		return rc;
	if (!cuda_type_block(type, &bs, &ts))
		return cu_err(err, INFER_E_UNSUPPORTED, "cuda dequant: unsupported type id %u", type);
	if (n <= 0 || n % bs)
		return cu_err(err, INFER_E_ARG, "dequant: %lld elements is not a whole number of %s blocks",
			      (long long)n, cuda_type_name(type));
	if ((rc = dalloc(&b[0], (size_t)(n / bs) * ts, src, err)) ||
	    (rc = dalloc(&b[1], (size_t)n * 4, NULL, err)))
		return finish("dequant", b, names, 2, 1, NULL, rc, err);
	rc = cuda_dequant_f32(type, body(b[0]), (float *)body(b[1]), n, 0, err);
	return finish("dequant", b, names, 2, 1, dst, rc, err);
}

static int op_rms_norm_mul(const float *x, const float *w, float *y, int64_t n, int64_t rows,
			   float eps, infer_error *err)
{
	static const char *names[] = { "x", "w", "y" };
	dbuf b[3] = {};
	int rc = cuda_init(err);

	if (rc)
		return rc;
	if (n <= 0 || rows <= 0)
		return cu_err(err, INFER_E_ARG, "rms_norm: bad shape n=%lld rows=%lld", (long long)n,
			      (long long)rows);
	if ((rc = dalloc(&b[0], (size_t)(n * rows) * 4, x, err)) ||
	    (rc = dalloc(&b[1], (size_t)n * 4, w, err)) ||
	    (rc = dalloc(&b[2], (size_t)(n * rows) * 4, NULL, err)))
		return finish("rms_norm_mul", b, names, 3, 2, NULL, rc, err);
	rc = cuda_rms_norm_mul((const float *)body(b[0]), (const float *)body(b[1]),
			       (float *)body(b[2]), n, rows, eps, 0, err);
	return finish("rms_norm_mul", b, names, 3, 2, y, rc, err);
}

static int op_rope(float *x, const int32_t *pos, int64_t head_dim, int64_t n_heads,
		   int64_t n_tokens, int64_t n_rot, float freq_base, int neox, infer_error *err)
{
	static const char *names[] = { "x", "pos" };
	dbuf b[2] = {};
	int rc = cuda_init(err);

	if (rc)
		return rc;
	if (head_dim <= 0 || n_heads <= 0 || n_tokens <= 0)
		return cu_err(err, INFER_E_ARG, "rope: bad shape");
	if ((rc = dalloc(&b[0], (size_t)(head_dim * n_heads * n_tokens) * 4, x, err)) ||
	    (rc = dalloc(&b[1], (size_t)n_tokens * 4, pos, err)))
		return finish("rope", b, names, 2, 0, NULL, rc, err);
	rc = cuda_rope((float *)body(b[0]), (const int32_t *)body(b[1]), head_dim, n_heads, n_tokens,
		       n_rot, freq_base, neox, 0, err);
	return finish("rope", b, names, 2, 0, x, rc, err);
}

static int op_softmax(const float *x, float *y, int64_t n, int64_t rows, float scale,
		      const int32_t *query_pos, infer_error *err)
{
	static const char *names[] = { "x", "y", "query_pos" };
	dbuf b[3] = {};
	int rc = cuda_init(err);

	if (rc)
		return rc;
	if (n <= 0 || rows <= 0)
		return cu_err(err, INFER_E_ARG, "softmax: bad shape n=%lld rows=%lld", (long long)n,
			      (long long)rows);
	for (int64_t r = 0; query_pos && r < rows; r++)
		if (query_pos[r] < 0)
			return cu_err(err, INFER_E_ARG, "softmax: row %lld has every entry masked",
				      (long long)r);
	if ((rc = dalloc(&b[0], (size_t)(n * rows) * 4, x, err)) ||
	    (rc = dalloc(&b[1], (size_t)(n * rows) * 4, NULL, err)) ||
	    (query_pos && (rc = dalloc(&b[2], (size_t)rows * 4, query_pos, err))))
		return finish("softmax", b, names, 3, 1, NULL, rc, err);
	rc = cuda_softmax((const float *)body(b[0]), (float *)body(b[1]), n, rows, scale,
			  query_pos ? (const int32_t *)body(b[2]) : NULL, 0, err);
	return finish("softmax", b, names, 3, 1, y, rc, err);
}

static int op_swiglu(const float *gate, const float *up, float *y, int64_t n, infer_error *err)
{
	static const char *names[] = { "gate", "up", "y" };
	dbuf b[3] = {};
	int rc = cuda_init(err);

	if (rc)
		return rc;
	if (n <= 0)
		return cu_err(err, INFER_E_ARG, "swiglu: bad length %lld", (long long)n);
	if ((rc = dalloc(&b[0], (size_t)n * 4, gate, err)) ||
	    (rc = dalloc(&b[1], (size_t)n * 4, up, err)) ||
	    (rc = dalloc(&b[2], (size_t)n * 4, NULL, err)))
		return finish("swiglu", b, names, 3, 2, NULL, rc, err);
	rc = cuda_swiglu((const float *)body(b[0]), (const float *)body(b[1]), (float *)body(b[2]),
			 n, 0, err);
	return finish("swiglu", b, names, 3, 2, y, rc, err);
}

// Runs the production kernel (split-key attention over a cache-layout K/V,
// as the forward pass does) for head_dim 64/128, the generic one otherwise.
static int op_attention(const float *q, const float *k, const float *v, float *out,
			int64_t head_dim, int64_t n_head, int64_t n_head_kv, int64_t n_tokens,
			int64_t n_kv, int64_t first_query_pos, float scale, infer_error *err)
{
	static const char *names[] = { "q", "k", "v", "out", "pos", "partials" };
	dbuf b[6] = {};
	int rc = cuda_init(err);
	int32_t fqp = (int32_t)first_query_pos;

	if (rc)
		return rc;
	if (head_dim <= 0 || n_head <= 0 || n_head_kv <= 0 || n_tokens <= 0 || n_kv <= 0)
		return cu_err(err, INFER_E_ARG, "attention: bad shape");
	if (n_head % n_head_kv)
		return cu_err(err, INFER_E_ARG, "attention: n_head %lld not a multiple of n_head_kv %lld",
			      (long long)n_head, (long long)n_head_kv);
	if (first_query_pos < 0 || first_query_pos + n_tokens > n_kv)
		return cu_err(err, INFER_E_ARG,
			      "attention: queries at %lld..%lld need keys beyond n_kv %lld",
			      (long long)first_query_pos, (long long)(first_query_pos + n_tokens - 1),
			      (long long)n_kv);
	int64_t blocks = n_head * n_tokens, sp = (264 + blocks - 1) / blocks;
	int nsplit = n_tokens > 16 ? 1 : (int)(sp > 16 ? 16 : sp);
	size_t qn = (size_t)(head_dim * n_head * n_tokens) * 4;
	size_t kn = (size_t)(head_dim * n_head_kv * n_kv) * 4;
	size_t pn = (size_t)(n_tokens * n_head * nsplit * (head_dim + 2)) * 4;
	if ((rc = dalloc(&b[0], qn, q, err)) || (rc = dalloc(&b[1], kn, k, err)) ||
	    (rc = dalloc(&b[2], kn, v, err)) || (rc = dalloc(&b[3], qn, NULL, err)) ||
	    (rc = dalloc(&b[4], 4, &fqp, err)) || (rc = dalloc(&b[5], pn, NULL, err)))
		return finish("attention", b, names, 6, 3, NULL, rc, err);
	rc = cuda_attention_split((const float *)body(b[0]), (const float *)body(b[1]),
				  (const float *)body(b[2]), (float *)body(b[3]), (float *)body(b[5]),
				  head_dim, n_head, n_head_kv, n_tokens, nsplit,
				  (const int32_t *)body(b[4]), scale, NULL, 0, err);
	return finish("attention", b, names, 6, 3, out, rc, err);
}

static const infer_ops g_cuda_ops = {
	"cuda", op_mul_mat, op_dequant, op_rms_norm_mul, op_rope, op_softmax, op_swiglu,
	op_attention,
};

extern "C" const infer_ops *infer_cuda_ops(infer_error *err)
{
	if (cuda_init(err))
		return NULL;
	return &g_cuda_ops;
}

// A kernel that writes one element past its output: the self-test runs it
// through the guard machinery to prove an out-of-bounds write is reported.
static __global__ void oob_kernel(float *y, int n)
{
	if (threadIdx.x <= (unsigned)n)
		y[threadIdx.x] = 1.0f;
}

int cuda_selftest_oob(infer_error *err)
{
	static const char *names[] = { "y" };
	dbuf b[1] = {};
	int rc = cuda_init(err);

	if (rc)
		return rc;
	if ((rc = dalloc(&b[0], 16 * 4, NULL, err)))
		return rc;
	oob_kernel<<<1, 32>>>((float *)body(b[0]), 16);
	rc = cudaGetLastError() == cudaSuccess ? 0 : INFER_E_DEVICE;
	return finish("oob_probe", b, names, 1, 0, NULL, rc, err);
}
