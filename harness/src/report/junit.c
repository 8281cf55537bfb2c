/* junit.xml in the Ant/Jenkins JUnit shape (harness/tests/junit.xsd): one
 * <testsuite> per suite, one <testcase> per check x backend with
 * classname "<suite>.<backend>" so CI tools group by suite, then backend.
 * A fail carries <failure message="metric line">, an error <error>, a skip
 * <skipped message="reason">; the body repeats the evidence as text. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "haiku_report.h"
#include "report_internal.h"

static void attr(FILE *f, const char *name, const char *value)
{
	fprintf(f, " %s=\"", name);
	report_xml_str(f, value, 1);
	fputc('"', f);
}

/* "[1,3]" for an array of scalars (a multi-index). */
static void scalar_list(FILE *f, const json_t *a)
{
	const json_t *v;
	char buf[64];
	size_t i;

	fputc('[', f);
	json_array_foreach(a, i, v) {
		report_fmt_value(v, buf, sizeof(buf));
		fputs(i ? "," : "", f);
		report_xml_str(f, buf, 0);
	}
	fputc(']', f);
}

/* "a=1, b=[2,3]" for the members of an object but nested objects. */
static void kv_line(FILE *f, const char *label, const json_t *obj)
{
	const char *key;
	json_t *v;
	char buf[64];
	int first = 1;

	if (!json_is_object(obj) || !json_object_size(obj))
		return;
	fprintf(f, "\n%s: ", label);
	json_object_foreach((json_t *)obj, key, v) {
		if (json_is_object(v))
			continue;
		fputs(first ? "" : ", ", f);
		report_xml_str(f, key, 0);
		fputc('=', f);
		first = 0;
		if (json_is_array(v)) {
			scalar_list(f, v);
			continue;
		}
		report_fmt_value(v, buf, sizeof(buf));
		report_xml_str(f, buf, 0);
	}
}

static void first_bad_layer(FILE *f, const json_t *layers)
{
	const json_t *l;
	size_t i;

	json_array_foreach(layers, i, l) {
		if (json_is_false(json_object_get(l, "ok"))) {
			fprintf(f, "\ndivergence starts at layer tap %zu: ", i);
			report_xml_str(f, report_str(l, "tap", "?"), 0);
			return;
		}
	}
}

/* The evidence as plain text: what a CI log shows under the failure. */
static void evidence(FILE *f, const json_t *r)
{
	const json_t *d = json_object_get(r, "details");

	report_xml_str(f, report_str(r, "message", ""), 0);
	kv_line(f, "metrics", json_object_get(d, "metrics"));
	kv_line(f, "tolerance", json_object_get(d, "tolerance"));
	kv_line(f, "worst", json_object_get(d, "worst"));
	first_bad_layer(f, json_object_get(d, "layers"));
}

static void testcase(FILE *f, const json_t *r)
{
	char cls[512], name[1024], time[32];
	int st = report_result_status(r);
	char *transcript = haiku_transcript_text(json_object_get(json_object_get(r, "details"),
								  "transcript"));

	snprintf(cls, sizeof(cls), "%s.%s", report_str(r, "suite", ""),
		 report_str(r, "backend", ""));
	snprintf(time, sizeof(time), "%.3f", json_number_value(json_object_get(r, "duration_s")));
	/* A merged run may hold the same check from several runs (a job matrix
	 * over GPUs): the source keeps the test case names unique. */
	if (report_str(r, "source", NULL))
		snprintf(name, sizeof(name), "%s [%s]", report_str(r, "id", ""),
			 report_str(r, "source", ""));
	else
		snprintf(name, sizeof(name), "%s", report_str(r, "id", ""));
	fputs("    <testcase", f);
	attr(f, "name", name);
	attr(f, "classname", cls);
	attr(f, "time", time);
	if (st == RS_PASS && !transcript) {
		fputs("/>\n", f);
		return;
	}
	fputs(">\n", f);
	if (st == RS_PASS) {
		/* nothing but the transcript below */
	} else if (st == RS_SKIP) {
		fputs("      <skipped", f);
		attr(f, "message", report_str(r, "message", ""));
		fputs("/>\n", f);
	} else {
		const char *tag = st == RS_FAIL ? "failure" : "error";

		fprintf(f, "      <%s", tag);
		attr(f, "message", report_str(r, "message", ""));
		attr(f, "type", report_str(r, "kind", tag));
		fputs(">", f);
		evidence(f, r);
		fprintf(f, "</%s>\n", tag);
	}
	if (transcript) { /* the haiku check's evidence, whatever its status */
		fputs("      <system-out>", f);
		report_xml_str(f, transcript, 0);
		fputs("</system-out>\n", f);
		free(transcript);
	}
	fputs("    </testcase>\n", f);
}

static void counts_attrs(FILE *f, const struct report_counts *c)
{
	char time[32];

	snprintf(time, sizeof(time), "%.3f", c->duration_s);
	fprintf(f, " tests=\"%d\" failures=\"%d\" errors=\"%d\" skipped=\"%d\"", c->total,
		c->n[RS_FAIL], c->n[RS_ERROR], c->n[RS_SKIP]);
	attr(f, "time", time);
}

/* The schema's timestamp is an xs:dateTime without zone: keep the
 * "YYYY-MM-DDTHH:MM:SS" of run.started (UTC), or leave it out. */
static int timestamp_of(const json_t *meta, char out[20])
{
	static const char pattern[] = "dddd-dd-ddTdd:dd:dd";
	const char *s = report_str(meta, "started", "");
	int i;

	for (i = 0; pattern[i]; i++) {
		if (pattern[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != pattern[i])
			return 0;
	}
	memcpy(out, s, 19);
	out[19] = '\0';
	return 1;
}

static void property(void *ctx, const char *name, const char *value)
{
	FILE *f = ctx;

	fputs("      <property", f);
	attr(f, "name", name);
	attr(f, "value", value);
	fputs("/>\n", f);
}

/* Run metadata as properties, nested members as "a.b". */
static void properties(FILE *f, const json_t *meta)
{
	fputs("    <properties>\n", f);
	report_flatten(meta, property, f);
	fputs("    </properties>\n", f);
}

static void testsuite(FILE *f, const json_t *run, const char *suite, size_t id)
{
	const json_t *results = json_object_get(run, "results");
	const json_t *meta = json_object_get(run, "run");
	const json_t *r;
	struct report_counts c;
	char ts[20];
	size_t i;

	report_count(results, suite, &c);
	fputs("  <testsuite", f);
	attr(f, "name", suite);
	counts_attrs(f, &c);
	fprintf(f, " id=\"%zu\"", id);
	if (timestamp_of(meta, ts))
		attr(f, "timestamp", ts);
	if (report_str(meta, "host", NULL))
		attr(f, "hostname", report_str(meta, "host", NULL));
	fputs(">\n", f);
	properties(f, meta);
	json_array_foreach(results, i, r) {
		if (!strcmp(report_str(r, "suite", ""), suite))
			testcase(f, r);
	}
	fputs("  </testsuite>\n", f);
}

int report_emit_junit(const json_t *run, FILE *f)
{
	const json_t *results = json_object_get(run, "results");
	json_t *suites = report_suites(results), *s;
	struct report_counts c;
	size_t i;

	report_count(results, NULL, &c);
	fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"conform\"", f);
	counts_attrs(f, &c);
	fputs(">\n", f);
	json_array_foreach(suites, i, s)
		testsuite(f, run, json_string_value(s), i);
	fputs("</testsuites>\n", f);
	json_decref(suites);
	return ferror(f) ? -1 : 0;
}
