/* Shared by the four report writers: each is an emitter that writes one
 * format to a FILE; report.c wraps it in temp-file-and-rename. The run
 * document has been through report_validate() before any emitter sees it, so
 * emitters may rely on its shape (statuses are one of the four names). */
#ifndef HARNESS_REPORT_INTERNAL_H
#define HARNESS_REPORT_INTERNAL_H

#include <jansson.h>
#include <stdio.h>

enum { RS_PASS, RS_FAIL, RS_SKIP, RS_ERROR, RS_COUNT };

struct report_counts {
	int total;
	int n[RS_COUNT]; /* by enum above */
	double duration_s;
};

extern const char *const report_status_names[RS_COUNT]; /* "pass", ... */

/* Index into report_status_names, -1 when the string is none of them. */
int report_status_index(const char *s);
int report_result_status(const json_t *result);

void report_count(const json_t *results, const char *suite, struct report_counts *c);
/* The document's verdict, or "fail" when any result failed or errored. */
const char *report_verdict(const json_t *run);
/* Suite names in order of first appearance (new reference). */
json_t *report_suites(const json_t *results);

/* String member or dflt. */
const char *report_str(const json_t *obj, const char *key, const char *dflt);
/* A JSON scalar as short text: numbers %.4g (integers exact), strings as-is. */
void report_fmt_value(const json_t *v, char *buf, size_t n);

/* Calls fn for every scalar of obj (nested objects as "a.b", at most three
 * levels), arrays of scalars joined by spaces; arrays of objects are left out.
 * Run metadata becomes JUnit properties and summary.md lines this way. */
typedef void (*report_kv_fn)(void *ctx, const char *name, const char *value);
void report_flatten(const json_t *obj, report_kv_fn fn, void *ctx);

/* Markup escaping of UTF-8 text (jansson strings are valid UTF-8). Characters
 * XML 1.0 forbids even escaped (C0 controls but tab/newline/CR, U+FFFE/FFFF)
 * become U+FFFD. attr: also escape quotes and turn newline/tab/CR into
 * character references so attribute values keep them. */
void report_xml_escape(FILE *f, const char *s, size_t len, int attr);
void report_xml_str(FILE *f, const char *s, int attr);

int report_emit_json(const json_t *run, FILE *f);
int report_emit_junit(const json_t *run, FILE *f);
int report_emit_html(const json_t *run, FILE *f);
int report_emit_markdown(const json_t *run, FILE *f);

#endif
