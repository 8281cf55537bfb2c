// Forward-pass check of the CUDA backend against the CPU backend on one model:
//   1. prefill a prompt (cuBLAS path, n > 8) with every tap: each tap and the
//      logits of every token compared by NMSE;
//   2. a short prefill (fused mat-vec path, n <= 8) likewise;
//   3. greedy decode of G tokens on both (cuda: the CUDA-graph step), token
//      ids must be identical and every step's logits close;
//   4. evidence: device bytes resident, kernel launches per decoded token;
//   5. greedy decode through the device sampler (the backend's speculative
//      next step), with chain breaks: picks and logits as the cpu's.
// Usage: cuda_forward_check MODEL.gguf [n_prompt=40] [n_gen=32]
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <map>
#include <string>
#include <vector>

extern "C" {
#include "infer/backend.h"
#include "infer/model.h"
#include "infer/sampler.h"
#include "infer/session.h"
}
// infer_session_sample, INFER_EVAL_KEEP_LOGITS: the runtime's internal door
// that generation and `infer bench` use for device sampling.
#include "../../runtime/src/forward.h"

typedef std::map<std::string, std::vector<float>> tapmap;

static void collect(void *user, const char *name, const float *data, int64_t n, int64_t dim)
{
	(*(tapmap *)user)[name].assign(data, data + n * dim);
}

static int g_fail;

static double nmse(const float *a, const float *b, size_t n)
{
	double num = 0, den = 0;
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(a[i]))
			return INFINITY;
		num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
		den += (double)b[i] * b[i];
	}
	return den > 0 ? num / den : num;
}

static int argmax(const float *x, int64_t n)
{
	int best = 0;
	for (int64_t i = 1; i < n; i++)
		if (x[i] > x[best])
			best = (int)i;
	return best;
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

// 5. Greedy decode as generation runs it: eval keeps the logits on the
// device, infer_session_sample picks there, so the cuda backend queues the
// next step behind the pick and the next eval takes it. Steps by i % 4:
// 0 and 1 evaluate the pick (logits kept / copied back: the queued step is
// taken), 2 and 3 evaluate pick + 1 instead (copied / kept: it must be
// dropped). Every pick must be the cpu's greedy token, every copied row the
// cpu's logits. A taken step counts one kernel more (feed_kernel) than the
// graph alone (per_tok, step 3), which shows how many were taken. `chain`
// holds step 3's cuda logits of the unbroken chain: at the first break
// (i == 2) they are what a wrongly taken step would return, so they must be
// far from the right ones or this check could not see that mistake.
static void device_decode_check(infer_session *cpu, infer_session *gpu,
				const std::vector<int32_t> &prompt,
				const std::vector<std::vector<float>> &chain,
				const std::vector<int32_t> &chain_toks, int64_t V, uint64_t per_tok)
{
	const char *env = getenv("INFER_CUDA_SPECULATE");
	int spec_on = !env || atoi(env) != 0, n = (int)chain.size();
	int wrong = 0, taken = 0, want = 0, prefix = 1, ok;
	double worst = 0, sep = -1;
	std::vector<float> lc(V), lg(V);
	infer_sampler_params sp;
	infer_sampler *greedy;
	infer_error err = {};

	infer_sampler_params_default(&sp);
	sp.temperature = 0.0f;
	greedy = infer_sampler_new(&sp);
	infer_session_reset(cpu);
	infer_session_reset(gpu);
	if (!greedy ||
	    infer_session_eval(cpu, prompt.data(), (int32_t)prompt.size(), lc.data(), 0, &err) ||
	    infer_session_eval(gpu, prompt.data(), (int32_t)prompt.size(), NULL,
			       INFER_EVAL_KEEP_LOGITS, &err)) {
		printf("FAIL device-sampled decode: prefill: %s\n", greedy ? err.msg : "out of memory");
		g_fail++;
		infer_sampler_free(greedy);
		return;
	}
	for (int i = 0; i < n; i++) {
		int brk = i % 4 >= 2, host = i % 4 == 1 || i % 4 == 2;
		int32_t g, next;
		uint64_t l0;

		if (infer_session_sample(gpu, greedy, NULL, 0, &g, NULL, NULL, &err))
			goto fail;
		wrong += g != argmax(lc.data(), V);
		prefix = prefix && g == chain_toks[i];
		next = brk ? (int32_t)((g + 1) % V) : g;
		l0 = infer_session_kernel_launches(gpu);
		if (infer_session_eval(gpu, &next, 1, host ? lg.data() : NULL,
				       host ? 0 : INFER_EVAL_KEEP_LOGITS, &err))
			goto fail;
		taken += infer_session_kernel_launches(gpu) - l0 == per_tok + 1;
		want += spec_on && !brk;
		if (infer_session_eval(cpu, &next, 1, lc.data(), 0, &err))
			goto fail;
		if (host) {
			double e = nmse(lg.data(), lc.data(), V);
			worst = e > worst ? e : worst;
		}
		if (i == 2 && prefix)
			sep = nmse(chain[i].data(), lc.data(), V);
	}
	ok = !wrong && worst <= 1e-5 && sep > 1e-3 && taken == want;
	printf("%s device-sampled decode of %d tokens (speculation %s): %d picks differ from cpu, "
	       "worst copied logits nmse %.3g, a wrongly taken step would give nmse %.3g, "
	       "%d steps taken (%d expected)\n",
	       ok ? "PASS" : "FAIL", n, spec_on ? "on" : "off", wrong, worst, sep, taken, want);
	g_fail += !ok;
	infer_sampler_free(greedy);
	return;
fail:
	printf("FAIL device-sampled decode: %s\n", err.msg);
	g_fail++;
	infer_sampler_free(greedy);
}

// Runs one prefill with taps on both sessions and compares everything.
static void prefill_check(infer_session *cpu, infer_session *gpu, const std::vector<int32_t> &toks,
			  int64_t V, const char *what)
{
	tapmap tc, tg;
	infer_error err = {};
	int32_t n = (int32_t)toks.size();
	std::vector<float> lc((size_t)n * V), lg((size_t)n * V);

	infer_session_reset(cpu);
	infer_session_reset(gpu);
	infer_session_set_tap(cpu, collect, &tc);
	infer_session_set_tap(gpu, collect, &tg);
	if (infer_session_eval(cpu, toks.data(), n, lc.data(), 1, &err) ||
	    infer_session_eval(gpu, toks.data(), n, lg.data(), 1, &err)) {
		printf("FAIL %s: eval: %s\n", what, err.msg);
		g_fail++;
		return;
	}
	infer_session_set_tap(cpu, NULL, NULL);
	infer_session_set_tap(gpu, NULL, NULL);
	double worst = 0;
	std::string worst_name;
	for (auto &kv : tc) {
		auto it = tg.find(kv.first);
		if (it == tg.end() || it->second.size() != kv.second.size()) {
			printf("FAIL %s: tap %s missing or mis-sized on cuda\n", what, kv.first.c_str());
			g_fail++;
			continue;
		}
		double e = nmse(it->second.data(), kv.second.data(), kv.second.size());
		if (e > worst) {
			worst = e;
			worst_name = kv.first;
		}
	}
	if (tg.size() != tc.size()) {
		printf("FAIL %s: %zu taps on cuda, %zu on cpu\n", what, tg.size(), tc.size());
		g_fail++;
	}
	int agree = 0;
	for (int32_t t = 0; t < n; t++)
		agree += argmax(&lc[(size_t)t * V], V) == argmax(&lg[(size_t)t * V], V);
	double el = nmse(lg.data(), lc.data(), lg.size());
	int ok = worst <= 1e-5 && el <= 1e-5 && agree == n;
	printf("%s %s: n=%d, %zu taps, worst tap nmse %.3g (%s), logits nmse %.3g, argmax agree %d/%d\n",
	       ok ? "PASS" : "FAIL", what, n, tc.size(), worst, worst_name.c_str(), el, agree, n);
	g_fail += !ok;
}

int main(int argc, char **argv)
{
	infer_error err = {};

	if (argc < 2) {
		fprintf(stderr, "usage: cuda_forward_check MODEL.gguf [n_prompt] [n_gen]\n");
		return 2;
	}
	int32_t n_prompt = argc > 2 ? atoi(argv[2]) : 40, n_gen = argc > 3 ? atoi(argv[3]) : 32;
	// No device (CI): say so and succeed; the check is not passed, it did not run.
	if (!infer_backend_available("cuda", &err)) {
		printf("skipped: %s\n", err.msg);
		return 0;
	}
	infer_model *m = infer_model_load(argv[1], &err);
	if (!m) {
		fprintf(stderr, "error: %s\n", err.msg);
		return 1;
	}
	const infer_hparams *hp = infer_model_hparams(m);
	int64_t V = hp->n_vocab;
	infer_session_opts oc = {}, og = {};
	oc.backend = "cpu";
	og.backend = "cuda";
	oc.n_ctx = og.n_ctx = n_prompt + n_gen + 8;
	infer_session *cpu = infer_session_new(m, &oc, &err);
	infer_session *gpu = cpu ? infer_session_new(m, &og, &err) : NULL;
	if (!gpu) {
		fprintf(stderr, "error: session: %s\n", err.msg);
		return 1;
	}
	printf("model %s: %d layers, embd %d, vocab %d; cuda weights resident: %llu bytes (file weights %llu)\n",
	       argv[1], hp->n_layer, hp->n_embd, hp->n_vocab,
	       (unsigned long long)infer_session_device_bytes(gpu),
	       (unsigned long long)infer_model_weight_bytes(m));
	std::vector<int32_t> toks(n_prompt);
	uint64_t r = 12345;
	for (auto &t : toks) {
		r = r * 6364136223846793005ull + 1442695040888963407ull;
		t = (int32_t)((r >> 33) % (uint64_t)V);
	}
	prefill_check(cpu, gpu, toks, V, "prefill (cublas path)");
	std::vector<int32_t> short_toks(toks.begin(), toks.begin() + (n_prompt < 5 ? n_prompt : 5));
	prefill_check(cpu, gpu, short_toks, V, "prefill (mat-vec path)");

	// Greedy decode on both.
	std::vector<float> lc(V), lg(V);
	infer_session_reset(cpu);
	infer_session_reset(gpu);
	if (infer_session_eval(cpu, toks.data(), n_prompt, lc.data(), 0, &err) ||
	    infer_session_eval(gpu, toks.data(), n_prompt, lg.data(), 0, &err)) {
		printf("FAIL decode prefill: %s\n", err.msg);
		return 1;
	}
	std::vector<int32_t> oc_t, og_t;
	std::vector<std::vector<float>> chain; // cuda logits after each og_t token
	int32_t tc = argmax(lc.data(), V), tg = argmax(lg.data(), V);
	double worst = nmse(lg.data(), lc.data(), V), gpu_ms = 0;
	uint64_t l0 = infer_session_kernel_launches(gpu);
	for (int i = 0; i < n_gen; i++) {
		oc_t.push_back(tc);
		og_t.push_back(tg);
		if (infer_session_eval(cpu, &tc, 1, lc.data(), 0, &err)) {
			printf("FAIL cpu decode: %s\n", err.msg);
			return 1;
		}
		double t0 = now_ms();
		if (infer_session_eval(gpu, &tg, 1, lg.data(), 0, &err)) {
			printf("FAIL cuda decode: %s\n", err.msg);
			return 1;
		}
		gpu_ms += now_ms() - t0;
		chain.push_back(lg);
		double e = nmse(lg.data(), lc.data(), V);
		worst = e > worst ? e : worst;
		tc = argmax(lc.data(), V);
		tg = argmax(lg.data(), V);
	}
	uint64_t launches = infer_session_kernel_launches(gpu) - l0;
	int same = oc_t == og_t;
	printf("%s greedy decode of %d tokens: tokens %s, worst step logits nmse %.3g\n",
	       same && worst <= 1e-5 ? "PASS" : "FAIL", n_gen, same ? "identical" : "DIFFER", worst);
	if (!same) {
		for (size_t i = 0; i < oc_t.size(); i++)
			printf("  %zu: cpu %d cuda %d\n", i, oc_t[i], og_t[i]);
	}
	g_fail += !(same && worst <= 1e-5);
	printf("cuda decode: %.3f ms/token (host-timed incl. logits copy), %.1f kernel launches/token\n",
	       gpu_ms / n_gen, (double)launches / n_gen);
	printf("tokens:");
	for (int32_t t : og_t)
		printf(" %d", t);
	printf("\n");
	if (n_gen >= 3)
		device_decode_check(cpu, gpu, toks, chain, og_t, V, launches / (uint64_t)n_gen);
	else
		printf("FAIL device-sampled decode: needs n_gen >= 3 (got %d)\n", n_gen);
	g_fail += n_gen < 3;
	printf("summary: %s\n", g_fail ? "FAIL" : "PASS");
	infer_session_free(gpu);
	infer_session_free(cpu);
	infer_model_free(m);
	return g_fail ? 1 : 0;
}
