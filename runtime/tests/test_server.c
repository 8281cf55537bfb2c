/* The HTTP worker: a scripted session of good and bad requests (this suite
 * also runs under ASan+UBSan, so it doubles as the no-crash/no-leak test).
 *
 * Most tests run the server on a fake engine (deterministic tokens, a
 * configurable delay, counters that prove requests never overlap and that a
 * vanished client cancels its generation). The last tests run the real
 * session on the embedded haiku model. The client is a raw socket, so
 * malformed framing, lying Content-Length and mid-stream disconnects are easy
 * to script. */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "infer/model.h"
#include "infer/server.h"
#include "infer/session.h"

#define EOG_ID 4095

/* ---- fake engine ---------------------------------------------------------- */

struct fake {
	pthread_mutex_t mu;
	int active, max_active; /* generations running at once */
	int calls, cancelled;
	int delay_ms;           /* per token */
};

static struct fake fk = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Token i has id 100+i, logprob -(i+1)/10 and a piece of text; "é" and "月"
 * check multi-byte text, "\xff" checks that invalid UTF-8 is replaced. A
 * prompt "eog" ends with an end-of-generation token that gets no callback,
 * as infer_generate() does; a prompt "fail" is an engine error. */
static const char *const pieces[] = { "old", " pond", "\n", "é", "月", "\"q\"", "\xff" };

static int fake_generate(void *user, const infer_gen_params *p, infer_gen_cb cb, void *cb_user,
			 infer_gen_result *res, infer_error *err)
{
	struct fake *f = user;
	size_t cap = (size_t)p->max_tokens + 2, text_len = 0;
	int eog = !strcmp(p->prompt, "eog");

	pthread_mutex_lock(&f->mu);
	f->calls++;
	if (++f->active > f->max_active)
		f->max_active = f->active;
	pthread_mutex_unlock(&f->mu);
	memset(res, 0, sizeof(*res));
	if (!strcmp(p->prompt, "fail")) {
		pthread_mutex_lock(&f->mu);
		f->active--;
		pthread_mutex_unlock(&f->mu);
		return infer_error_set(err, INFER_E_ARG, -1, "fake engine refuses");
	}
	res->prompt_tokens = malloc(sizeof(int32_t));
	res->prompt_tokens[0] = 7;
	res->n_prompt = 1;
	res->tokens = malloc(cap * sizeof(int32_t));
	res->logprobs = malloc(cap * sizeof(float));
	res->logprobs_sampled = malloc(cap * sizeof(float));
	res->text = calloc(1, cap * 8);
	res->finish_reason = "length";
	for (int i = 0; i < p->max_tokens; i++) {
		const char *s = pieces[i % (sizeof(pieces) / sizeof(pieces[0]))];
		infer_gen_token t = { .id = 100 + i, .logprob = -(i + 1) / 10.0f,
				      .logprob_sampled = -0.5f, .text = s, .text_len = strlen(s) };

		if (f->delay_ms)
			sleep_ms(f->delay_ms);
		res->tokens[res->n_tokens] = t.id;
		res->logprobs[res->n_tokens] = t.logprob;
		res->logprobs_sampled[res->n_tokens++] = t.logprob_sampled;
		memcpy(res->text + text_len, s, strlen(s));
		text_len += strlen(s);
		if (cb && cb(cb_user, &t)) {
			res->finish_reason = "cancelled";
			pthread_mutex_lock(&f->mu);
			f->cancelled++;
			pthread_mutex_unlock(&f->mu);
			break;
		}
	}
	if (eog && strcmp(res->finish_reason, "cancelled")) {
		res->tokens[res->n_tokens] = EOG_ID;
		res->logprobs[res->n_tokens] = -0.25f;
		res->logprobs_sampled[res->n_tokens++] = 0.0f;
		res->finish_reason = "stop";
	}
	res->gen_ms = 1.0;
	pthread_mutex_lock(&f->mu);
	f->active--;
	pthread_mutex_unlock(&f->mu);
	return 0;
}

static infer_server *srv;
static uint16_t port;

static infer_server *start_fake(int max_queue, size_t max_body)
{
	infer_server_engine e = { .user = &fk, .generate = fake_generate, .model_name = "fake",
				  .backend = "cpu", .n_ctx = 64, .n_vocab = 4096 };
	infer_server_opts o;
	infer_error err = { 0 };
	infer_server *s;

	infer_server_opts_default(&o);
	o.max_queue = max_queue;
	o.max_body = max_body;
	s = infer_server_start(&e, &o, &err);
	if (!s)
		fprintf(stderr, "server: %s\n", err.msg);
	return s;
}

/* ---- raw HTTP client ------------------------------------------------------ */

struct resp {
	int status;
	char *head;
	char *body; /* de-chunked */
	size_t body_len;
};

static void resp_free(struct resp *r)
{
	free(r->head);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

static int dial(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static char *read_all(int fd, size_t *n)
{
	size_t cap = 4096;
	char *b = malloc(cap);
	ssize_t k;

	*n = 0;
	while (b && (k = recv(fd, b + *n, cap - *n - 1, 0)) > 0) {
		*n += (size_t)k;
		if (cap - *n < 1024) {
			char *nb = realloc(b, cap * 2);

			if (!nb)
				break;
			b = nb;
			cap *= 2;
		}
	}
	if (b)
		b[*n] = '\0';
	return b;
}

static void dechunk(struct resp *r, const char *p, const char *end)
{
	size_t cap = (size_t)(end - p) + 1;

	r->body = calloc(1, cap);
	while (p < end) {
		char *e;
		unsigned long len = strtoul(p, &e, 16);

		if (e == p || len == 0)
			break;
		p = strstr(e, "\r\n");
		if (!p || p + 2 + len > end)
			break;
		memcpy(r->body + r->body_len, p + 2, len);
		r->body_len += len;
		p += 2 + len + 2;
	}
}

/* Sends a raw request and reads the whole response (the server closes it). */
static int raw(const char *req, size_t req_len, struct resp *r)
{
	int fd = dial();
	size_t n;
	char *all, *sep;

	memset(r, 0, sizeof(*r));
	if (fd < 0 || send_all(fd, req, req_len)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	all = read_all(fd, &n);
	close(fd);
	if (!all || !(sep = strstr(all, "\r\n\r\n")) || sscanf(all, "HTTP/1.%*d %d", &r->status) != 1) {
		free(all);
		return -1;
	}
	r->head = strndup(all, (size_t)(sep - all));
	if (strcasestr(r->head, "transfer-encoding: chunked")) {
		dechunk(r, sep + 4, all + n);
	} else {
		r->body = strdup(sep + 4);
		r->body_len = strlen(r->body);
	}
	free(all);
	return 0;
}

static int req(const char *method, const char *path, const char *body, struct resp *r)
{
	char *msg;
	int len, rc;

	len = asprintf(&msg,
		       "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
		       "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
		       method, path, body ? strlen(body) : 0, body ? body : "");
	if (len < 0)
		return -1;
	rc = raw(msg, (size_t)len, r);
	free(msg);
	return rc;
}

static const char *str_of(const json_t *j)
{
	return json_string_value(j) ? json_string_value(j) : "";
}

static json_t *body_json(const struct resp *r)
{
	return json_loadb(r->body ? r->body : "", r->body_len, 0, NULL);
}

/* Parses "data: {...}\n\n" events into a JSON array ([DONE] is a string). */
static json_t *sse_events(const struct resp *r)
{
	json_t *a = json_array();
	const char *p = r->body ? r->body : "";

	while ((p = strstr(p, "data: "))) {
		const char *e = strstr(p, "\n\n");

		if (!e)
			break;
		if (!strncmp(p + 6, "[DONE]", 6))
			json_array_append_new(a, json_string("[DONE]"));
		else
			json_array_append_new(a, json_loadb(p + 6, (size_t)(e - p - 6), 0, NULL));
		p = e + 2;
	}
	return a;
}

/* Asserts status and a JSON error body naming param (NULL: any). */
static void expect_error(const char *method, const char *path, const char *body, int status,
			 const char *param)
{
	struct resp r;
	json_t *j, *e;

	CU_ASSERT_EQUAL_FATAL(req(method, path, body, &r), 0);
	CU_ASSERT_EQUAL(r.status, status);
	j = body_json(&r);
	e = json_object_get(j, "error");
	CU_ASSERT_PTR_NOT_NULL(e);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(e, "code")), status);
	CU_ASSERT_PTR_NOT_NULL(json_string_value(json_object_get(e, "message")));
	if (param)
		CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(e, "param")) ?
					       json_string_value(json_object_get(e, "param")) : "(null)",
				       param);
	if (r.status != status)
		fprintf(stderr, "\n%s %s %s -> %d %s\n", method, path, body ? body : "", r.status, r.body);
	json_decref(j);
	resp_free(&r);
}

/* ---- tests on the fake engine --------------------------------------------- */

static void test_health(void)
{
	struct resp r;
	json_t *j;

	CU_ASSERT_EQUAL_FATAL(req("GET", "/health", NULL, &r), 0);
	CU_ASSERT_EQUAL(r.status, 200);
	j = body_json(&r);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "status")), "ok");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "model")), "fake");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "backend")), "cpu");
	CU_ASSERT_TRUE(json_is_integer(json_object_get(j, "weights_bytes_device")));
	json_decref(j);
	resp_free(&r);
}

static void test_generate_plain(void)
{
	struct resp r;
	json_t *j, *out;

	CU_ASSERT_EQUAL_FATAL(req("POST", "/v1/generate", "{\"prompt\":\"hi\",\"max_tokens\":5}", &r), 0);
	CU_ASSERT_EQUAL(r.status, 200);
	CU_ASSERT_PTR_NOT_NULL(strcasestr(r.head, "content-type: application/json"));
	j = body_json(&r);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT_TRUE(json_is_true(json_object_get(j, "done")));
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "finish_reason")), "length");
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "tokens")), 5);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "prompt_tokens")), 1);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "text")), "old pond\né月");
	out = json_object_get(j, "output");
	CU_ASSERT_EQUAL(json_array_size(out), 5);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_array_get(out, 4), "token_id")), 104);
	CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(json_array_get(out, 1), "logprob")),
			       -0.2, 1e-6);
	CU_ASSERT_PTR_NOT_NULL(json_object_get(json_object_get(j, "timings"), "ttft_ms"));
	CU_ASSERT_TRUE(json_is_integer(json_object_get(j, "kernel_launches")));
	json_decref(j);
	resp_free(&r);
}

static void test_generate_stream(void)
{
	struct resp r;
	json_t *ev, *last;
	size_t i;
	char text[256] = "";

	CU_ASSERT_EQUAL_FATAL(req("POST", "/v1/generate",
				  "{\"prompt\":\"eog\",\"max_tokens\":7,\"stream\":true,\"seed\":3}", &r),
			      0);
	CU_ASSERT_EQUAL(r.status, 200);
	CU_ASSERT_PTR_NOT_NULL(strcasestr(r.head, "content-type: text/event-stream"));
	ev = sse_events(&r);
	CU_ASSERT_EQUAL_FATAL(json_array_size(ev), 9); /* 7 tokens, the end token, done */
	for (i = 0; i + 1 < json_array_size(ev); i++) {
		json_t *e = json_array_get(ev, i);

		CU_ASSERT_TRUE_FATAL(json_is_object(e));
		CU_ASSERT_TRUE(json_is_integer(json_object_get(e, "token_id")));
		CU_ASSERT_TRUE(json_is_number(json_object_get(e, "logprob")));
		strcat(text, json_string_value(json_object_get(e, "text")));
	}
	/* The invalid byte of the engine's last piece came out as U+FFFD. */
	CU_ASSERT_STRING_EQUAL(text, "old pond\né月\"q\"\xef\xbf\xbd");
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_array_get(ev, 7), "token_id")), EOG_ID);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_array_get(ev, 7), "text")), "");
	last = json_array_get(ev, 8);
	CU_ASSERT_TRUE(json_is_true(json_object_get(last, "done")));
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(last, "finish_reason")), "stop");
	CU_ASSERT_EQUAL(json_array_size(json_object_get(last, "token_ids")), 8);
	json_decref(ev);
	resp_free(&r);
}

static void test_completions(void)
{
	struct resp r;
	json_t *j, *ch, *ev;

	CU_ASSERT_EQUAL_FATAL(req("POST", "/v1/completions",
				  "{\"model\":\"x\",\"prompt\":\"hi\",\"max_tokens\":3,\"logprobs\":1,"
				  "\"user\":\"ignored\"}",
				  &r),
			      0);
	CU_ASSERT_EQUAL(r.status, 200);
	j = body_json(&r);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "object")), "text_completion");
	ch = json_array_get(json_object_get(j, "choices"), 0);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(ch, "text")), "old pond\n");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(ch, "finish_reason")), "length");
	CU_ASSERT_EQUAL(json_array_size(json_object_get(json_object_get(ch, "logprobs"), "token_logprobs")), 3);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_object_get(j, "usage"), "completion_tokens")), 3);
	json_decref(j);
	resp_free(&r);

	CU_ASSERT_EQUAL_FATAL(req("POST", "/v1/completions",
				  "{\"prompt\":[\"hi\"],\"max_tokens\":2,\"stream\":true}", &r), 0);
	CU_ASSERT_EQUAL(r.status, 200);
	ev = sse_events(&r);
	CU_ASSERT_EQUAL_FATAL(json_array_size(ev), 4); /* 2 chunks, final chunk, [DONE] */
	ch = json_array_get(json_object_get(json_array_get(ev, 0), "choices"), 0);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(ch, "text")), "old");
	ch = json_array_get(json_object_get(json_array_get(ev, 2), "choices"), 0);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(ch, "finish_reason")), "length");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_array_get(ev, 3)), "[DONE]");
	json_decref(ev);
	resp_free(&r);
}

static void test_bad_requests(void)
{
	expect_error("POST", "/v1/generate", "{\"prompt\": ", 400, NULL);
	expect_error("POST", "/v1/generate", "", 400, NULL);
	expect_error("POST", "/v1/generate", "[1,2,3]", 400, NULL);
	expect_error("POST", "/v1/generate", "{\"prompt\":\"a\",\"prompt\":\"b\"}", 400, NULL);
	expect_error("POST", "/v1/generate", "{\"max_tokens\":3}", 400, "prompt");
	expect_error("POST", "/v1/generate", "{\"prompt\":42}", 400, "prompt");
	expect_error("POST", "/v1/generate", "{\"prompt\":\"\"}", 400, "prompt");
	expect_error("POST", "/v1/generate", "{\"prompt\":\"x\",\"chat\":1}", 400, "chat");
	expect_error("POST", "/v1/generate", "{\"prompt\":\"x\",\"max_tokens\":-5}", 400, "max_tokens");
	expect_error("POST", "/v1/generate", "{\"prompt\":\"x\",\"max_tokens\":65}", 400, "max_tokens");
	expect_error("POST", "/v1/generate", "{\"prompt\":\"x\",\"max_tokens\":2.5}", 400, "max_tokens");
	expect_error("POST", "/v1/generate", "{\"prompt\":\"x\",\"temperature\":\"hot\"}", 400, "temperature");
	expect_error("POST", "/v1/generate", "{\"prompt\":\"x\",\"temperature\":-1}", 400, "temperature");
	expect_error("POST", "/v1/generate", "{\"prompt\":\"x\",\"top_p\":7.5}", 400, "top_p");
	expect_error("POST", "/v1/generate", "{\"prompt\":\"x\",\"top_p\":0}", 400, "top_p");
	expect_error("POST", "/v1/generate", "{\"prompt\":\"x\",\"top_k\":5000}", 400, "top_k");
	expect_error("POST", "/v1/generate", "{\"prompt\":\"x\",\"min_p\":2}", 400, "min_p");
	expect_error("POST", "/v1/generate", "{\"prompt\":\"x\",\"seed\":-1}", 400, "seed");
	expect_error("POST", "/v1/generate", "{\"prompt\":\"x\",\"stop\":[1]}", 400, "stop");
	expect_error("POST", "/v1/generate", "{\"prompt\":\"x\",\"stop\":{}}", 400, "stop");
	expect_error("POST", "/v1/generate", "{\"prompt\":\"x\",\"stream\":\"yes\"}", 400, "stream");
	expect_error("POST", "/v1/generate", "{\"prompt\":\"x\",\"bogus\":1}", 400, "bogus");
	expect_error("POST", "/v1/generate", "{\"prompt\":\"fail\"}", 400, NULL);
	expect_error("POST", "/v1/completions", "{\"prompt\":\"x\",\"n\":2}", 400, "n");
	expect_error("POST", "/v1/completions", "{\"prompt\":\"x\",\"temperature\":3}", 400, "temperature");
	expect_error("POST", "/v1/completions", "{\"prompt\":\"x\",\"echo\":true}", 400, "echo");
	expect_error("POST", "/v1/completions", "{\"prompt\":\"x\",\"model\":5}", 400, "model");
	expect_error("GET", "/nope", NULL, 404, NULL);
	expect_error("POST", "/v1/nope", "{}", 404, NULL);
	expect_error("GET", "/v1/generate", NULL, 405, NULL);
	expect_error("POST", "/health", "{}", 405, NULL);
}

static void test_body_limit(void)
{
	size_t n = 4096;
	char *big = malloc(n + 1), *msg;
	struct resp r;
	int len;

	memset(big, ' ', n);
	big[n] = '\0';
	/* The server under test has a 2 KiB limit. Announced: refused up front. */
	expect_error("POST", "/v1/generate", big, 413, NULL);
	/* Chunked, no length: refused once the body passes the limit. */
	len = asprintf(&msg, "POST /v1/generate HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
			     "Transfer-Encoding: chunked\r\n\r\n%zx\r\n%s\r\n0\r\n\r\n", n, big);
	CU_ASSERT_EQUAL_FATAL(raw(msg, (size_t)len, &r), 0);
	CU_ASSERT_EQUAL(r.status, 413);
	resp_free(&r);
	free(msg);
	free(big);
	/* Garbage instead of HTTP: the server answers 400 or hangs up, and lives. */
	if (!raw("BLAH\r\n\r\n", 8, &r))
		CU_ASSERT_TRUE(r.status >= 400);
	resp_free(&r);
	test_health();
}

struct client_arg {
	int status;
	char text[128];
};

static void *client(void *p)
{
	struct client_arg *a = p;
	struct resp r;
	json_t *j;

	if (req("POST", "/v1/generate", "{\"prompt\":\"hi\",\"max_tokens\":4}", &r))
		return NULL;
	a->status = r.status;
	j = body_json(&r);
	snprintf(a->text, sizeof(a->text), "%s",
		 json_string_value(json_object_get(j, "text")) ? json_string_value(json_object_get(j, "text")) : "");
	json_decref(j);
	resp_free(&r);
	return NULL;
}

/* Eight clients at once: all served, one at a time. */
static void test_serialized(void)
{
	pthread_t th[8];
	struct client_arg a[8];

	memset(a, 0, sizeof(a));
	fk.delay_ms = 5;
	fk.max_active = 0;
	for (int i = 0; i < 8; i++)
		pthread_create(&th[i], NULL, client, &a[i]);
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		CU_ASSERT_EQUAL(a[i].status, 200);
		CU_ASSERT_STRING_EQUAL(a[i].text, "old pond\né");
	}
	CU_ASSERT_EQUAL(fk.max_active, 1);
	fk.delay_ms = 0;
}

/* Opens a streaming request and returns the socket after the first event. */
static int open_stream(int max_tokens)
{
	char *msg, buf[512];
	int len, fd = dial();
	ssize_t k;
	size_t got = 0;

	if (fd < 0)
		return -1;
	len = asprintf(&msg,
		       "POST /v1/generate HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
		       "{\"prompt\":\"hi\",\"max_tokens\":%02d,\"stream\":true}",
		       (int)strlen("{\"prompt\":\"hi\",\"max_tokens\":00,\"stream\":true}"), max_tokens);
	send_all(fd, msg, (size_t)len);
	free(msg);
	while (got < sizeof(buf) - 1 && (k = recv(fd, buf + got, sizeof(buf) - 1 - got, 0)) > 0) {
		got += (size_t)k;
		buf[got] = '\0';
		if (strstr(buf, "\n\n"))
			break;
	}
	return fd;
}

static int wait_for(int *counter, int want, int ms)
{
	for (int i = 0; i < ms / 10; i++) {
		int v;

		pthread_mutex_lock(&fk.mu);
		v = *counter;
		pthread_mutex_unlock(&fk.mu);
		if (v >= want)
			return 1;
		sleep_ms(10);
	}
	return 0;
}

/* A client that hangs up mid-stream stops its generation. */
static void test_disconnect(void)
{
	int before = fk.cancelled, fd;

	fk.delay_ms = 20; /* 60 tokens would take over a second */
	fd = open_stream(60);
	CU_ASSERT_TRUE_FATAL(fd >= 0);
	close(fd);
	CU_ASSERT_TRUE(wait_for(&fk.cancelled, before + 1, 3000));
	CU_ASSERT_TRUE(infer_server_cancelled(srv) >= 1 || fk.cancelled > before);
	fk.delay_ms = 0;
	test_health();
}

/* With max_queue 0 a second request while one runs gets 503. */
static void test_queue_full(void)
{
	infer_server *s = start_fake(0, 1 << 20);
	uint16_t saved = port;
	int fd, calls;

	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	port = infer_server_port(s);
	fk.delay_ms = 20;
	calls = fk.calls;
	fd = open_stream(40);
	CU_ASSERT_TRUE(wait_for(&fk.calls, calls + 1, 2000));
	expect_error("POST", "/v1/generate", "{\"prompt\":\"x\",\"max_tokens\":2}", 503, NULL);
	close(fd);
	fk.delay_ms = 0;
	/* Stopping with a generation possibly still running must not hang or leak. */
	infer_server_stop(s);
	port = saved;
}

/* Stop while a client waits on a stream. */
static void test_stop_in_flight(void)
{
	infer_server *s = start_fake(4, 1 << 20);
	uint16_t saved = port;
	int fd;

	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	port = infer_server_port(s);
	fk.delay_ms = 20;
	fd = open_stream(50);
	CU_ASSERT_TRUE(fd >= 0);
	infer_server_stop(s);
	if (fd >= 0)
		close(fd);
	fk.delay_ms = 0;
	port = saved;
}

/* ---- the real session on the embedded model ------------------------------- */

static infer_model *model;
static infer_session *session;
static infer_server *real;

static int open_real(void)
{
	const char *src = getenv("INFER_SOURCE_DIR");
	char path[1024];
	infer_session_opts so = { .backend = "cpu", .n_threads = 1 };
	infer_server_engine e;
	infer_error err = { 0 };

	if (real)
		return 0;
	snprintf(path, sizeof(path), "%s/golden/models/haiku-qwen2-tiny-q8_0.gguf", src ? src : ".");
	model = infer_model_load(path, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(model); /* the model is part of the repository */
	session = infer_session_new(model, &so, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(session);
	infer_server_engine_session(&e, session, "haiku-qwen2-tiny-q8_0.gguf");
	real = infer_server_start(&e, NULL, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(real);
	return 0;
}

static void test_real_greedy(void)
{
	uint16_t saved = port;
	struct resp r;
	json_t *ev, *last, *ids;
	char text[512] = "";
	size_t n;

	open_real();
	port = infer_server_port(real);
	CU_ASSERT_EQUAL_FATAL(req("POST", "/v1/generate",
				  "{\"prompt\":\"Write a haiku about moon\",\"chat\":true,\"max_tokens\":30,"
				  "\"temperature\":0,\"stream\":true}",
				  &r),
			      0);
	CU_ASSERT_EQUAL(r.status, 200);
	ev = sse_events(&r);
	n = json_array_size(ev);
	CU_ASSERT_TRUE_FATAL(n >= 3);
	for (size_t i = 0; i + 1 < n; i++)
		strncat(text, str_of(json_object_get(json_array_get(ev, i), "text")),
			sizeof(text) - strlen(text) - 1);
	last = json_array_get(ev, n - 1);
	ids = json_object_get(last, "token_ids");
	/* The transformers golden's greedy continuation (../shared/models/README.md). */
	CU_ASSERT_STRING_EQUAL(text, "the moon\nof a crushed beetle\nthings that don?t change");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(last, "text")), text);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(last, "finish_reason")), "stop");
	CU_ASSERT_EQUAL(json_array_size(ids), n - 1);
	CU_ASSERT_EQUAL(json_integer_value(json_array_get(ids, json_array_size(ids) - 1)), EOG_ID);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(last, "prompt_tokens")), 13);
	json_decref(ev);
	resp_free(&r);
	expect_error("POST", "/v1/generate", "{\"prompt\":\"x\",\"max_tokens\":257}", 400, "max_tokens");
	port = saved;
}

/* Two sampled requests with different seeds, then the first seed again: the
 * same seed gives the same answer, so nothing leaks between requests. */
static void test_real_seeds(void)
{
	const char *fmt = "{\"prompt\":\"Write a haiku about rain\",\"chat\":true,\"max_tokens\":24,"
			  "\"temperature\":0.8,\"top_k\":40,\"top_p\":0.95,\"seed\":%d}";
	char body[256], *t[3];
	uint16_t saved = port;
	int seeds[3] = { 11, 12, 11 };

	open_real();
	port = infer_server_port(real);
	for (int i = 0; i < 3; i++) {
		struct resp r;
		json_t *j;

		snprintf(body, sizeof(body), fmt, seeds[i]);
		CU_ASSERT_EQUAL_FATAL(req("POST", "/v1/generate", body, &r), 0);
		CU_ASSERT_EQUAL(r.status, 200);
		j = body_json(&r);
		t[i] = strdup(str_of(json_object_get(j, "text")));
		json_decref(j);
		resp_free(&r);
	}
	CU_ASSERT_STRING_EQUAL(t[0], t[2]);
	CU_ASSERT_STRING_NOT_EQUAL(t[0], t[1]);
	for (int i = 0; i < 3; i++)
		free(t[i]);
	port = saved;
}

static int suite_init(void)
{
	signal(SIGPIPE, SIG_IGN);
	srv = start_fake(8, 2048);
	if (!srv)
		return 1;
	port = infer_server_port(srv);
	return 0;
}

static int suite_clean(void)
{
	infer_server_stop(srv);
	infer_server_stop(real);
	infer_session_free(session);
	infer_model_free(model);
	return 0;
}

int main(void)
{
	CU_pSuite s;
	int fails;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("server", suite_init, suite_clean);
	CU_add_test(s, "GET /health", test_health);
	CU_add_test(s, "generate, plain JSON body", test_generate_plain);
	CU_add_test(s, "generate, SSE stream with the end token and UTF-8", test_generate_stream);
	CU_add_test(s, "OpenAI completions, plain and streamed", test_completions);
	CU_add_test(s, "bad requests get JSON errors with the right status", test_bad_requests);
	CU_add_test(s, "body over the limit gets 413", test_body_limit);
	CU_add_test(s, "concurrent requests run one at a time", test_serialized);
	CU_add_test(s, "client disconnect cancels generation", test_disconnect);
	CU_add_test(s, "queue full gets 503", test_queue_full);
	CU_add_test(s, "stop with a stream in flight", test_stop_in_flight);
	CU_add_test(s, "real model: greedy haiku over SSE", test_real_greedy);
	CU_add_test(s, "real model: seeds are per request", test_real_seeds);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	fails = (int)CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
