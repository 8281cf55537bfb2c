/* Report writers. Input is the run document (the exact content of
 * report.json, schema in specs/README_report.md):
 *   {"schema": "conform-report/1", "run": {...metadata...},
 *    "results": [{"id","suite","kind","backend","status","duration_s","message",
 *                 "tags","details"}...], "verdict": "pass"|"fail"} */
#ifndef HARNESS_REPORT_H
#define HARNESS_REPORT_H

#include <jansson.h>

#include "infer/error.h"

#define REPORT_SCHEMA "conform-report/1"

/* Checks the shape every writer relies on: schema string, results array, each
 * result's id/suite/backend/status (pass|fail|skip|error) and the types of the
 * optional members. The message names the member: "results[3].status: ...".
 * Used by report_write_* (nothing is written when it fails) and by merge. */
int report_validate(const json_t *run, infer_error *err);

/* Each writes one file through a temp file + rename: never a partial file. */
int report_write_json(const json_t *run, const char *path, infer_error *err);
int report_write_junit(const json_t *run, const char *path, infer_error *err);
int report_write_html(const json_t *run, const char *path, infer_error *err);
int report_write_markdown(const json_t *run, const char *path, infer_error *err);
/* All four into dir (created with parents when missing), each written to a temp
 * file and renamed: report.json, junit.xml, report.html, summary.md. */
int report_write_all(const json_t *run, const char *dir, infer_error *err);

#endif
