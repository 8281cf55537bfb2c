/* The HTTP worker: libmicrohttpd in thread-per-connection mode in front of a
 * single generation thread.
 *
 * Why this shape: one model has one KV cache, so requests must run strictly
 * one after another. Each connection thread parses and validates its request,
 * puts a job on a FIFO queue and then waits for it. The generation thread
 * pops jobs and runs them; its per-token callback appends ready-to-send bytes
 * (SSE events) to the job's buffer and wakes the connection thread, whose
 * content-reader callback hands them to MHD. When the client goes away MHD
 * destroys the response, the free callback marks the job cancelled and the
 * next token callback stops the generation.
 *
 * Locking: one mutex (srv->mu) guards the queue and every job's state. It is
 * never held while the engine computes a token. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <jansson.h>

#include "infer/model.h"
#include "infer/server.h"
#include "infer/tokenizer.h"

#define DEFAULT_MAX_BODY (1u << 20)
#define DEFAULT_MAX_QUEUE 64
#define DEFAULT_MAX_CONNS 256
#define MAX_STOP 8
#define MAX_STOP_LEN 256

enum route { R_NONE, R_HEALTH, R_GENERATE, R_COMPLETIONS };
enum api { API_GENERATE, API_COMPLETIONS };
enum job_state { J_QUEUED, J_RUNNING, J_DONE };

struct sbuf {
	char *p;
	size_t n, cap;
};

/* A validated request. */
struct req {
	enum api api;
	int stream;
	int logprobs;        /* completions: return token log-probabilities */
	char *prompt;
	int chat;
	int32_t max_tokens;
	infer_sampler_params sp;
	char *stop[MAX_STOP];
	int n_stop;
};

struct job {
	struct req rq;
	pthread_cond_t cv;   /* signalled on new bytes and on J_DONE */
	int refs;            /* connection + queue/worker */
	enum job_state state;
	int cancelled;       /* the client went away or the server stops */
	struct sbuf out;     /* bytes for the client (SSE events, or the whole body) */
	size_t sent;
	int http_status;     /* non-stream: status of the body in out */
	size_t n_tokens;     /* token events produced so far */
	json_t *items;       /* non-stream: per-token objects */
	char id[40];
	long long created;
	struct job *next;
	struct infer_server *srv;
};

struct infer_server {
	infer_server_engine e;
	infer_server_opts o;
	struct MHD_Daemon *d;
	uint16_t port;
	pthread_t worker;
	pthread_mutex_t mu;
	pthread_cond_t cv;   /* worker: a job was queued or stop */
	struct job *head, *tail;
	int n_waiting;
	int busy;
	int stopping;
	uint64_t n_requests, n_cancelled, next_id;
};

/* Per-connection state while the body arrives. */
struct conn {
	enum route route;
	struct sbuf body;
	int too_big;
};

/* ---- small buffers -------------------------------------------------------- */

static int sbuf_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap < b->n + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p)
			return -1;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
	return 0;
}

/* Appends "data: <compact json>\n\n" and consumes j. */
static int sbuf_add_event(struct sbuf *b, json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);
	int rc = -1;

	json_decref(j);
	if (!s)
		return -1;
	if (!sbuf_add(b, "data: ", 6) && !sbuf_add(b, s, strlen(s)) && !sbuf_add(b, "\n\n", 2))
		rc = 0;
	free(s);
	return rc;
}

/* A JSON string from bytes that should be UTF-8; anything that is not becomes
 * U+FFFD so a broken detokenizer shows up in the text instead of as a 500. */
static json_t *json_text(const char *s, size_t n)
{
	json_t *j = json_stringn(s, n);
	struct sbuf b = { 0 };

	if (j || !n)
		return j ? j : json_string("");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x80 && sbuf_add(&b, s + i, 1))
			break;
		if (c >= 0x80 && sbuf_add(&b, "\xef\xbf\xbd", 3))
			break;
	}
	j = json_stringn(b.p ? b.p : "", b.n);
	free(b.p);
	return j;
}

/* ---- validation ----------------------------------------------------------- */

struct perr {
	char param[64]; /* copied: the request JSON is freed before the reply */
	char msg[256];
};

static int perr_set(struct perr *e, const char *param, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int perr_set(struct perr *e, const char *param, const char *fmt, ...)
{
	va_list ap;

	snprintf(e->param, sizeof(e->param), "%s", param ? param : "");
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return -1;
}

/* Absent or null keeps the default. */
static const json_t *field(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	return json_is_null(v) ? NULL : v;
}

static int get_bool(const json_t *o, const char *key, int *out, struct perr *e)
{
	const json_t *v = field(o, key);

	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return perr_set(e, key, "'%s' must be a boolean", key);
	*out = json_is_true(v);
	return 0;
}

static int get_int(const json_t *o, const char *key, int64_t lo, int64_t hi, int64_t *out,
		   struct perr *e)
{
	const json_t *v = field(o, key);

	if (!v)
		return 0;
	if (!json_is_integer(v))
		return perr_set(e, key, "'%s' must be an integer", key);
	if (json_integer_value(v) < lo || json_integer_value(v) > hi)
		return perr_set(e, key, "'%s' = %lld is out of range [%lld, %lld]", key,
				(long long)json_integer_value(v), (long long)lo, (long long)hi);
	*out = json_integer_value(v);
	return 0;
}

static int get_num(const json_t *o, const char *key, double lo, double hi, float *out,
		   struct perr *e)
{
	const json_t *v = field(o, key);
	double x;

	if (!v)
		return 0;
	if (!json_is_number(v))
		return perr_set(e, key, "'%s' must be a number", key);
	x = json_number_value(v);
	if (!isfinite(x) || x < lo || x > hi)
		return perr_set(e, key, "'%s' = %g is out of range [%g, %g]", key, x, lo, hi);
	*out = (float)x;
	return 0;
}

static int get_stop(const json_t *o, struct req *rq, struct perr *e)
{
	const json_t *v = field(o, "stop");
	size_t i, n;

	if (!v)
		return 0;
	if (json_is_string(v)) {
		v = json_pack("[O]", v);
		n = json_array_size(v);
	} else if (json_is_array(v)) {
		json_incref((json_t *)v);
		n = json_array_size(v);
	} else {
		return perr_set(e, "stop", "'stop' must be a string or an array of strings");
	}
	if (n > MAX_STOP) {
		json_decref((json_t *)v);
		return perr_set(e, "stop", "'stop' has %zu strings, at most %d allowed", n, MAX_STOP);
	}
	for (i = 0; i < n; i++) {
		const json_t *s = json_array_get(v, i);
		size_t len = json_string_length(s);

		if (!json_is_string(s) || len == 0 || len > MAX_STOP_LEN) {
			json_decref((json_t *)v);
			return perr_set(e, "stop", "'stop[%zu]' must be a string of 1..%d bytes", i,
					MAX_STOP_LEN);
		}
		rq->stop[rq->n_stop++] = strdup(json_string_value(s));
	}
	json_decref((json_t *)v);
	return 0;
}

static int check_keys(const json_t *o, const char *const *allowed, struct perr *e)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)o, key, v) {
		const char *const *a;

		for (a = allowed; *a && strcmp(*a, key); a++)
			;
		if (!*a)
			return perr_set(e, key, "unknown field '%s'", key);
	}
	return 0;
}

/* Fields shared by both APIs; ranges differ only for temperature. */
static int parse_common(const json_t *o, struct req *rq, const infer_server_engine *en,
			double max_temp, struct perr *e)
{
	int64_t max_tokens = rq->max_tokens, top_k = rq->sp.top_k;
	int64_t seed = (int64_t)rq->sp.seed, last_n = rq->sp.repeat_last_n;

	if (get_int(o, "max_tokens", 1, en->n_ctx > 0 ? en->n_ctx : INT32_MAX, &max_tokens, e) ||
	    get_num(o, "temperature", 0.0, max_temp, &rq->sp.temperature, e) ||
	    get_int(o, "top_k", 0, en->n_vocab > 0 ? en->n_vocab : INT32_MAX, &top_k, e) ||
	    get_num(o, "top_p", 0.0, 1.0, &rq->sp.top_p, e) ||
	    get_num(o, "min_p", 0.0, 1.0, &rq->sp.min_p, e) ||
	    get_num(o, "repeat_penalty", 0.0, 10.0, &rq->sp.repeat_penalty, e) ||
	    get_int(o, "repeat_last_n", 0, en->n_ctx > 0 ? en->n_ctx : INT32_MAX, &last_n, e) ||
	    get_int(o, "seed", 0, INT64_MAX, &seed, e) || get_bool(o, "stream", &rq->stream, e) ||
	    get_stop(o, rq, e))
		return -1;
	if (field(o, "top_p") && rq->sp.top_p <= 0.0f)
		return perr_set(e, "top_p", "'top_p' must be > 0");
	rq->max_tokens = (int32_t)max_tokens;
	rq->sp.top_k = (int32_t)top_k;
	rq->sp.repeat_last_n = (int32_t)last_n;
	rq->sp.seed = (uint64_t)seed;
	return 0;
}

static int parse_prompt(const json_t *o, struct req *rq, int allow_array, struct perr *e)
{
	const json_t *v = json_object_get(o, "prompt");

	if (allow_array && json_is_array(v) && json_array_size(v) == 1)
		v = json_array_get(v, 0);
	if (!v)
		return perr_set(e, "prompt", "missing required field 'prompt'");
	if (!json_is_string(v))
		return perr_set(e, "prompt", "'prompt' must be a string");
	if (json_string_length(v) == 0)
		return perr_set(e, "prompt", "'prompt' must not be empty");
	rq->prompt = strdup(json_string_value(v));
	return rq->prompt ? 0 : perr_set(e, "prompt", "out of memory");
}

static const char *const generate_keys[] = {
	"prompt", "chat", "max_tokens", "temperature", "top_k", "top_p", "min_p",
	"repeat_penalty", "repeat_last_n", "seed", "stop", "stream", NULL,
};

static int parse_generate(const json_t *o, struct req *rq, const infer_server_engine *en,
			  struct perr *e)
{
	rq->api = API_GENERATE;
	rq->max_tokens = 128;
	if (check_keys(o, generate_keys, e) || parse_prompt(o, rq, 0, e) ||
	    get_bool(o, "chat", &rq->chat, e))
		return -1;
	return parse_common(o, rq, en, 100.0, e);
}

/* OpenAI's defaults (max_tokens 16, temperature 1, top_p 1, no top-k); fields
 * we do not know are ignored so existing clients work, but options that would
 * change the answer and are not supported are refused rather than dropped. */
static int parse_completions(const json_t *o, struct req *rq, const infer_server_engine *en,
			     struct perr *e)
{
	int64_t n = 1, logprobs = -1;
	int echo = 0;
	float pres = 0.0f, freq = 0.0f;

	rq->api = API_COMPLETIONS;
	rq->max_tokens = 16;
	rq->sp.temperature = 1.0f;
	rq->sp.top_k = 0;
	rq->sp.top_p = 1.0f;
	rq->sp.min_p = 0.0f;
	if (field(o, "model") && !json_is_string(field(o, "model")))
		return perr_set(e, "model", "'model' must be a string");
	if (parse_prompt(o, rq, 1, e) || get_int(o, "n", 1, 1, &n, e) ||
	    get_int(o, "logprobs", 0, 5, &logprobs, e) || get_bool(o, "echo", &echo, e) ||
	    get_num(o, "presence_penalty", 0.0, 0.0, &pres, e) ||
	    get_num(o, "frequency_penalty", 0.0, 0.0, &freq, e))
		return -1;
	if (echo)
		return perr_set(e, "echo", "'echo' is not supported");
	rq->logprobs = logprobs >= 0;
	return parse_common(o, rq, en, 2.0, e);
}

static void req_free(struct req *rq)
{
	free(rq->prompt);
	for (int i = 0; i < rq->n_stop; i++)
		free(rq->stop[i]);
}

/* The whole body to a validated request; on -1 nothing is left allocated in
 * rq and e holds the 400 reply. */
static int parse_body(int completions, const char *body, size_t n,
		      const infer_server_engine *en, struct req *rq, struct perr *e)
{
	json_error_t jerr;
	json_t *o = json_loadb(body ? body : "", n, JSON_REJECT_DUPLICATES, &jerr);
	int bad;

	if (!o)
		return perr_set(e, NULL, "malformed JSON at line %d column %d (byte %d): %s",
				jerr.line, jerr.column, jerr.position, jerr.text);
	if (!json_is_object(o)) {
		json_decref(o);
		return perr_set(e, NULL, "request body must be a JSON object");
	}
	infer_sampler_params_default(&rq->sp);
	bad = completions ? parse_completions(o, rq, en, e) : parse_generate(o, rq, en, e);
	json_decref(o);
	if (bad) {
		req_free(rq);
		memset(rq, 0, sizeof(*rq));
	}
	return bad;
}

static void req_params(const struct req *rq, infer_gen_params *p)
{
	memset(p, 0, sizeof(*p));
	p->prompt = rq->prompt;
	p->chat = rq->chat;
	p->max_tokens = rq->max_tokens;
	p->sampling = rq->sp;
	p->stop = (const char *const *)rq->stop;
	p->n_stop = rq->n_stop;
}

struct infer_server_request {
	struct req rq;
};

int infer_server_parse_request(const infer_server_engine *e, int completions, const char *body,
			       size_t n, infer_server_request **out, infer_error *err)
{
	struct infer_server_request *r = calloc(1, sizeof(*r));
	struct perr pe = { 0 };

	*out = NULL;
	if (!r)
		return infer_error_set(err, INFER_E_NOMEM, -1, "out of memory");
	if (parse_body(completions, body, n, e, &r->rq, &pe)) {
		free(r);
		if (pe.param[0])
			return infer_error_set(err, INFER_E_FORMAT, -1, "%s: %s", pe.param, pe.msg);
		return infer_error_set(err, INFER_E_FORMAT, -1, "%s", pe.msg);
	}
	*out = r;
	return 0;
}

void infer_server_request_params(const infer_server_request *r, infer_gen_params *p, int *stream)
{
	req_params(&r->rq, p);
	if (stream)
		*stream = r->rq.stream;
}

void infer_server_request_free(infer_server_request *r)
{
	if (!r)
		return;
	req_free(&r->rq);
	free(r);
}

/* ---- responses ------------------------------------------------------------ */

static json_t *error_json(int status, const char *param, const char *msg)
{
	const char *type = status == 503 ? "overloaded" :
			   status >= 500 ? "server_error" :
			   status == 404 ? "not_found" : "invalid_request_error";

	return json_pack("{s:{s:s, s:s, s:s?, s:i}}", "error", "message", msg, "type", type, "param",
			 param, "code", status);
}

static enum MHD_Result respond_json(struct MHD_Connection *c, unsigned status, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	struct MHD_Response *r;
	enum MHD_Result rc;

	json_decref(j);
	if (!s)
		return MHD_NO; /* out of memory: MHD closes the connection */
	r = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(s);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", "application/json");
	rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result respond_error(struct MHD_Connection *c, unsigned status, const char *param,
				     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static enum MHD_Result respond_error(struct MHD_Connection *c, unsigned status, const char *param,
				     const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return respond_json(c, status, error_json((int)status, param, msg));
}

/* ---- jobs ----------------------------------------------------------------- */

static struct job *job_new(struct infer_server *srv, struct req *rq)
{
	struct job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->rq = *rq;
	memset(rq, 0, sizeof(*rq)); /* the job owns the strings now */
	pthread_cond_init(&j->cv, NULL);
	j->refs = 2;
	j->srv = srv;
	j->created = (long long)time(NULL);
	j->items = json_array();
	return j;
}

/* Called with srv->mu held. */
static void job_unref(struct job *j)
{
	if (--j->refs > 0)
		return;
	req_free(&j->rq);
	pthread_cond_destroy(&j->cv);
	free(j->out.p);
	json_decref(j->items);
	free(j);
}

/* Queues j; 0, or -1 when the queue is full or the server stops. */
static int job_enqueue(struct infer_server *srv, struct job *j)
{
	int rc = -1;

	pthread_mutex_lock(&srv->mu);
	if (!srv->stopping && srv->n_waiting + srv->busy < srv->o.max_queue + 1) {
		snprintf(j->id, sizeof(j->id), "cmpl-%llu", (unsigned long long)++srv->next_id);
		if (srv->tail)
			srv->tail->next = j;
		else
			srv->head = j;
		srv->tail = j;
		srv->n_waiting++;
		pthread_cond_signal(&srv->cv);
		rc = 0;
	}
	pthread_mutex_unlock(&srv->mu);
	return rc;
}

static json_t *token_json(const struct job *j, const infer_gen_token *t)
{
	json_t *text = json_text(t->text, t->text_len);

	if (j->rq.api == API_GENERATE)
		return json_pack("{s:i, s:o, s:f, s:f}", "token_id", (int)t->id, "text", text, "logprob",
				 (double)t->logprob, "logprob_sampled", (double)t->logprob_sampled);
	return json_pack("{s:i, s:o, s:f}", "token_id", (int)t->id, "text", text, "logprob",
			 (double)t->logprob);
}

/* One OpenAI streaming chunk for a token. */
static json_t *completion_chunk(const struct infer_server *srv, const struct job *j, json_t *tok,
				const char *finish)
{
	json_t *lp = json_null();
	json_t *text = tok ? json_incref(json_object_get(tok, "text")) : json_string("");

	if (j->rq.logprobs && tok)
		lp = json_pack("{s:[O], s:[O], s:n, s:[i]}", "tokens", json_object_get(tok, "text"),
			       "token_logprobs", json_object_get(tok, "logprob"), "top_logprobs",
			       "text_offset", 0);
	return json_pack("{s:s, s:s, s:I, s:s, s:[{s:o, s:i, s:o, s:s?}]}", "id", j->id, "object",
			 "text_completion", "created", (json_int_t)j->created, "model",
			 srv->e.model_name, "choices", "text", text, "index", 0, "logprobs", lp,
			 "finish_reason", finish);
}

/* id < 0: text the generator held back (a partial stop string that never
 * completed) and releases at the end; it belongs to no token. */
static json_t *flush_json(const infer_gen_token *t)
{
	return json_pack("{s:o, s:b}", "text", json_text(t->text, t->text_len), "flush", 1);
}

static int on_token(void *user, const infer_gen_token *t)
{
	struct job *j = user;
	struct infer_server *srv = j->srv;
	json_t *tok = t->id < 0 && j->rq.api == API_GENERATE ? flush_json(t) : token_json(j, t);
	int stop;

	pthread_mutex_lock(&srv->mu);
	stop = j->cancelled || srv->stopping;
	if (!stop && tok) {
		j->n_tokens += t->id >= 0;
		if (!j->rq.stream) {
			json_array_append(j->items, tok);
		} else if (j->rq.api == API_GENERATE) {
			sbuf_add_event(&j->out, json_incref(tok));
		} else {
			sbuf_add_event(&j->out, completion_chunk(srv, j, tok, NULL));
		}
		pthread_cond_broadcast(&j->cv);
	}
	pthread_mutex_unlock(&srv->mu);
	json_decref(tok);
	return stop;
}

/* The generator hands the end-of-generation token to no callback, but it is
 * part of the answer (and of the anti-cheat replay): send it as a token with
 * no text. Called with srv->mu held. */
static void emit_tail_tokens(struct job *j, const infer_gen_result *r)
{
	for (size_t i = j->n_tokens; i < r->n_tokens && j->rq.api == API_GENERATE; i++) {
		infer_gen_token t = { .id = r->tokens[i], .logprob = r->logprobs[i],
				      .logprob_sampled = r->logprobs_sampled ? r->logprobs_sampled[i] : 0,
				      .text = "", .text_len = 0 };
		json_t *tok = token_json(j, &t);

		if (!tok)
			return;
		if (j->rq.stream)
			sbuf_add_event(&j->out, tok);
		else
			json_array_append_new(j->items, tok);
	}
}

static json_t *ids_json(const int32_t *ids, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_integer(ids[i]));
	return a;
}

static json_t *timings_json(const infer_gen_result *r)
{
	double tps = r->gen_ms > 0 ? (double)r->n_tokens * 1000.0 / r->gen_ms : 0.0;
	double pps = r->prompt_ms > 0 ? (double)r->n_prompt * 1000.0 / r->prompt_ms : 0.0;

	return json_pack("{s:f, s:f, s:f, s:f, s:f}", "prompt_ms", r->prompt_ms, "gen_ms", r->gen_ms,
			 "ttft_ms", r->ttft_ms, "tokens_per_s", tps, "prompt_tokens_per_s", pps);
}

/* The final {"done":true,...} object of /v1/generate (also the plain body). */
static json_t *generate_final(const struct infer_server *srv, const infer_gen_result *r)
{
	return json_pack("{s:b, s:s, s:I, s:I, s:o, s:o, s:o, s:o, s:I, s:I}", "done", 1,
			 "finish_reason", r->finish_reason ? r->finish_reason : "stop", "tokens",
			 (json_int_t)r->n_tokens, "prompt_tokens", (json_int_t)r->n_prompt, "token_ids",
			 ids_json(r->tokens, r->n_tokens), "prompt_token_ids",
			 ids_json(r->prompt_tokens, r->n_prompt), "text",
			 json_text(r->text ? r->text : "", r->text ? strlen(r->text) : 0), "timings",
			 timings_json(r), "kernel_launches", (json_int_t)r->kernel_launches,
			 "weights_bytes_device", (json_int_t)srv->e.weights_bytes_device);
}

static json_t *usage_json(const infer_gen_result *r)
{
	return json_pack("{s:I, s:I, s:I}", "prompt_tokens", (json_int_t)r->n_prompt,
			 "completion_tokens", (json_int_t)r->n_tokens, "total_tokens",
			 (json_int_t)(r->n_prompt + r->n_tokens));
}

/* OpenAI's finish reasons are "stop" and "length"; a cancelled request has no
 * client left to read it. */
static const char *openai_finish(const infer_gen_result *r)
{
	return r->finish_reason && !strcmp(r->finish_reason, "length") ? "length" : "stop";
}

static json_t *completion_logprobs(const struct job *j)
{
	json_t *toks = json_array(), *lps = json_array(), *offs = json_array(), *it;
	size_t i, off = 0;

	json_array_foreach(j->items, i, it) {
		json_array_append(toks, json_object_get(it, "text"));
		json_array_append(lps, json_object_get(it, "logprob"));
		json_array_append_new(offs, json_integer((json_int_t)off));
		off += json_string_length(json_object_get(it, "text"));
	}
	return json_pack("{s:o, s:o, s:n, s:o}", "tokens", toks, "token_logprobs", lps, "top_logprobs",
			 "text_offset", offs);
}

static json_t *completion_body(const struct infer_server *srv, const struct job *j,
			       const infer_gen_result *r)
{
	json_t *lp = j->rq.logprobs ? completion_logprobs(j) : json_null();

	return json_pack("{s:s, s:s, s:I, s:s, s:[{s:o, s:i, s:o, s:s}], s:o}", "id", j->id,
			 "object", "text_completion", "created", (json_int_t)j->created, "model",
			 srv->e.model_name, "choices", "text",
			 json_text(r->text ? r->text : "", r->text ? strlen(r->text) : 0), "index", 0,
			 "logprobs", lp, "finish_reason", openai_finish(r), "usage", usage_json(r));
}

/* Writes the end of a job into its buffer. Called with srv->mu held. */
static void job_finish(struct infer_server *srv, struct job *j, int rc, const infer_gen_result *r,
		       const infer_error *err)
{
	int status = err->code == INFER_E_ARG || err->code == INFER_E_TOKENIZER ? 400 : 500;
	json_t *body;

	if (rc) {
		body = error_json(status, NULL, err->msg[0] ? err->msg : "generation failed");
		if (j->rq.stream)
			json_object_set_new(body, "done", json_true());
	} else if (j->rq.api == API_GENERATE) {
		if (strcmp(r->finish_reason ? r->finish_reason : "", "cancelled"))
			emit_tail_tokens(j, r);
		body = generate_final(srv, r);
		if (!j->rq.stream)
			json_object_set(body, "output", j->items);
	} else {
		body = j->rq.stream ? completion_chunk(srv, j, NULL, openai_finish(r)) :
				      completion_body(srv, j, r);
		if (j->rq.stream)
			json_object_set_new(body, "usage", usage_json(r));
	}
	j->http_status = rc ? status : 200;
	if (j->rq.stream) {
		sbuf_add_event(&j->out, body);
		if (j->rq.api == API_COMPLETIONS)
			sbuf_add(&j->out, "data: [DONE]\n\n", 14);
	} else {
		char *s = json_dumps(body, JSON_COMPACT);

		json_decref(body);
		if (s)
			sbuf_add(&j->out, s, strlen(s));
		free(s);
	}
}

static void job_run(struct infer_server *srv, struct job *j)
{
	infer_gen_params p = { 0 };
	infer_gen_result r = { 0 };
	infer_error err = { 0 };
	int rc;

	req_params(&j->rq, &p);
	rc = srv->e.generate(srv->e.user, &p, on_token, j, &r, &err);
	pthread_mutex_lock(&srv->mu);
	if (!rc && r.finish_reason && !strcmp(r.finish_reason, "cancelled"))
		srv->n_cancelled++;
	job_finish(srv, j, rc, &r, &err);
	j->state = J_DONE;
	pthread_cond_broadcast(&j->cv);
	pthread_mutex_unlock(&srv->mu);
	if (!rc)
		infer_gen_result_free(&r);
}

static void *worker_main(void *arg)
{
	struct infer_server *srv = arg;
	struct job *j;

	pthread_mutex_lock(&srv->mu);
	for (;;) {
		while (!srv->head && !srv->stopping)
			pthread_cond_wait(&srv->cv, &srv->mu);
		if (srv->stopping)
			break;
		j = srv->head;
		srv->head = j->next;
		if (!srv->head)
			srv->tail = NULL;
		srv->n_waiting--;
		if (j->cancelled) { /* the client left while it waited */
			j->state = J_DONE;
			pthread_cond_broadcast(&j->cv);
			job_unref(j);
			continue;
		}
		j->state = J_RUNNING;
		srv->busy = 1;
		pthread_mutex_unlock(&srv->mu);
		job_run(srv, j);
		pthread_mutex_lock(&srv->mu);
		srv->busy = 0;
		job_unref(j);
	}
	/* Stopping: whoever still waits gets a 503. */
	while ((j = srv->head)) {
		infer_error err = { .code = INFER_E_IO };

		srv->head = j->next;
		snprintf(err.msg, sizeof(err.msg), "server is shutting down");
		job_finish(srv, j, -1, NULL, &err);
		j->http_status = 503;
		j->state = J_DONE;
		pthread_cond_broadcast(&j->cv);
		job_unref(j);
	}
	srv->tail = NULL;
	srv->n_waiting = 0;
	pthread_mutex_unlock(&srv->mu);
	return NULL;
}

/* ---- MHD callbacks -------------------------------------------------------- */

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct job *j = cls;
	struct infer_server *srv = j->srv;
	size_t n = 0;

	pthread_mutex_lock(&srv->mu);
	while (j->sent == j->out.n && j->state != J_DONE)
		pthread_cond_wait(&j->cv, &srv->mu);
	if (j->sent < j->out.n) {
		n = j->out.n - j->sent < max ? j->out.n - j->sent : max;
		memcpy(buf, j->out.p + j->sent, n);
		j->sent += n;
		if (j->sent == j->out.n) /* everything went out: reuse the buffer */
			j->sent = j->out.n = 0;
	}
	pthread_mutex_unlock(&srv->mu);
	return n ? (ssize_t)n : MHD_CONTENT_READER_END_OF_STREAM;
}

/* MHD is done with the response: either all was sent or the client left. */
static void stream_free(void *cls)
{
	struct job *j = cls;
	struct infer_server *srv = j->srv;

	pthread_mutex_lock(&srv->mu);
	j->cancelled = 1;
	job_unref(j);
	pthread_mutex_unlock(&srv->mu);
}

static enum MHD_Result respond_stream(struct MHD_Connection *c, struct job *j)
{
	struct MHD_Response *r;
	enum MHD_Result rc;

	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_reader, j, stream_free);
	if (!r) {
		stream_free(j);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", "text/event-stream");
	MHD_add_response_header(r, "Cache-Control", "no-cache");
	rc = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return rc;
}

/* A plain request blocks this connection's thread until its job is done. */
static enum MHD_Result respond_plain(struct MHD_Connection *c, struct job *j)
{
	struct infer_server *srv = j->srv;
	struct MHD_Response *r = NULL;
	unsigned status;
	enum MHD_Result rc = MHD_NO;

	pthread_mutex_lock(&srv->mu);
	while (j->state != J_DONE)
		pthread_cond_wait(&j->cv, &srv->mu);
	status = (unsigned)j->http_status;
	if (j->out.n)
		r = MHD_create_response_from_buffer(j->out.n, j->out.p, MHD_RESPMEM_MUST_COPY);
	job_unref(j);
	pthread_mutex_unlock(&srv->mu);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "application/json");
	rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result handle_generate(struct infer_server *srv, struct MHD_Connection *c,
				       struct conn *cn)
{
	struct req rq = { 0 };
	struct perr e = { 0 };
	struct job *j;

	if (parse_body(cn->route == R_COMPLETIONS, cn->body.p, cn->body.n, &srv->e, &rq, &e))
		return respond_error(c, 400, e.param[0] ? e.param : NULL, "%s", e.msg);
	j = job_new(srv, &rq);
	if (!j) {
		req_free(&rq);
		return respond_error(c, 500, NULL, "out of memory");
	}
	if (job_enqueue(srv, j)) {
		pthread_mutex_lock(&srv->mu);
		j->refs = 1;
		job_unref(j);
		pthread_mutex_unlock(&srv->mu);
		return respond_error(c, 503, NULL, "queue full (%d waiting); retry later",
				     srv->o.max_queue);
	}
	return j->rq.stream ? respond_stream(c, j) : respond_plain(c, j);
}

static enum MHD_Result handle_health(struct infer_server *srv, struct MHD_Connection *c)
{
	return respond_json(c, 200,
			    json_pack("{s:s, s:s, s:s, s:I}", "status", "ok", "model",
				      srv->e.model_name, "backend", srv->e.backend,
				      "weights_bytes_device",
				      (json_int_t)srv->e.weights_bytes_device));
}

static enum route route_of(const char *url)
{
	if (!strcmp(url, "/health"))
		return R_HEALTH;
	if (!strcmp(url, "/v1/generate"))
		return R_GENERATE;
	if (!strcmp(url, "/v1/completions"))
		return R_COMPLETIONS;
	return R_NONE;
}

/* A body announced larger than the limit is refused before it is read. */
static int announced_too_big(struct MHD_Connection *c, size_t limit)
{
	const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");

	return cl && strtoull(cl, NULL, 10) > limit;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct infer_server *srv = cls;
	struct conn *cn = *con_cls;
	int post = !strcmp(method, MHD_HTTP_METHOD_POST);

	if (!cn) {
		cn = calloc(1, sizeof(*cn));
		if (!cn)
			return MHD_NO;
		cn->route = route_of(url);
		*con_cls = cn;
		pthread_mutex_lock(&srv->mu);
		srv->n_requests++;
		pthread_mutex_unlock(&srv->mu);
		if (post && cn->route != R_NONE && announced_too_big(c, srv->o.max_body))
			return respond_error(c, 413, NULL, "request body over the %zu-byte limit",
					     srv->o.max_body);
		return MHD_YES;
	}
	if (*upload_size) {
		if (cn->body.n + *upload_size > srv->o.max_body)
			cn->too_big = 1;
		else if (sbuf_add(&cn->body, upload, *upload_size))
			return MHD_NO;
		*upload_size = 0;
		return MHD_YES;
	}
	if (cn->route == R_NONE)
		return respond_error(c, 404, NULL, "no such path: %s %s", method, url);
	if (cn->route == R_HEALTH)
		return strcmp(method, MHD_HTTP_METHOD_GET) ?
			       respond_error(c, 405, NULL, "%s needs GET", url) :
			       handle_health(srv, c);
	if (!post)
		return respond_error(c, 405, NULL, "%s needs POST", url);
	if (cn->too_big)
		return respond_error(c, 413, NULL, "request body over the %zu-byte limit",
				     srv->o.max_body);
	return handle_generate(srv, c, cn);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct conn *cn = *con_cls;

	if (!cn)
		return;
	free(cn->body.p);
	free(cn);
	*con_cls = NULL;
}

/* ---- start / stop --------------------------------------------------------- */

static int resolve(const char *host, uint16_t port, struct sockaddr_storage *ss, int *v6,
		   infer_error *err)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE };
	struct addrinfo *ai = NULL;
	int rc = getaddrinfo(host, NULL, &hints, &ai);

	if (rc || !ai)
		return infer_error_set(err, INFER_E_ARG, -1, "cannot resolve host '%s': %s", host,
				       gai_strerror(rc));
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*v6 = ai->ai_family == AF_INET6;
	if (*v6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	freeaddrinfo(ai);
	return 0;
}

void infer_server_opts_default(infer_server_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->host = "127.0.0.1";
	o->max_queue = DEFAULT_MAX_QUEUE;
	o->max_body = DEFAULT_MAX_BODY;
	o->max_conns = DEFAULT_MAX_CONNS;
}

static void server_free(struct infer_server *srv)
{
	pthread_mutex_destroy(&srv->mu);
	pthread_cond_destroy(&srv->cv);
	free(srv);
}

infer_server *infer_server_start(const infer_server_engine *e, const infer_server_opts *o,
				 infer_error *err)
{
	struct infer_server *srv;
	struct sockaddr_storage ss = { 0 };
	const union MHD_DaemonInfo *info;
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD;
	int v6 = 0;

	if (!e || !e->generate || !e->model_name || !e->backend) {
		infer_error_set(err, INFER_E_ARG, -1, "server engine is incomplete");
		return NULL;
	}
	srv = calloc(1, sizeof(*srv));
	if (!srv) {
		infer_error_set(err, INFER_E_NOMEM, -1, "out of memory");
		return NULL;
	}
	srv->e = *e;
	infer_server_opts_default(&srv->o);
	if (o)
		srv->o = *o;
	if (!srv->o.host)
		srv->o.host = "127.0.0.1";
	if (!srv->o.max_body)
		srv->o.max_body = DEFAULT_MAX_BODY;
	if (srv->o.max_conns <= 0)
		srv->o.max_conns = DEFAULT_MAX_CONNS;
	if (srv->o.max_queue < 0)
		srv->o.max_queue = 0;
	pthread_mutex_init(&srv->mu, NULL);
	pthread_cond_init(&srv->cv, NULL);
	if (resolve(srv->o.host, srv->o.port, &ss, &v6, err)) {
		server_free(srv);
		return NULL;
	}
	if (pthread_create(&srv->worker, NULL, worker_main, srv)) {
		infer_error_set(err, INFER_E_IO, -1, "cannot start the generation thread");
		server_free(srv);
		return NULL;
	}
	srv->d = MHD_start_daemon(flags | (v6 ? MHD_USE_IPv6 : 0), srv->o.port, NULL, NULL,
				  on_request, srv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				  MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned)srv->o.max_conns,
				  MHD_OPTION_CONNECTION_TIMEOUT, 300u, MHD_OPTION_END);
	if (!srv->d) {
		infer_error_set(err, INFER_E_IO, -1, "cannot listen on %s:%u: %s", srv->o.host,
				(unsigned)srv->o.port, strerror(errno));
		pthread_mutex_lock(&srv->mu);
		srv->stopping = 1;
		pthread_cond_signal(&srv->cv);
		pthread_mutex_unlock(&srv->mu);
		pthread_join(srv->worker, NULL);
		server_free(srv);
		return NULL;
	}
	info = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);
	srv->port = info ? info->port : srv->o.port;
	return srv;
}

uint16_t infer_server_port(const infer_server *s)
{
	return s->port;
}

uint64_t infer_server_requests(const infer_server *s)
{
	uint64_t n;

	pthread_mutex_lock((pthread_mutex_t *)&s->mu);
	n = s->n_requests;
	pthread_mutex_unlock((pthread_mutex_t *)&s->mu);
	return n;
}

uint64_t infer_server_cancelled(const infer_server *s)
{
	uint64_t n;

	pthread_mutex_lock((pthread_mutex_t *)&s->mu);
	n = s->n_cancelled;
	pthread_mutex_unlock((pthread_mutex_t *)&s->mu);
	return n;
}

void infer_server_stop(infer_server *srv)
{
	if (!srv)
		return;
	/* The worker first: it cancels what runs and fails what waits, which
	 * releases every connection thread blocked on a job; then MHD can join
	 * its threads. */
	pthread_mutex_lock(&srv->mu);
	srv->stopping = 1;
	pthread_cond_signal(&srv->cv);
	pthread_mutex_unlock(&srv->mu);
	pthread_join(srv->worker, NULL);
	MHD_stop_daemon(srv->d);
	server_free(srv);
}

/* ---- the real engine ------------------------------------------------------ */

static int session_generate(void *user, const infer_gen_params *p, infer_gen_cb cb, void *cb_user,
			    infer_gen_result *res, infer_error *err)
{
	return infer_generate(user, p, cb, cb_user, res, err);
}

void infer_server_engine_session(infer_server_engine *e, infer_session *s, const char *model_name)
{
	const infer_model *m = infer_session_model(s);
	const infer_hparams *hp = infer_model_hparams(m);

	memset(e, 0, sizeof(*e));
	e->user = s;
	e->generate = session_generate;
	e->model_name = model_name;
	e->backend = infer_session_backend(s);
	e->weights_bytes_device = infer_session_device_bytes(s);
	e->n_ctx = hp->n_ctx;
	e->n_vocab = hp->n_vocab;
}
