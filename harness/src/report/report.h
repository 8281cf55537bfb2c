/* Report writers. Input is the run document (the exact content of
 * report.json, schema in specs/README.md):
 *   {"schema": "conform-report/1", "run": {...metadata...},
 *    "results": [{"id","suite","kind","backend","status","duration_s","message",
 *                 "tags","details"}...], "verdict": "pass"|"fail"} */
#ifndef HARNESS_REPORT_H
#define HARNESS_REPORT_H

#include <jansson.h>

#include "infer/error.h"

int report_write_json(const json_t *run, const char *path, infer_error *err);
int report_write_junit(const json_t *run, const char *path, infer_error *err);
int report_write_html(const json_t *run, const char *path, infer_error *err);
int report_write_markdown(const json_t *run, const char *path, infer_error *err);
/* All four into dir (created when missing), each written to a temp file and renamed. */
int report_write_all(const json_t *run, const char *dir, infer_error *err);

#endif
