/* Running the checks of a loaded spec over backends, and the run document
 * (the content of report.json; shape in report.h, schema in specs/README.md). */
#ifndef HARNESS_RUN_H
#define HARNESS_RUN_H

#include <jansson.h>
#include <stdio.h>

#include "report/report.h" /* REPORT_SCHEMA */
#include "spec.h"

#ifndef REPORT_SCHEMA
#define REPORT_SCHEMA "conform-report/1"
#endif

struct run_options {
	const char *backend; /* "cpu", "cuda" or "all" */
	const char *filter;  /* glob on the check id ("tag:GLOB" matches a tag); NULL: all */
	int shard_k;         /* 1-based slice K of N; shard_n == 0: no sharding */
	int shard_n;
	int no_skip;         /* a skip makes the verdict fail */
	int progress;        /* 1: one rewritten progress line on stderr (a TTY) */
	FILE *log;           /* one line per result (NULL: quiet) */
	int argc;            /* the command line, recorded in the metadata */
	char **argv;
};

/* 1 when the check is selected by the filter and the shard. */
int run_selects(const struct check *c, const struct run_options *o);
/* 1 when the check runs on this backend under o->backend. */
int run_backend_selected(const struct check *c, const char *backend, const struct run_options *o);

/* Runs every selected check on every selected backend; returns the run
 * document with verdict and counts filled in. NULL only when out of memory. */
json_t *run_checks(const struct spec *s, const struct run_options *o);

/* Recomputes "counts" and "verdict" of a run document from its results. */
void run_finish_verdict(json_t *doc, int no_skip);

/* "2026-11-22T00:21:52Z" for t (UTC). */
void run_iso_time(double t, char *buf, size_t n);
double run_now(void);

/* Host, OS, git commit, tool versions, backends and GPU name. */
json_t *run_metadata(void);

#endif
