/* summary.md: the verdict, counts per suite and every non-passing check, for
 * CI logs and job summaries (GitHub/GitLab render it). Passing checks are only
 * counted: a run has hundreds, and the HTML page lists them all. Table cells
 * are escaped so a message with '|', '<', backticks or newlines cannot break
 * the table or inject markup. */
#include <stdlib.h>
#include <string.h>

#include "haiku_report.h"
#include "report_internal.h"

#define MD_IDS_SHOWN 3

/* Plain text in a table cell. */
static void md_text(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '|' || c == '\\' || c == '`' || c == '*' || c == '_' ||
		    c == '[' || c == ']' || c == '#')
			fprintf(f, "\\%c", c);
		else if (c == '<')
			fputs("&lt;", f);
		else if (c == '>')
			fputs("&gt;", f);
		else if (c == '&')
			fputs("&amp;", f);
		else if (c < 0x20 || c == 0x7f)
			fputc(' ', f);
		else
			fputc(c, f);
	}
}

/* A code span, delimited by one backtick more than the longest run inside. */
static void md_code(FILE *f, const char *s)
{
	int run = 0, longest = 0, i;
	const char *p;
	size_t len = strlen(s);
	int pad = len && (s[0] == '`' || s[len - 1] == '`' || s[0] == ' ');

	if (!len) {
		fputs("\"\"", f); /* an empty code span does not render */
		return;
	}
	for (p = s; *p; p++) {
		run = *p == '`' ? run + 1 : 0;
		if (run > longest)
			longest = run;
	}
	for (i = 0; i <= longest; i++)
		fputc('`', f);
	fputs(pad ? " " : "", f);
	for (p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '|')
			fputs("\\|", f); /* GFM splits cells before parsing code spans */
		else if (c < 0x20 || c == 0x7f)
			fputc(' ', f);
		else
			fputc(c, f);
	}
	fputs(pad ? " " : "", f);
	for (i = 0; i <= longest; i++)
		fputc('`', f);
}

static void meta_line(void *ctx, const char *name, const char *value)
{
	FILE *f = ctx;

	fputs("- ", f);
	md_text(f, name);
	fputs(": ", f);
	md_code(f, value);
	fputc('\n', f);
}

static void suite_table(FILE *f, const json_t *results)
{
	json_t *suites = report_suites(results), *s;
	struct report_counts c;
	size_t i;

	fputs("\n| suite | checks | pass | fail | skip | error |\n|---|--:|--:|--:|--:|--:|\n", f);
	json_array_foreach(suites, i, s) {
		report_count(results, json_string_value(s), &c);
		fputs("| ", f);
		md_text(f, json_string_value(s));
		fprintf(f, " | %d | %d | %d | %d | %d |\n", c.total, c.n[RS_PASS], c.n[RS_FAIL],
			c.n[RS_SKIP], c.n[RS_ERROR]);
	}
	json_decref(suites);
}

/* One table of the results whose status is st1 or st2; nothing when none. */
static void listing(FILE *f, const json_t *results, const char *title, int st1, int st2)
{
	const json_t *r;
	size_t i;
	int any = 0;

	json_array_foreach(results, i, r) {
		int st = report_result_status(r);

		if (st != st1 && st != st2)
			continue;
		if (!any)
			fprintf(f, "\n## %s\n\n| status | suite | check | backend | message |\n"
				"|---|---|---|---|---|\n", title);
		any = 1;
		fprintf(f, "| %s | ", report_status_names[st]);
		md_text(f, report_str(r, "suite", ""));
		fputs(" | ", f);
		md_code(f, report_str(r, "id", ""));
		fputs(" | ", f);
		md_text(f, report_str(r, "backend", ""));
		fputs(" | ", f);
		md_text(f, report_str(r, "message", ""));
		fputs(" |\n", f);
	}
}

/* Skips grouped by reason: a CPU-only run skips every CUDA check for the same
 * reason, and one line says that better than hundreds. */
static void skipped(FILE *f, const json_t *results)
{
	json_t *groups = json_object(), *g, *ids;
	const json_t *r;
	const char *reason;
	size_t i, k;

	json_array_foreach(results, i, r) {
		if (report_result_status(r) != RS_SKIP)
			continue;
		reason = report_str(r, "message", "");
		g = json_object_get(groups, reason);
		if (!g) {
			g = json_pack("{si s[]}", "n", 0, "ids");
			json_object_set_new(groups, reason, g);
		}
		json_object_set_new(g, "n", json_integer(json_integer_value(json_object_get(g, "n")) + 1));
		ids = json_object_get(g, "ids");
		if (json_array_size(ids) < MD_IDS_SHOWN)
			json_array_append(ids, json_object_get(r, "id"));
	}
	if (json_object_size(groups))
		fputs("\n## Skipped\n\n| checks | reason | e.g. |\n|--:|---|---|\n", f);
	json_object_foreach(groups, reason, g) {
		json_int_t n = json_integer_value(json_object_get(g, "n"));

		ids = json_object_get(g, "ids");
		fprintf(f, "| %lld | ", (long long)n);
		md_text(f, reason);
		fputs(" | ", f);
		for (k = 0; k < json_array_size(ids); k++) {
			fputs(k ? ", " : "", f);
			md_code(f, json_string_value(json_array_get(ids, k)));
		}
		if ((size_t)n > json_array_size(ids))
			fprintf(f, " and %lld more", (long long)n - (long long)json_array_size(ids));
		fputs(" |\n", f);
	}
	json_decref(groups);
}

/* The haiku check's transcript (minute, word, every haiku with seed, ids and
 * logprobs, replay errors, speed) as an indented code block per result. */
static void transcripts(FILE *f, const json_t *results)
{
	const json_t *r;
	size_t i;

	json_array_foreach(results, i, r) {
		char *t = haiku_transcript_text(json_object_get(json_object_get(r, "details"),
								"transcript"));

		if (!t)
			continue;
		fputs("\n## Transcript: ", f);
		md_code(f, report_str(r, "id", ""));
		fprintf(f, " on %s (%s)\n\n    ", report_str(r, "backend", ""),
			report_status_names[report_result_status(r)]);
		for (const char *p = t; *p; p++) {
			if (*p == '\n')
				fputs(p[1] ? "\n    " : "\n", f);
			else
				fputc(*p, f);
		}
		free(t);
	}
}

int report_emit_markdown(const json_t *run, FILE *f)
{
	const json_t *results = json_object_get(run, "results");
	const char *verdict = report_verdict(run);
	struct report_counts c;

	report_count(results, NULL, &c);
	fprintf(f, "# conform: %s\n\n", !strcmp(verdict, "pass") ? "PASS" : "FAIL");
	fprintf(f, "**%d checks**: %d pass, %d fail, %d skip, %d error (%.2f s of checks)\n\n",
		c.total, c.n[RS_PASS], c.n[RS_FAIL], c.n[RS_SKIP], c.n[RS_ERROR], c.duration_s);
	report_flatten(json_object_get(run, "run"), meta_line, f);
	if (c.total)
		suite_table(f, results);
	listing(f, results, "Failures and errors", RS_FAIL, RS_ERROR);
	skipped(f, results);
	transcripts(f, results);
	if (!c.n[RS_FAIL] && !c.n[RS_ERROR])
		fputs("\nNo failures.\n", f);
	return ferror(f) ? -1 : 0;
}
