/* infer bench: prefill and decode speed of one model on one backend.
 *
 *   infer bench -m MODEL.gguf [--backend cpu|cuda] [--prompt 512] [--gen 128]
 *               [--threads N] [--json]
 *
 * Prefill evaluates a prompt of --prompt tokens in one batch; decode then
 * generates --gen tokens one at a time (greedy, so the run is the same every
 * time). The prompt is a fixed pseudo-random token sequence: speed does not
 * depend on what the tokens say. When prompt + gen exceed the model's
 * context, the prompt is shortened (and the JSON says so).
 *
 * Decoding a token reads every weight once, so weight_bytes * decode tok/s is
 * the memory traffic achieved; it is printed beside the peak the memory can
 * deliver (cpu: measured here by a multi-threaded streaming read). */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "infer/backend.h"
#include "infer/model.h"
#include "infer/sampler.h"
#include "infer/session.h"
#include "forward.h"
#ifdef INFER_HAVE_CUDA
#include "infer_cuda.h"
#endif

struct bench_args {
	const char *model, *backend;
	int32_t n_prompt, n_gen, threads;
	int json;
};

struct bench_result {
	int32_t n_prompt, n_gen;
	int prompt_clamped;
	double prefill_ms, decode_ms, ttft_ms;
	double peak_bytes_per_s;
	uint64_t device_bytes, launches;
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: infer bench -m MODEL.gguf [--backend cpu|cuda] [--prompt N] [--gen N]\n"
		     "                   [--threads N] [--json]\n");
}

static int parse_int(const char *opt, const char *s, long lo, long hi, int32_t *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "error: %s: '%s' is not an integer in [%ld, %ld]\n", opt, s, lo, hi);
		return -1;
	}
	*out = (int32_t)v;
	return 0;
}

static int parse_args(struct bench_args *a, int argc, char **argv)
{
	a->backend = "cpu";
	a->n_prompt = 512;
	a->n_gen = 128;
	for (int i = 1; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(o, "--json")) {
			a->json = 1;
			continue;
		}
		if (!v) {
			fprintf(stderr, "error: option '%s' needs a value (or is unknown)\n", o);
			return -1;
		}
		i++;
		if (!strcmp(o, "-m") || !strcmp(o, "--model"))
			a->model = v;
		else if (!strcmp(o, "--backend"))
			a->backend = v;
		else if (!strcmp(o, "--prompt")) {
			if (parse_int(o, v, 1, 1 << 20, &a->n_prompt))
				return -1;
		} else if (!strcmp(o, "--gen")) {
			if (parse_int(o, v, 1, 1 << 20, &a->n_gen))
				return -1;
		} else if (!strcmp(o, "--threads")) {
			if (parse_int(o, v, 0, 1024, &a->threads))
				return -1;
		} else {
			fprintf(stderr, "error: unknown option '%s'\n", o);
			return -1;
		}
	}
	if (!a->model) {
		fprintf(stderr, "error: -m MODEL is required\n");
		return -1;
	}
	return 0;
}

/* ---- peak memory bandwidth (cpu) ----------------------------------------- */

struct bw_job {
	const uint64_t *buf;
	size_t n;
	uint64_t sum;
};

static void *bw_read(void *arg)
{
	struct bw_job *j = arg;
	uint64_t s = 0;

	for (size_t i = 0; i < j->n; i++)
		s += j->buf[i];
	j->sum = s;
	return NULL;
}

/* Bytes/s of a streaming read of 256 MiB split over nth threads (best of 3). */
static double cpu_peak_bandwidth(int nth)
{
	size_t n = (256u << 20) / sizeof(uint64_t);
	uint64_t *buf = malloc(n * sizeof(uint64_t));
	struct bw_job jobs[64];
	pthread_t th[64];
	double best = 0;

	if (!buf)
		return 0;
	if (nth < 1)
		nth = 1;
	if (nth > 64)
		nth = 64;
	memset(buf, 1, n * sizeof(uint64_t));
	for (int rep = 0; rep < 3; rep++) {
		double t0 = now_ms(), ms;

		for (int i = 0; i < nth; i++) {
			jobs[i].buf = buf + n * i / nth;
			jobs[i].n = n * (i + 1) / nth - n * i / nth;
			if (pthread_create(&th[i], NULL, bw_read, &jobs[i]))
				bw_read(&jobs[i]), th[i] = 0;
		}
		for (int i = 0; i < nth; i++)
			if (th[i])
				pthread_join(th[i], NULL);
		ms = now_ms() - t0;
		if (ms > 0 && n * sizeof(uint64_t) / (ms / 1e3) > best)
			best = n * sizeof(uint64_t) / (ms / 1e3);
	}
	free(buf);
	return best;
}

/* ---- the measurement ----------------------------------------------------- */

static int32_t argmax(const float *v, int32_t n)
{
	int32_t b = 0;

	for (int32_t i = 1; i < n; i++)
		if (v[i] > v[b])
			b = i;
	return b;
}

/* One step as generation runs it: evaluate, then pick the greedy token where
 * generate.c picks it (on the device when the backend samples there, so a
 * cuda step does not copy the vocabulary's logits back). */
static int step(infer_session *s, infer_sampler *greedy, int32_t *toks, int32_t n,
		float *logits, int32_t n_vocab, infer_error *err)
{
	int rc;

	if (infer_session_device_sampling(s)) {
		if ((rc = infer_session_eval(s, toks, n, NULL, INFER_EVAL_KEEP_LOGITS, err)))
			return rc;
		return infer_session_sample(s, greedy, NULL, 0, &toks[0], NULL, NULL, err);
	}
	if ((rc = infer_session_eval(s, toks, n, logits, 0, err)))
		return rc;
	toks[0] = argmax(logits, n_vocab);
	return 0;
}

static int run_bench(infer_session *s, const infer_hparams *hp, struct bench_result *r,
		     infer_error *err)
{
	int32_t *toks = malloc((size_t)r->n_prompt * sizeof(int32_t));
	float *logits = malloc((size_t)hp->n_vocab * sizeof(float));
	infer_sampler_params gp;
	infer_sampler *greedy;
	uint64_t x = 0x2545f4914f6cdd1dULL, launches0;
	double t0;
	int rc = INFER_E_NOMEM;

	infer_sampler_params_default(&gp);
	gp.temperature = 0.0f;
	greedy = infer_sampler_new(&gp);
	if (!toks || !logits || !greedy)
		goto out;
	for (int32_t i = 0; i < r->n_prompt; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		toks[i] = (int32_t)(x % (uint64_t)hp->n_vocab);
	}
	/* Warm-up: buffers allocated, weights paged in / uploaded; a prompt of
	 * the measured length and one decode step, so one-time costs (device
	 * buffers sized for the prompt, GEMM plans, the decode graph) stay out. */
	if ((rc = infer_session_eval(s, toks, r->n_prompt, logits, 0, err)) ||
	    (rc = step(s, greedy, toks, 1, logits, hp->n_vocab, err)))
		goto out;
	for (int32_t i = 0; i < r->n_prompt; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		toks[i] = (int32_t)(x % (uint64_t)hp->n_vocab);
	}
	infer_session_reset(s);
	launches0 = infer_session_kernel_launches(s);
	t0 = now_ms();
	if ((rc = step(s, greedy, toks, r->n_prompt, logits, hp->n_vocab, err)))
		goto out;
	r->prefill_ms = now_ms() - t0;
	r->ttft_ms = r->prefill_ms; /* the first token is picked inside step() */
	t0 = now_ms();
	for (int32_t i = 0; i < r->n_gen; i++)
		if ((rc = step(s, greedy, toks, 1, logits, hp->n_vocab, err)))
			goto out;
	r->decode_ms = now_ms() - t0;
	r->device_bytes = infer_session_device_bytes(s);
	r->launches = infer_session_kernel_launches(s) - launches0;
	rc = 0;
out:
	if (rc == INFER_E_NOMEM && (!toks || !logits || !greedy))
		infer_error_set(err, rc, -1, "bench: out of memory");
	infer_sampler_free(greedy);
	free(toks);
	free(logits);
	return rc;
}

static void print_result(const struct bench_args *a, const infer_model *m,
			 const struct bench_result *r, int nth)
{
	double pf = r->n_prompt * 1e3 / r->prefill_ms, dec = r->n_gen * 1e3 / r->decode_ms;
	double bps = (double)infer_model_weight_bytes(m) * dec;
	json_t *o = json_object();

	json_object_set_new(o, "backend", json_string(a->backend));
	json_object_set_new(o, "device", json_string(infer_backend_device_name(a->backend)));
	json_object_set_new(o, "model", json_string(a->model));
	json_object_set_new(o, "threads", json_integer(nth));
	json_object_set_new(o, "weight_bytes", json_integer((json_int_t)infer_model_weight_bytes(m)));
	json_object_set_new(o, "n_prompt", json_integer(r->n_prompt));
	json_object_set_new(o, "n_gen", json_integer(r->n_gen));
	json_object_set_new(o, "prompt_clamped_to_context", json_boolean(r->prompt_clamped));
	json_object_set_new(o, "prefill_ms", json_real(r->prefill_ms));
	json_object_set_new(o, "prefill_tok_per_s", json_real(pf));
	json_object_set_new(o, "ttft_ms", json_real(r->ttft_ms));
	json_object_set_new(o, "decode_ms", json_real(r->decode_ms));
	json_object_set_new(o, "decode_tok_per_s", json_real(dec));
	json_object_set_new(o, "device_memory_bytes", json_integer((json_int_t)r->device_bytes));
	json_object_set_new(o, "kernel_launches", json_integer((json_int_t)r->launches));
	json_object_set_new(o, "decode_weight_bytes_per_s", json_real(bps));
	json_object_set_new(o, "peak_bytes_per_s", json_real(r->peak_bytes_per_s));
	json_object_set_new(o, "fraction_of_peak",
			    json_real(r->peak_bytes_per_s > 0 ? bps / r->peak_bytes_per_s : 0));
	if (a->json) {
		json_dumpf(o, stdout, JSON_COMPACT);
		fputc('\n', stdout);
	} else {
		printf("backend %s (%s), %d threads, model %s\n", a->backend,
		       infer_backend_device_name(a->backend), nth, a->model);
		printf("prefill %d tokens: %.1f ms, %.1f tok/s (TTFT %.1f ms)\n", r->n_prompt,
		       r->prefill_ms, pf, r->ttft_ms);
		printf("decode  %d tokens: %.1f ms, %.1f tok/s\n", r->n_gen, r->decode_ms, dec);
		printf("weights %.2f MB; decode reads %.2f GB/s of peak %.2f GB/s (%.1f%%)\n",
		       infer_model_weight_bytes(m) / 1e6, bps / 1e9, r->peak_bytes_per_s / 1e9,
		       r->peak_bytes_per_s > 0 ? 100 * bps / r->peak_bytes_per_s : 0);
	}
	json_decref(o);
}

int cmd_bench(int argc, char **argv)
{
	struct bench_args a = { 0 };
	struct bench_result r = { 0 };
	infer_error err = { 0 };
	infer_session_opts so = { 0 };
	const infer_hparams *hp;
	infer_model *m;
	infer_session *s;
	int nth, rc;

	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return 0;
	}
	if (parse_args(&a, argc, argv)) {
		usage(stderr);
		return 2;
	}
	m = infer_model_load(a.model, &err);
	if (!m) {
		fprintf(stderr, "error: %s: %s\n", a.model, err.msg);
		return err.code == INFER_E_IO ? 1 : 2;
	}
	hp = infer_model_hparams(m);
	r.n_prompt = a.n_prompt;
	r.n_gen = a.n_gen;
	if (r.n_gen >= hp->n_ctx) {
		fprintf(stderr, "error: --gen %d does not fit the context of %d\n", r.n_gen, hp->n_ctx);
		infer_model_free(m);
		return 2;
	}
	if (r.n_prompt + r.n_gen > hp->n_ctx) {
		r.n_prompt = hp->n_ctx - r.n_gen;
		r.prompt_clamped = 1;
		fprintf(stderr, "note: prompt shortened to %d tokens to fit the context of %d\n",
			r.n_prompt, hp->n_ctx);
	}
	so.backend = a.backend;
	so.n_threads = a.threads;
	s = infer_session_new(m, &so, &err);
	if (!s) {
		fprintf(stderr, "error: %s\n", err.msg);
		infer_model_free(m);
		return 1;
	}
	nth = a.threads ? a.threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
	rc = run_bench(s, hp, &r, &err);
	if (rc) {
		fprintf(stderr, "error: bench: %s\n", err.msg);
	} else {
		if (!strcmp(a.backend, "cpu"))
			r.peak_bytes_per_s = cpu_peak_bandwidth(nth);
#ifdef INFER_HAVE_CUDA
		else if (!strcmp(a.backend, "cuda")) /* measured like the cpu peak */
			r.peak_bytes_per_s = infer_cuda_peak_bandwidth(&err);
#endif
		print_result(&a, m, &r, nth);
	}
	infer_session_free(s);
	infer_model_free(m);
	return rc ? 1 : 0;
}
