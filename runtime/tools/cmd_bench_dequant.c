/* infer bench-dequant [--json] [--type T] [--seconds S]: CPU dequantization
 * throughput per type, one thread (the caller's core).
 *
 * Input: random bytes restricted to 0x20..0x3b. Decoding speed does not depend
 * on the values, except that float32 subnormals and NaNs can take slow
 * microcode paths on x86; with every byte in that range each fp16, bf16,
 * float32, E8M0 or UE4M3 scale field is a normal number and every product
 * stays normal, for every type alike (no per-type special case). The values
 * are meaningless: this measures speed, correctness is the tests' job.
 *
 * Reported per type: millions of elements per second, MB/s of quantized input
 * read and MB/s of float32 output written (MB = 10^6 bytes), all from wall
 * time, plus elements per second of thread CPU time. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "infer/quant.h"

#define BENCH_ELEMS (1 << 20) /* 4 MB of float32 output per call */

static double clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Rates use wall time; cpu_melem_s uses this thread's CPU time, which stays
 * meaningful when other processes share the core. */
struct result {
	double melem_s, in_mb_s, out_mb_s, cpu_melem_s;
	int64_t calls;
};

/* Repeats the dequantization of one buffer until min_s seconds have passed
 * (after one warm-up call). */
static int bench_type(const infer_type_traits *t, uint8_t *src, float *dst, double min_s,
		      struct result *r)
{
	const uint64_t in_bytes = infer_row_size(t->id, BENCH_ELEMS);
	infer_error err;
	double t0, c0, dt;

	for (uint64_t i = 0; i < in_bytes; i++)
		src[i] = (uint8_t)(0x20 + rand() % 28);
	if (infer_dequantize(t->id, src, dst, BENCH_ELEMS, t->name, &err)) {
		fprintf(stderr, "error: %s\n", err.msg);
		return -1;
	}
	r->calls = 0;
	t0 = clock_s(CLOCK_MONOTONIC);
	c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
	do {
		infer_dequantize(t->id, src, dst, BENCH_ELEMS, t->name, NULL);
		r->calls++;
		dt = clock_s(CLOCK_MONOTONIC) - t0;
	} while (dt < min_s);
	r->cpu_melem_s = (double)BENCH_ELEMS * r->calls / (clock_s(CLOCK_THREAD_CPUTIME_ID) - c0) / 1e6;
	r->melem_s = (double)BENCH_ELEMS * r->calls / dt / 1e6;
	r->in_mb_s = (double)in_bytes * r->calls / dt / 1e6;
	r->out_mb_s = (double)BENCH_ELEMS * sizeof(float) * r->calls / dt / 1e6;
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: infer bench-dequant [--json] [--type T] [--seconds S]\n");
	return 2;
}

int cmd_bench_dequant(int argc, char **argv)
{
	const infer_type_traits *only = NULL;
	double min_s = 0.3;
	int json = 0, rc = 0;
	json_t *arr;
	uint8_t *src;
	float *dst;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = 1;
		} else if (!strcmp(argv[i], "--type") && i + 1 < argc) {
			only = infer_type_by_name(argv[++i]);
			if (!only) {
				fprintf(stderr, "error: --type: unknown type '%s'\n", argv[i]);
				return 2;
			}
		} else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
			char *end;

			min_s = strtod(argv[++i], &end);
			if (*end || !(min_s > 0 && min_s <= 60)) {
				fprintf(stderr, "error: --seconds: expected 0 < S <= 60, got '%s'\n", argv[i]);
				return 2;
			}
		} else {
			return usage();
		}
	}
	/* Largest input: 8 bytes per element (i64/f64). */
	src = malloc((size_t)BENCH_ELEMS * 8);
	dst = malloc((size_t)BENCH_ELEMS * sizeof(float));
	arr = json_array();
	if (!src || !dst || !arr) {
		fprintf(stderr, "error: out of memory\n");
		rc = 1;
		goto out;
	}
	srand(42);
	if (!json)
		printf("%-8s %10s %12s %12s %14s\n", "type", "Melem/s", "in MB/s", "out MB/s",
		       "cpu Melem/s");
	for (uint32_t id = 0; id < INFER_TYPE_COUNT; id++) {
		const infer_type_traits *t = infer_type_traits_get(id);
		struct result r;

		if (!t || !t->to_float || (only && t != only))
			continue;
		if (bench_type(t, src, dst, min_s, &r)) {
			rc = 1;
			goto out;
		}
		if (json)
			json_array_append_new(arr, json_pack("{s:s, s:i, s:f, s:f, s:f, s:f, s:I}",
				"type", t->name, "type_id", (int)id, "melem_per_s", r.melem_s,
				"in_mb_per_s", r.in_mb_s, "out_mb_per_s", r.out_mb_s,
				"cpu_melem_per_s", r.cpu_melem_s, "calls", (json_int_t)r.calls));
		else
			printf("%-8s %10.1f %12.1f %12.1f %14.1f\n", t->name, r.melem_s, r.in_mb_s,
			       r.out_mb_s, r.cpu_melem_s);
	}
	if (json) {
		json_t *o = json_pack("{s:s, s:i, s:i, s:f, s:O}", "bench", "dequant", "threads", 1,
				      "elements_per_call", BENCH_ELEMS, "min_seconds", min_s,
				      "results", arr);

		json_dumpf(o, stdout, JSON_COMPACT);
		printf("\n");
		json_decref(o);
	}
out:
	json_decref(arr);
	free(src);
	free(dst);
	return rc;
}
