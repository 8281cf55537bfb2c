/* The haiku check's transcript (details.transcript) as plain text, so the
 * report formats without a JSON viewer (junit.xml's system-out, summary.md)
 * show the same evidence as report.json and report.html: minute, word,
 * prompt, every haiku with its seed, token ids and log-probabilities, the
 * replay error statistics, tokens/s, time to first token, device memory. */
#ifndef HARNESS_HAIKU_REPORT_H
#define HARNESS_HAIKU_REPORT_H

#include <jansson.h>

/* malloc'd multi-line text (lines end in '\n'), or NULL when t is not a
 * transcript object. */
char *haiku_transcript_text(const json_t *t);

#endif
