/* A run document built by hand for the report tests (the shape report.h and
 * specs/README_report.md describe): one result of each status, an activation
 * check with per-layer errors, a haiku check with a transcript, and awkward
 * strings everywhere a string can be (quotes, <, &, newlines, control
 * characters, non-ASCII, markdown and XML syntax). */
#ifndef TEST_REPORT_DOC_H
#define TEST_REPORT_DOC_H

#include <CUnit/Basic.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compare.h"

/* Each string is meant to break a writer that forgets to escape. */
#define AWKWARD "say \"hi\" <b>&amp; 'x' </testcase> ]]> | `tick` *star* \n" \
	"second line\r\ttab \x01\x1f ctl \xc3\xbc \xe6\x97\xa5\xe6\x9c\xac \xef\xbf\xbf end"
#define SCRIPTY "<script>alert(1)</script><img src=x onerror=alert(2)>"

static inline json_t *doc_result(const char *suite, const char *id, const char *status,
			  const char *message, json_t *details)
{
	return json_pack("{ss ss ss ss ss sf ss s[ss] so}", "id", id, "suite", suite,
			 "kind", "kernel", "backend", "cpu", "status", status,
			 "duration_s", 0.0125, "message", message, "tags", "fast", "a<b",
			 "details", details ? details : json_object());
}

/* Real comparison details, so the writers see what compare.c produces. */
static inline json_t *doc_compare_details(int perturb)
{
	float a[64], b[64];
	int64_t shape[2] = { 16, 4 };
	cmp_tolerance t;
	json_t *d = NULL;
	int i;

	for (i = 0; i < 64; i++)
		a[i] = b[i] = (float)(i % 7) - 3.0f;
	if (perturb)
		a[21] += 0.25f;
	cmp_tolerance_init(&t);
	t.nmse = 1e-7;
	t.max_abs = 1e-4;
	cmp_compare(a, b, 64, shape, 2, &t, &d);
	return d;
}

static inline json_t *doc_layers(void)
{
	return json_pack("[{ss sf sf sb} {ss sf sf sb} {ss si sf sb} {ss sf ss sb} {ss sf sf sb}]",
			 "tap", "inp_embd", "nmse", 1e-12, "max_rel", 1e-6, "ok", 1,
			 "tap", "l_out-0", "nmse", 3e-11, "max_rel", 2e-5, "ok", 1,
			 "tap", "attn<&>-1", "nmse", 0, "max_rel", 1e-7, "ok", 1,
			 "tap", "l_out-1", "nmse", 4e-3, "max_rel", "inf", "ok", 0,
			 "tap", "result_output", "nmse", 2e-1, "max_rel", 3.5, "ok", 0);
}

static inline json_t *doc_transcript(void)
{
	return json_pack("{ss ss ss s[i i i] s{ss sf} sb sn}",
			 "word", "autumn",
			 "prompt", "Write a haiku about \"autumn\" <please> & thanks",
			 "haiku", "autumn leaves drifting\nsilent \xc3\xa9toile <b>falls</b>\n"
				  "the pond holds the sky",
			 "tokens", 151, 9, 2048,
			 "replay", "backend", "cpu", "max_logprob_diff", 3.2e-6,
			 "greedy_matches", 1, "cuda_resident", NULL);
}

/* The full document: pass, fail, skip, error, activations, haiku. */
static inline json_t *doc_build(void)
{
	json_t *results = json_array(), *act, *haiku;

	json_array_append_new(results, doc_result("kernels", "rmsnorm/4096", "pass",
						  "ok: nmse 0 <= 1e-07", doc_compare_details(0)));
	json_array_append_new(results, doc_result("kernels", "matvec/q4_K \"odd\" <id> & co",
						  "fail", AWKWARD, doc_compare_details(1)));
	json_array_append_new(results, doc_result("weird & <suite> \"s\"", "skipped/one", "skip",
						  "no CUDA device: " SCRIPTY, NULL));
	json_array_append_new(results, doc_result("weird & <suite> \"s\"", "broken\nid",
						  "error", "golden file missing: /x/<y>.gguf", NULL));
	act = doc_result("layers", "activations/qwen2-tiny/f16", "fail",
			 "nmse 4e-03 > 1e-07 at l_out-1", json_pack("{so s{sf sf}}",
			 "layers", doc_layers(), "tolerance", "nmse", 1e-7, "max_rel", 1e-2));
	json_array_append_new(results, act);
	haiku = doc_result("haiku", "haiku/anti-cheat", "pass", "ok: word present, replay agrees",
			   json_pack("{so}", "transcript", doc_transcript()));
	json_array_append_new(results, haiku);
	return json_pack("{ss s{ss ss ss ss sn ss ss sf ss s{ss ss}} so ss}",
			 "schema", "conform-report/1",
			 "run", "tool", "conform", "version", "0.1.0",
			 "git_commit", "9c124cc", "host", "ci-box <&>", "gpu",
			 "started", "2026-11-22T00:30:00Z", "finished", "2026-11-22T00:31:02Z",
			 "duration_s", 62.0, "command", "conform run specs/default.yaml --set X=\"a b\"",
			 "tool_versions", "conform", "0.1.0", "jansson", JANSSON_VERSION,
			 "results", results, "verdict", "fail");
}

/* Reads a whole file into a NUL-terminated buffer (caller frees). */
static inline char *doc_slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	if (buf)
		buf[n] = '\0';
	fclose(f);
	return buf;
}

static inline int doc_count(const char *hay, const char *needle)
{
	int n = 0;

	for (; (hay = strstr(hay, needle)); hay += strlen(needle))
		n++;
	return n;
}

/* A fresh directory under TMPDIR; the path is static. */
static inline const char *doc_tmpdir(void)
{
	static char dir[256];
	const char *base = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/conform-report-XXXXXX", base ? base : "/tmp");
	return mkdtemp(dir);
}

/* rm -r of a directory we made (one level: the tests make no subdirectories
 * beyond the ones they name and remove themselves). */
static inline void doc_rmdir(const char *dir)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "warning: could not remove %s\n", dir);
}

#endif
