/* Runs checks over backends and builds the run document. */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <yaml.h>

#include "infer/backend.h"
#include "run.h"

const char *harness_version(void);

static const char *const all_backends[] = { "cpu", "cuda" };

double run_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void run_iso_time(double t, char *buf, size_t n)
{
	time_t s = (time_t)t;
	struct tm tm;

	gmtime_r(&s, &tm);
	strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* FNV-1a: a shard is a pure function of the id, so a slice stays the same
 * when other checks are added or the spec order changes. */
static uint32_t id_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static int filter_matches(const struct check *c, const char *filter)
{
	size_t i;
	json_t *t;

	if (!filter)
		return 1;
	if (strncmp(filter, "tag:", 4) == 0) {
		json_array_foreach(c->tags, i, t)
			if (fnmatch(filter + 4, json_string_value(t), 0) == 0)
				return 1;
		return 0;
	}
	return fnmatch(filter, c->id, 0) == 0;
}

int run_selects(const struct check *c, const struct run_options *o)
{
	if (!filter_matches(c, o->filter))
		return 0;
	if (o->shard_n > 0 && id_hash(c->id) % (uint32_t)o->shard_n != (uint32_t)(o->shard_k - 1))
		return 0;
	return 1;
}

int run_backend_selected(const struct check *c, const char *backend, const struct run_options *o)
{
	size_t i;
	json_t *b;

	if (o->backend && strcmp(o->backend, "all") && strcmp(o->backend, backend))
		return 0;
	json_array_foreach(c->backends, i, b)
		if (strcmp(json_string_value(b), backend) == 0)
			return 1;
	return 0;
}

static char *command_output(const char *cmd)
{
	char buf[256];
	FILE *p = popen(cmd, "r");
	size_t n;

	if (!p)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, p);
	if (pclose(p) != 0)
		return NULL;
	buf[n] = 0;
	buf[strcspn(buf, "\r\n")] = 0;
	return n ? strdup(buf) : NULL;
}

static json_t *git_info(void)
{
#ifdef INFER_GIT_DIR
	const char *dir = INFER_GIT_DIR;
#else
	const char *dir = ".";
#endif
	char cmd[1024];
	char *commit, *dirty;
	json_t *g;

	snprintf(cmd, sizeof(cmd), "git -C '%s' rev-parse HEAD 2>/dev/null", dir);
	commit = command_output(cmd);
	snprintf(cmd, sizeof(cmd), "git -C '%s' status --porcelain --untracked-files=no 2>/dev/null | head -c 1", dir);
	dirty = commit ? command_output(cmd) : NULL;
	g = json_pack("{s:o, s:o}", "git_commit", commit ? json_string(commit) : json_null(),
		      "git_dirty", commit ? json_boolean(dirty != NULL) : json_null());
	free(commit);
	free(dirty);
	return g;
}

json_t *run_metadata(void)
{
	char host[256] = "unknown";
	struct utsname u;
	json_t *m, *backends = json_object(), *gpu = json_null();
	size_t i;

	gethostname(host, sizeof(host) - 1);
	if (uname(&u) != 0)
		memset(&u, 0, sizeof(u));
	for (i = 0; i < sizeof(all_backends) / sizeof(all_backends[0]); i++) {
		infer_error e = { 0 };
		int ok = infer_backend_available(all_backends[i], &e);

		json_object_set_new(backends, all_backends[i],
				    ok ? json_pack("{s:b, s:s}", "available", 1, "device",
						   infer_backend_device_name(all_backends[i])) :
					 json_pack("{s:b, s:s}", "available", 0, "reason", e.msg));
		if (ok && strcmp(all_backends[i], "cpu"))
			gpu = json_string(infer_backend_device_name(all_backends[i]));
	}
	m = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:{s:s, s:s, s:s, s:s}}",
		      "tool", "conform", "version", harness_version(), "host", host,
		      "os", u.sysname[0] ? u.sysname : "unknown", "gpu", gpu, "backends", backends,
		      "tool_versions", "conform", harness_version(), "libyaml", yaml_get_version_string(),
		      "jansson", JANSSON_VERSION,
#ifdef __VERSION__
		      "compiler", __VERSION__
#else
		      "compiler", "unknown"
#endif
	);
	if (m && u.release[0])
		json_object_set_new(m, "os_release", json_sprintf("%s %s", u.release, u.machine));
	if (m)
		json_object_update_new(m, git_info());
	return m;
}

/* Messages may quote bytes from a hostile file (a GGUF key): JSON needs
 * UTF-8, so anything else becomes '?' rather than losing the result. */
static void utf8_sanitize(char *s)
{
	json_t *probe = json_string(s);
	unsigned char *p;

	if (probe) {
		json_decref(probe);
		return;
	}
	for (p = (unsigned char *)s; *p; p++)
		if (*p >= 0x80)
			*p = '?';
}

static json_t *result_json(const struct check *c, const char *backend, struct check_result *r)
{
	json_t *details = r->details ? json_incref(r->details) : json_object();

	utf8_sanitize(r->message);
	/* The tolerance is part of what a reader needs to judge a result. */
	if (c->tolerance && !json_object_get(details, "tolerance"))
		json_object_set(details, "tolerance", c->tolerance);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:f, s:s, s:O, s:s, s:o}", "id", c->id, "suite", c->suite,
			 "kind", c->kind, "backend", backend, "status", check_status_name(r->status),
			 "duration_s", r->duration_s, "message", r->message, "tags", c->tags,
			 "spec", c->spec_file, "details", details);
}

/* Runs one check on one backend, never leaving a result without a status
 * and a message. */
static void run_one(const struct check *c, const char *backend, const int *avail, char reasons[][512],
		    struct check_result *r)
{
	const struct check_kind *k = check_kind_find(c->kind);
	const char *skip = check_param_str(c, SPEC_SKIP_KEY, NULL);
	int bi = strcmp(backend, "cpu") == 0 ? 0 : 1;
	double t0 = mono_now();

	memset(r, 0, sizeof(*r));
	r->status = CHECK_ERROR;
	if (skip) {
		check_result_set(r, CHECK_SKIP, "%s", skip);
	} else if (!avail[bi]) {
		check_result_set(r, CHECK_SKIP, "skipped: %s unavailable: %s", backend, reasons[bi]);
	} else if (!k) {
		check_result_set(r, CHECK_ERROR, "unknown check kind '%s'", c->kind);
	} else {
		k->run(c, backend, r);
		if (!r->message[0] && r->status != CHECK_PASS)
			snprintf(r->message, sizeof(r->message), "%s without a message (kind bug)",
				 check_status_name(r->status));
	}
	r->duration_s = mono_now() - t0;
}

static void progress(const struct run_options *o, size_t done, size_t total, size_t bad,
		     const struct check *c, const char *backend)
{
	if (!o->progress)
		return;
	if (c)
		fprintf(stderr, "\r\033[K[%zu/%zu] %zu failed | %s [%s]", done, total, bad, c->id, backend);
	else
		fprintf(stderr, "\r\033[K[%zu/%zu] %zu failed", done, total, bad);
	fflush(stderr);
}

static void log_result(const struct run_options *o, const struct check *c, const char *backend,
		       const struct check_result *r)
{
	static const char *const tag[] = { "PASS ", "FAIL ", "SKIP ", "ERROR" };
	FILE *f = o->log;

	if (!f)
		return;
	/* On a TTY only failures and errors get a line (skips and their reasons
	 * are in the reports); the rest is the progress line. */
	if (o->progress && (r->status == CHECK_PASS || r->status == CHECK_SKIP))
		return;
	if (o->progress)
		fprintf(stderr, "\r\033[K");
	fprintf(f, "%s %s [%s] %.3fs%s%s\n", tag[r->status], c->id, backend, r->duration_s,
		r->message[0] ? "  " : "", r->message);
	fflush(f);
}

void run_finish_verdict(json_t *doc, int no_skip)
{
	json_t *results = json_object_get(doc, "results"), *r;
	size_t i, n[4] = { 0 };
	int fail;

	json_array_foreach(results, i, r) {
		const char *s = json_string_value(json_object_get(r, "status"));

		if (s && !strcmp(s, "pass"))
			n[CHECK_PASS]++;
		else if (s && !strcmp(s, "fail"))
			n[CHECK_FAIL]++;
		else if (s && !strcmp(s, "skip"))
			n[CHECK_SKIP]++;
		else
			n[CHECK_ERROR]++; /* a missing or unknown status is never a pass */
	}
	fail = n[CHECK_FAIL] || n[CHECK_ERROR] || (no_skip && n[CHECK_SKIP]);
	/* An empty run proves nothing: it is not a pass. */
	if (json_array_size(results) == 0)
		fail = 1;
	json_object_set_new(doc, "counts", json_pack("{s:I, s:I, s:I, s:I, s:I}", "total",
						     (json_int_t)json_array_size(results), "pass",
						     (json_int_t)n[CHECK_PASS], "fail", (json_int_t)n[CHECK_FAIL],
						     "skip", (json_int_t)n[CHECK_SKIP], "error",
						     (json_int_t)n[CHECK_ERROR]));
	json_object_set_new(doc, "verdict", json_string(fail ? "fail" : "pass"));
}

static json_t *options_json(const struct spec *s, const struct run_options *o)
{
	json_t *cmd = json_array();
	char shard[32];
	int i;

	for (i = 0; i < o->argc; i++)
		json_array_append_new(cmd, json_string(o->argv[i]));
	snprintf(shard, sizeof(shard), "%d/%d", o->shard_k, o->shard_n);
	return json_pack("{s:o, s:O, s:O, s:O, s:s, s:o, s:o, s:b}", "command", cmd, "specs", s->files,
			 "suites", s->suites, "vars", s->set, "backend", o->backend ? o->backend : "all",
			 "filter", o->filter ? json_string(o->filter) : json_null(), "shard",
			 o->shard_n ? json_string(shard) : json_null(), "no_skip", o->no_skip);
}

json_t *run_checks(const struct spec *s, const struct run_options *o)
{
	json_t *doc, *meta, *results = json_array();
	char reasons[2][512] = { "", "" };
	int avail[2];
	size_t i, b, total = 0, done = 0, bad = 0;
	double t0 = run_now();
	char ts[32];

	for (b = 0; b < 2; b++) {
		infer_error e = { 0 };

		avail[b] = infer_backend_available(all_backends[b], &e);
		snprintf(reasons[b], sizeof(reasons[b]), "%s", e.msg[0] ? e.msg : "not available");
	}
	for (i = 0; i < s->n_checks; i++)
		for (b = 0; b < 2; b++)
			total += run_selects(&s->checks[i], o) &&
				 run_backend_selected(&s->checks[i], all_backends[b], o);
	meta = run_metadata();
	run_iso_time(t0, ts, sizeof(ts));
	json_object_set_new(meta, "started", json_string(ts));
	json_object_update_new(meta, options_json(s, o));
	for (i = 0; i < s->n_checks; i++) {
		const struct check *c = &s->checks[i];

		if (!run_selects(c, o))
			continue;
		for (b = 0; b < 2; b++) {
			struct check_result r;
			json_t *rj;

			if (!run_backend_selected(c, all_backends[b], o))
				continue;
			progress(o, done, total, bad, c, all_backends[b]);
			run_one(c, all_backends[b], avail, reasons, &r);
			done++;
			bad += r.status == CHECK_FAIL || r.status == CHECK_ERROR;
			log_result(o, c, all_backends[b], &r);
			rj = result_json(c, all_backends[b], &r);
			/* Never lose a result: one that cannot be encoded is an error. */
			if (!rj)
				rj = json_pack("{s:s, s:s, s:s, s:s, s:s, s:f, s:s, s:[], s:{}}", "id",
					       "(id not valid UTF-8)", "suite", "?", "kind", "?", "backend",
					       all_backends[b], "status", "error", "duration_s", r.duration_s,
					       "message", "result could not be encoded as JSON", "tags", "details");
			json_array_append_new(results, rj);
			json_decref(r.details);
		}
	}
	progress(o, done, total, bad, NULL, NULL);
	if (o->progress)
		fprintf(stderr, "\n");
	run_iso_time(run_now(), ts, sizeof(ts));
	json_object_set_new(meta, "finished", json_string(ts));
	json_object_set_new(meta, "duration_s", json_real(run_now() - t0));
	doc = json_pack("{s:s, s:o, s:o}", "schema", REPORT_SCHEMA, "run", meta, "results", results);
	if (doc)
		run_finish_verdict(doc, o->no_skip);
	return doc;
}
