/* conform merge: the report.json files of several runs (shards, a job matrix
 * over GPUs) become one run document with one verdict. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "merge.h"
#include "report/report.h"
#include "run.h"

const char *harness_version(void);

static json_t *load_report(const char *dir, infer_error *err)
{
	char path[PATH_MAX];
	json_error_t je;
	json_t *doc;

	snprintf(path, sizeof(path), "%s/report.json", dir);
	doc = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!doc) {
		infer_error_set(err, INFER_E_FORMAT, -1, "%s:%d:%d: %s", path, je.line, je.column, je.text);
		return NULL;
	}
	/* The writers' own validation names the member: "results[3].status: ...". */
	if (report_validate(doc, err) || !json_is_object(json_object_get(doc, "run"))) {
		char why[sizeof(err->msg)];

		snprintf(why, sizeof(why), "%s", err->msg[0] ? err->msg : "run: missing");
		infer_error_set(err, INFER_E_FORMAT, -1, "%s: not a %s document: %s", path, REPORT_SCHEMA, why);
		json_decref(doc);
		return NULL;
	}
	return doc;
}

/* Adds s to the set-like array a when not already there. */
static void add_unique(json_t *a, const json_t *s)
{
	size_t i;
	json_t *v;

	if (!json_is_string(s))
		return;
	json_array_foreach(a, i, v)
		if (json_equal(v, s))
			return;
	json_array_append(a, (json_t *)s);
}

static const char *min_str(const char *a, const char *b, int want_min)
{
	if (!a)
		return b;
	if (!b)
		return a;
	/* ISO 8601 UTC timestamps order as strings. */
	return (strcmp(a, b) < 0) == want_min ? a : b;
}

json_t *merge_reports(const char *const *dirs, int n, infer_error *err)
{
	json_t *results = json_array(), *sources = json_array(), *hosts = json_array(), *gpus = json_array();
	json_t *commits = json_array(), *docs = json_array(), *meta, *doc;
	const char *start = NULL, *end = NULL;
	int i, no_skip = 0;

	for (i = 0; i < n; i++) {
		json_t *d = load_report(dirs[i], err), *run, *r;
		size_t k;

		if (!d)
			goto fail;
		json_array_append_new(docs, d);
		run = json_object_get(d, "run");
		json_array_append_new(sources, json_pack("{s:s, s:O, s:O}", "dir", dirs[i], "run", run, "verdict",
							 json_object_get(d, "verdict")));
		add_unique(hosts, json_object_get(run, "host"));
		add_unique(gpus, json_object_get(run, "gpu"));
		add_unique(commits, json_object_get(run, "git_commit"));
		start = min_str(start, json_string_value(json_object_get(run, "started")), 1);
		end = min_str(end, json_string_value(json_object_get(run, "finished")), 0);
		no_skip |= json_is_true(json_object_get(run, "no_skip"));
		json_array_foreach(json_object_get(d, "results"), k, r) {
			json_t *c = json_deep_copy(r);

			/* Which run a result came from: the same check may run on several GPUs. */
			json_object_set_new(c, "source", json_string(dirs[i]));
			json_array_append_new(results, c);
		}
	}
	meta = json_pack("{s:s, s:s, s:b, s:s?, s:s?, s:O, s:O, s:O, s:o, s:b}", "tool", "conform", "version",
			 harness_version(), "merged", 1, "started", start, "finished", end, "hosts", hosts,
			 "gpus", gpus, "git_commits", commits, "sources", sources, "no_skip", no_skip);
	/* Single-valued fields keep their meaning when every run agrees. */
	json_object_set_new(meta, "host", json_array_size(hosts) == 1 ? json_incref(json_array_get(hosts, 0)) :
									json_null());
	json_object_set_new(meta, "gpu", json_array_size(gpus) == 1 ? json_incref(json_array_get(gpus, 0)) :
								      json_null());
	json_object_set_new(meta, "git_commit", json_array_size(commits) == 1 ?
							json_incref(json_array_get(commits, 0)) : json_null());
	doc = json_pack("{s:s, s:o, s:O}", "schema", REPORT_SCHEMA, "run", meta, "results", results);
	if (doc)
		run_finish_verdict(doc, no_skip);
	json_decref(results);
	json_decref(hosts);
	json_decref(gpus);
	json_decref(commits);
	json_decref(docs);
	return doc;
fail:
	json_decref(results);
	json_decref(sources);
	json_decref(hosts);
	json_decref(gpus);
	json_decref(commits);
	json_decref(docs);
	return NULL;
}
