/* Report plumbing: validation of the run document, the helpers the four
 * writers share, and atomic file output (temp file in the target directory,
 * then rename) so a reader never sees half a report and a failed write leaves
 * nothing behind. */
#include "report.h"
#include "infer/file.h"
#include "report_internal.h"

#include <errno.h>
#include <stdint.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *const report_status_names[RS_COUNT] = { "pass", "fail", "skip", "error" };

int report_status_index(const char *s)
{
	int i;

	for (i = 0; s && i < RS_COUNT; i++)
		if (!strcmp(s, report_status_names[i]))
			return i;
	return -1;
}

int report_result_status(const json_t *result)
{
	return report_status_index(report_str(result, "status", NULL));
}

const char *report_str(const json_t *obj, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s ? s : dflt;
}

void report_count(const json_t *results, const char *suite, struct report_counts *c)
{
	const json_t *r;
	size_t i;

	memset(c, 0, sizeof(*c));
	json_array_foreach(results, i, r) {
		int st = report_result_status(r);

		if (suite && strcmp(report_str(r, "suite", ""), suite))
			continue;
		c->total++;
		if (st >= 0)
			c->n[st]++;
		c->duration_s += json_number_value(json_object_get(r, "duration_s"));
	}
}

const char *report_verdict(const json_t *run)
{
	const char *v = report_str(run, "verdict", NULL);
	struct report_counts c;

	if (v)
		return v;
	report_count(json_object_get(run, "results"), NULL, &c);
	/* As conform decides: an empty run proves nothing, so it is no pass. */
	return c.n[RS_FAIL] || c.n[RS_ERROR] || !c.total ? "fail" : "pass";
}

json_t *report_suites(const json_t *results)
{
	json_t *suites = json_array(), *seen = json_object(), *r;
	size_t i;

	json_array_foreach(results, i, r) {
		const char *s = report_str(r, "suite", "");

		if (json_object_get(seen, s))
			continue;
		json_object_set_new(seen, s, json_true());
		json_array_append_new(suites, json_string(s));
	}
	json_decref(seen);
	return suites;
}

/* Cuts a truncated buffer back to a character boundary. */
static void utf8_trim(char *buf, size_t len)
{
	size_t i = len, lead;

	while (i > 0 && ((unsigned char)buf[i - 1] & 0xC0) == 0x80)
		i--;
	if (i == 0)
		return;
	lead = (unsigned char)buf[i - 1];
	if (lead < 0xC0)
		return; /* ASCII last: nothing cut */
	if ((lead >= 0xF0 ? 4u : lead >= 0xE0 ? 3u : 2u) > len - (i - 1))
		buf[i - 1] = '\0';
}

void report_fmt_value(const json_t *v, char *buf, size_t n)
{
	if (json_is_string(v)) {
		if ((size_t)snprintf(buf, n, "%s", json_string_value(v)) >= n && n)
			utf8_trim(buf, strlen(buf));
		return;
	}
	if (json_is_integer(v))
		snprintf(buf, n, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		snprintf(buf, n, "%.4g", json_real_value(v));
	else if (json_is_boolean(v))
		snprintf(buf, n, "%s", json_is_true(v) ? "true" : "false");
	else
		snprintf(buf, n, "null");
}

static int scalar(const json_t *v)
{
	return !json_is_object(v) && !json_is_array(v);
}

static void join_scalars(const json_t *a, char *buf, size_t n)
{
	const json_t *v;
	char item[256];
	size_t i, at = 0;

	buf[0] = '\0';
	json_array_foreach(a, i, v) {
		int w;

		report_fmt_value(v, item, sizeof(item));
		w = snprintf(buf + at, n - at, "%s%s", i ? " " : "", item);
		if (w < 0 || (size_t)w >= n - at) {
			utf8_trim(buf, strlen(buf)); /* metadata lines stay short */
			return;
		}
		at += (size_t)w;
	}
}

static void flatten(const json_t *obj, const char *prefix, int depth, report_kv_fn fn, void *ctx)
{
	const char *key;
	json_t *v;
	char name[256], value[1024];

	json_object_foreach((json_t *)obj, key, v) {
		size_t i;
		json_t *item;
		int ok = 1;

		snprintf(name, sizeof(name), "%s%s%s", prefix, *prefix ? "." : "", key);
		if (json_is_object(v)) {
			if (depth < 3)
				flatten(v, name, depth + 1, fn, ctx);
			continue;
		}
		if (json_is_array(v)) {
			json_array_foreach(v, i, item)
				ok &= scalar(item);
			if (!ok)
				continue;
			join_scalars(v, value, sizeof(value));
		} else {
			report_fmt_value(v, value, sizeof(value));
		}
		fn(ctx, name, value);
	}
}

void report_flatten(const json_t *obj, report_kv_fn fn, void *ctx)
{
	flatten(obj, "", 1, fn, ctx);
}

/* ---- markup escaping ---------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF) and its code point; 0 when malformed. */
static int utf8_seq(const unsigned char *p, const unsigned char *end, uint32_t *cp)
{
	static const uint32_t min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
	int n, i;
	uint32_t c;

	if (p[0] < 0xC2 || p[0] > 0xF4)
		return 0;
	n = p[0] >= 0xF0 ? 4 : p[0] >= 0xE0 ? 3 : 2;
	if (end - p < n)
		return 0;
	c = p[0] & (0x7F >> n);
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		c = (c << 6) | (p[i] & 0x3F);
	}
	if (c < min[n] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
		return 0;
	*cp = c;
	return n;
}

#define REPLACEMENT "\xEF\xBF\xBD" /* U+FFFD */

void report_xml_escape(FILE *f, const char *s, size_t len, int attr)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;

	while (p < end) {
		unsigned char c = *p;
		uint32_t cp;
		int n;

		if (c >= 0x80) {
			/* jansson strings are valid UTF-8, but a truncated buffer or a
			 * caller may not be: a parser must never see a broken byte. */
			n = utf8_seq(p, end, &cp);
			if (!n || cp == 0xFFFE || cp == 0xFFFF)
				fputs(REPLACEMENT, f);
			else
				fwrite(p, 1, (size_t)n, f);
			p += n ? n : 1;
			continue;
		}
		if (c == '&')
			fputs("&amp;", f);
		else if (c == '<')
			fputs("&lt;", f);
		else if (c == '>')
			fputs("&gt;", f);
		else if (attr && c == '"')
			fputs("&quot;", f);
		else if (attr && c == '\'')
			fputs("&#39;", f);
		else if (c == '\r' || (attr && (c == '\n' || c == '\t')))
			fprintf(f, "&#%d;", c);
		else if (c < 0x20 && c != '\n' && c != '\t')
			fputs(REPLACEMENT, f); /* not an XML 1.0 character, even escaped */
		else
			fputc(c, f);
		p++;
	}
}

void report_xml_str(FILE *f, const char *s, int attr)
{
	if (s)
		report_xml_escape(f, s, strlen(s), attr);
}

/* ---- validation --------------------------------------------------------- */

static int bad(infer_error *err, size_t i, const char *field, const char *what)
{
	return infer_error_set(err, INFER_E_FORMAT, -1, "results[%zu].%s: %s", i, field, what);
}

static int validate_result(const json_t *r, size_t i, infer_error *err)
{
	static const char *const required[] = { "id", "suite", "backend", "status" };
	const json_t *v;
	size_t k;

	if (!json_is_object(r))
		return infer_error_set(err, INFER_E_FORMAT, -1, "results[%zu]: expected an object", i);
	for (k = 0; k < sizeof(required) / sizeof(required[0]); k++) {
		if (!json_is_string(json_object_get(r, required[k])))
			return bad(err, i, required[k], "missing or not a string");
		if (!*report_str(r, required[k], ""))
			return bad(err, i, required[k], "empty");
	}
	if (report_result_status(r) < 0)
		return bad(err, i, "status", "expected pass, fail, skip or error");
	v = json_object_get(r, "kind");
	if (v && !json_is_string(v))
		return bad(err, i, "kind", "not a string");
	v = json_object_get(r, "message");
	if (v && !json_is_string(v))
		return bad(err, i, "message", "not a string");
	v = json_object_get(r, "duration_s");
	if (v && (!json_is_number(v) || json_number_value(v) < 0))
		return bad(err, i, "duration_s", "not a non-negative number");
	v = json_object_get(r, "tags");
	if (v && !json_is_array(v))
		return bad(err, i, "tags", "not an array");
	v = json_object_get(r, "details");
	if (v && !json_is_object(v) && !json_is_null(v))
		return bad(err, i, "details", "not an object");
	return 0;
}

int report_validate(const json_t *run, infer_error *err)
{
	const json_t *results, *r;
	const char *schema, *verdict;
	size_t i;
	int rc;

	if (!json_is_object(run))
		return infer_error_set(err, INFER_E_FORMAT, -1, "report: expected an object");
	schema = report_str(run, "schema", NULL);
	if (!schema || strcmp(schema, REPORT_SCHEMA))
		return infer_error_set(err, INFER_E_FORMAT, -1,
				       "schema: expected \"%s\", got %s%s%s", REPORT_SCHEMA,
				       schema ? "\"" : "", schema ? schema : "none",
				       schema ? "\"" : "");
	if (!json_is_object(json_object_get(run, "run")))
		return infer_error_set(err, INFER_E_FORMAT, -1, "run: missing or not an object");
	results = json_object_get(run, "results");
	if (!json_is_array(results))
		return infer_error_set(err, INFER_E_FORMAT, -1, "results: missing or not an array");
	json_array_foreach(results, i, r) {
		rc = validate_result(r, i, err);
		if (rc)
			return rc;
	}
	verdict = report_str(run, "verdict", NULL);
	if (json_object_get(run, "verdict") &&
	    (!verdict || (strcmp(verdict, "pass") && strcmp(verdict, "fail"))))
		return infer_error_set(err, INFER_E_FORMAT, -1,
				       "verdict: expected \"pass\" or \"fail\"");
	return 0;
}

/* ---- atomic output ------------------------------------------------------ */

typedef int (*report_emitter)(const json_t *run, FILE *f);

struct emit_job {
	const json_t *run;
	report_emitter emit;
};

static int emit_body(FILE *f, void *user, infer_error *err)
{
	const struct emit_job *job = user;

	return job->emit(job->run, f);
}

/* A report is for everyone to read: 0644 whatever the umask. */
static int write_atomic(const json_t *run, const char *path, report_emitter emit,
			infer_error *err)
{
	struct emit_job job = { run, emit };
	int rc = report_validate(run, err);

	if (rc)
		return rc;
	return infer_write_atomic(path, 0644, emit_body, &job, err);
}

int report_write_json(const json_t *run, const char *path, infer_error *err)
{
	return write_atomic(run, path, report_emit_json, err);
}

int report_write_junit(const json_t *run, const char *path, infer_error *err)
{
	return write_atomic(run, path, report_emit_junit, err);
}

int report_write_html(const json_t *run, const char *path, infer_error *err)
{
	return write_atomic(run, path, report_emit_html, err);
}

int report_write_markdown(const json_t *run, const char *path, infer_error *err)
{
	return write_atomic(run, path, report_emit_markdown, err);
}

/* mkdir -p */
static int make_dirs(const char *dir, infer_error *err)
{
	char buf[PATH_MAX];
	char *p;
	struct stat st;

	if (!*dir)
		return infer_error_set(err, INFER_E_ARG, -1, "report directory: empty path");
	if (snprintf(buf, sizeof(buf), "%s", dir) >= (int)sizeof(buf))
		return infer_error_set(err, INFER_E_ARG, -1, "%s: path too long", dir);
	for (p = buf + 1; ; p++) {
		char c = *p;

		if (c != '/' && c != '\0')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) && errno != EEXIST)
			return infer_error_set(err, INFER_E_IO, -1, "%s: cannot create: %s",
					       buf, strerror(errno));
		*p = c;
		if (!c)
			break;
	}
	if (stat(dir, &st) || !S_ISDIR(st.st_mode))
		return infer_error_set(err, INFER_E_IO, -1, "%s: not a directory", dir);
	return 0;
}

int report_write_all(const json_t *run, const char *dir, infer_error *err)
{
	static const struct {
		const char *name;
		report_emitter emit;
	} files[] = {
		{ "report.json", report_emit_json },
		{ "junit.xml", report_emit_junit },
		{ "report.html", report_emit_html },
		{ "summary.md", report_emit_markdown },
	};
	char path[PATH_MAX];
	size_t i;
	int rc;

	/* Validate first: a malformed document creates no directory, no file. */
	rc = report_validate(run, err);
	if (rc)
		return rc;
	rc = make_dirs(dir, err);
	if (rc)
		return rc;
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (snprintf(path, sizeof(path), "%s/%s", dir, files[i].name) >= (int)sizeof(path))
			return infer_error_set(err, INFER_E_ARG, -1, "%s: path too long", dir);
		rc = write_atomic(run, path, files[i].emit, err);
		if (rc)
			return rc;
	}
	return 0;
}
