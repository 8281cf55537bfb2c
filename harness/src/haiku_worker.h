/* What the haiku check needs to talk to a worker: start `infer serve` (or a
 * test's fake worker) as a child process on a free loopback port, wait for
 * /health, stream /v1/generate over libcurl and parse its SSE events, and
 * stop the child whatever happened. */
#ifndef HARNESS_HAIKU_WORKER_H
#define HARNESS_HAIKU_WORKER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "infer/error.h"

struct haiku_worker {
	pid_t pid;         /* 0 when not running */
	char url[128];     /* http://127.0.0.1:PORT */
	char log_path[64]; /* the child's stdout + stderr */
	int status;        /* wait status once reaped */
};

/* Starts argv (argv[0] a path) with stdout and stderr sent to a temporary log,
 * reads the "listening on http://HOST:PORT" line the worker prints and polls
 * GET /health until it answers 200. *health receives its body. On failure the
 * child is stopped and err names the cause with the tail of its log. */
int haiku_worker_start(struct haiku_worker *w, char *const *argv, double timeout_s,
		       json_t **health, infer_error *err);
/* SIGTERM, a grace period, then SIGKILL; reaps the child, removes the log.
 * Safe to call twice and on a worker that never started. */
void haiku_worker_stop(struct haiku_worker *w);
/* The last n-1 bytes of the worker's log (for error messages). */
void haiku_worker_log_tail(const struct haiku_worker *w, char *buf, size_t n);

/* GET url; returns the parsed JSON body (NULL with err on failure). */
json_t *haiku_http_get_json(const char *url, double timeout_s, long *status, infer_error *err);

/* One streamed generation as the client saw it. */
struct haiku_stream {
	int32_t *ids;
	float *logprobs;
	json_t *texts;     /* array: the "text" of every token event */
	size_t n, cap;
	char *text;        /* concatenation of the token texts */
	size_t text_len;
	json_t *final;     /* the {"done":true,...} event */
	long status;       /* HTTP status */
	double ttft_ms;    /* request sent -> first token event, client side */
	double total_ms;
};

/* POSTs body to url with stream true and parses the SSE events. Any event
 * that is not a token object or the final object is an error naming the
 * event number; so is a stream that ends without the final event. */
int haiku_http_stream(const char *url, const char *body, double timeout_s,
		      struct haiku_stream *out, infer_error *err);
void haiku_stream_free(struct haiku_stream *s);

/* The SSE parser on its own (for tests): feeds bytes, returns 0 or an error. */
struct haiku_sse {
	char *buf;
	size_t n, cap;
	int n_events;
	double t0;
	struct haiku_stream *out;
	infer_error err;
	int failed;
};
int haiku_sse_feed(struct haiku_sse *p, const char *data, size_t n);
/* Call at the end: an error when the final event never came. */
int haiku_sse_finish(struct haiku_sse *p, infer_error *err);

#endif
