/* The HTTP worker (libmicrohttpd): one model, one session, one KV cache.
 *
 *   GET  /health          {"status":"ok","model","backend","weights_bytes_device"}
 *   POST /v1/generate     {prompt, chat, max_tokens, temperature, top_k, top_p,
 *                          min_p, seed, stop, stream}; SSE per token when stream
 *   POST /v1/completions  OpenAI's text-completion shape
 *
 * Requests are queued and run one at a time by a single generation thread, so
 * two requests never share the KV cache. Errors are JSON bodies
 * {"error":{"message","type","param","code"}} with the matching status. */
#ifndef INFER_SERVER_H
#define INFER_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "infer/error.h"
#include "infer/generate.h"
#include "infer/session.h"

/* What requests run on. The real engine wraps an infer_session; tests plug in
 * fakes (canned text, tampered log-probabilities) to prove that the haiku
 * check can fail. generate has infer_generate()'s contract. */
typedef struct infer_server_engine {
	void *user;
	int (*generate)(void *user, const infer_gen_params *p, infer_gen_cb cb, void *cb_user,
			infer_gen_result *res, infer_error *err);
	const char *model_name;        /* shown by /health and in OpenAI responses */
	const char *backend;           /* "cpu" or "cuda" */
	uint64_t weights_bytes_device; /* 0 on cpu */
	int32_t n_ctx;                 /* upper bound for max_tokens */
	int32_t n_vocab;               /* upper bound for top_k */
} infer_server_engine;

/* Fills e with an engine that runs infer_generate() on s. */
void infer_server_engine_session(infer_server_engine *e, infer_session *s, const char *model_name);

typedef struct infer_server_opts {
	const char *host;   /* numeric address or name to bind; NULL: 127.0.0.1 */
	uint16_t port;      /* 0: any free port (see infer_server_port) */
	int max_queue;      /* requests that may wait behind the running one; more get 503 */
	size_t max_body;    /* request body limit in bytes; more gets 413 */
	int max_conns;      /* open connections; 0: 256 */
} infer_server_opts;

void infer_server_opts_default(infer_server_opts *o);

typedef struct infer_server infer_server;

/* Binds, starts the HTTP threads and the generation thread. e is copied; its
 * user pointer and strings must outlive the server. */
infer_server *infer_server_start(const infer_server_engine *e, const infer_server_opts *o,
				 infer_error *err);
/* The port actually bound (useful with port 0). */
uint16_t infer_server_port(const infer_server *s);
/* Requests served so far (any status), and generations cancelled because the
 * client went away. */
uint64_t infer_server_requests(const infer_server *s);
uint64_t infer_server_cancelled(const infer_server *s);
/* Cancels what runs, fails what waits, joins every thread and frees s. */
void infer_server_stop(infer_server *s);

/* A request body parsed and validated exactly as POST /v1/generate
 * (completions = 0) or /v1/completions does before queueing it; separate so
 * the fuzzer and tests reach the parser without HTTP. On error returns
 * INFER_E_FORMAT with the 400 reply's message ("field: what" when a field is
 * at fault) in err->msg and sets *out to NULL. */
typedef struct infer_server_request infer_server_request;

int infer_server_parse_request(const infer_server_engine *e, int completions, const char *body,
			       size_t n, infer_server_request **out, infer_error *err);
/* p's strings point into r and live until infer_server_request_free(r). */
void infer_server_request_params(const infer_server_request *r, infer_gen_params *p, int *stream);
void infer_server_request_free(infer_server_request *r);

#endif
