/* Child-process worker and SSE client for the haiku check (haiku_worker.h). */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "haiku_worker.h"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static int curl_ready(void)
{
	static int done;

	/* conform is single-threaded while checks run, so this is race-free. */
	if (!done && curl_global_init(CURL_GLOBAL_ALL) == CURLE_OK)
		done = 1;
	return done;
}

/* ---- the child process ---------------------------------------------------- */

void haiku_worker_log_tail(const struct haiku_worker *w, char *buf, size_t n)
{
	FILE *f = w->log_path[0] ? fopen(w->log_path, "r") : NULL;
	long size;
	size_t got;

	buf[0] = '\0';
	if (!f || n < 2) {
		if (f)
			fclose(f);
		return;
	}
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	fseek(f, size > (long)n - 1 ? size - ((long)n - 1) : 0, SEEK_SET);
	got = fread(buf, 1, n - 1, f);
	buf[got] = '\0';
	fclose(f);
	for (char *p = buf; *p; p++) /* one line for messages */
		if (*p == '\n')
			*p = '|';
}

/* Has the child exited? Reaps it when so. */
static int child_exited(struct haiku_worker *w)
{
	if (!w->pid)
		return 1;
	if (waitpid(w->pid, &w->status, WNOHANG) == w->pid) {
		w->pid = 0;
		return 1;
	}
	return 0;
}

void haiku_worker_stop(struct haiku_worker *w)
{
	if (w->pid && !child_exited(w)) {
		kill(w->pid, SIGTERM);
		for (int i = 0; i < 100 && !child_exited(w); i++)
			sleep_ms(20);
		if (w->pid) { /* it ignored SIGTERM for 2 s */
			kill(w->pid, SIGKILL);
			waitpid(w->pid, &w->status, 0);
			w->pid = 0;
		}
	}
	if (w->log_path[0])
		unlink(w->log_path);
	w->log_path[0] = '\0';
}

static int spawn(struct haiku_worker *w, char *const *argv, infer_error *err)
{
	int fd;

	snprintf(w->log_path, sizeof(w->log_path), "/tmp/haiku-worker-XXXXXX");
	fd = mkstemp(w->log_path);
	if (fd < 0) {
		w->log_path[0] = '\0';
		return infer_error_set(err, INFER_E_IO, -1, "cannot create the worker log: %s",
				       strerror(errno));
	}
	fflush(NULL);
	w->pid = fork();
	if (w->pid < 0) {
		w->pid = 0;
		close(fd);
		return infer_error_set(err, INFER_E_IO, -1, "fork: %s", strerror(errno));
	}
	if (w->pid == 0) {
		/* The worker must not outlive the check, even if conform is killed. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		close(fd);
		execv(argv[0], argv);
		dprintf(STDERR_FILENO, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(fd);
	return 0;
}

/* Finds "http://HOST:PORT" in the log; 1 found, 0 not yet. */
static int read_url(struct haiku_worker *w)
{
	char buf[4096];
	FILE *f = fopen(w->log_path, "r");
	size_t n;
	char *p, *e;

	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strstr(buf, "listening on http://");
	if (!p)
		return 0;
	p += strlen("listening on ");
	for (e = p; *e && *e != ' ' && *e != '\n' && *e != '\r'; e++)
		;
	if (*e == '\0' || (size_t)(e - p) >= sizeof(w->url))
		return 0; /* the line is not complete yet */
	memcpy(w->url, p, (size_t)(e - p));
	w->url[e - p] = '\0';
	return 1;
}

static int start_failed(struct haiku_worker *w, infer_error *err, const char *what)
{
	char tail[400];

	haiku_worker_log_tail(w, tail, sizeof(tail));
	if (!w->pid && WIFEXITED(w->status))
		infer_error_set(err, INFER_E_IO, -1, "worker %s (exit status %d); log: %s", what,
				WEXITSTATUS(w->status), tail);
	else
		infer_error_set(err, INFER_E_IO, -1, "worker %s; log: %s", what, tail);
	haiku_worker_stop(w);
	return err ? err->code : INFER_E_IO;
}

int haiku_worker_start(struct haiku_worker *w, char *const *argv, double timeout_s,
		       json_t **health, infer_error *err)
{
	double deadline = now_ms() + timeout_s * 1e3;
	char url[160];

	memset(w, 0, sizeof(*w));
	*health = NULL;
	if (!curl_ready())
		return infer_error_set(err, INFER_E_IO, -1, "curl_global_init failed");
	if (spawn(w, argv, err))
		return err ? err->code : INFER_E_IO;
	while (!read_url(w)) {
		if (child_exited(w))
			return start_failed(w, err, "exited before listening");
		if (now_ms() > deadline)
			return start_failed(w, err, "did not print its address in time");
		sleep_ms(20);
	}
	snprintf(url, sizeof(url), "%s/health", w->url);
	for (;;) {
		long status = 0;
		json_t *h = haiku_http_get_json(url, 2.0, &status, NULL);

		if (h && status == 200) {
			*health = h;
			return 0;
		}
		json_decref(h);
		if (child_exited(w))
			return start_failed(w, err, "exited before /health answered");
		if (now_ms() > deadline)
			return start_failed(w, err, "/health did not answer 200 in time");
		sleep_ms(50);
	}
}

/* ---- HTTP ----------------------------------------------------------------- */

struct membuf {
	char *p;
	size_t n;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *user)
{
	struct membuf *b = user;
	size_t n = size * nmemb;
	char *p = realloc(b->p, b->n + n + 1);

	if (!p)
		return 0;
	memcpy(p + b->n, ptr, n);
	b->p = p;
	b->n += n;
	b->p[b->n] = '\0';
	return n;
}

json_t *haiku_http_get_json(const char *url, double timeout_s, long *status, infer_error *err)
{
	struct membuf b = { 0 };
	CURL *c;
	CURLcode cc;
	json_t *j = NULL;
	json_error_t je;

	*status = 0;
	if (!curl_ready() || !(c = curl_easy_init())) {
		infer_error_set(err, INFER_E_IO, -1, "curl init failed");
		return NULL;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(timeout_s * 1e3));
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(c);
	if (cc != CURLE_OK)
		infer_error_set(err, INFER_E_IO, -1, "GET %s: %s", url, curl_easy_strerror(cc));
	else if (!(j = json_loadb(b.p ? b.p : "", b.n, 0, &je)))
		infer_error_set(err, INFER_E_FORMAT, -1, "GET %s: body is not JSON: %s", url, je.text);
	free(b.p);
	return j;
}

/* ---- SSE ------------------------------------------------------------------ */

static int sse_fail(struct haiku_sse *p, const char *fmt, const char *what)
{
	if (!p->failed)
		infer_error_set(&p->err, INFER_E_FORMAT, -1, fmt, p->n_events, what);
	p->failed = 1;
	return -1;
}

static int stream_text(struct haiku_stream *s, const char *text, size_t len)
{
	char *t = realloc(s->text, s->text_len + len + 1);

	if (!t)
		return -1;
	memcpy(t + s->text_len, text, len);
	s->text = t;
	s->text_len += len;
	s->text[s->text_len] = '\0';
	return 0;
}

static int stream_push(struct haiku_stream *s, int32_t id, float lp, const char *text, size_t len)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		int32_t *ids = realloc(s->ids, cap * sizeof(*ids));
		float *lps;

		if (!ids)
			return -1;
		s->ids = ids;
		lps = realloc(s->logprobs, cap * sizeof(*lps));
		if (!lps)
			return -1;
		s->logprobs = lps;
		s->cap = cap;
	}
	if (stream_text(s, text, len))
		return -1;
	s->ids[s->n] = id;
	s->logprobs[s->n++] = lp;
	return 0;
}

/* One event's data (the "data:" lines joined). */
static int sse_event(struct haiku_sse *p, const char *data, size_t n)
{
	struct haiku_stream *s = p->out;
	json_error_t je;
	json_t *j = json_loadb(data, n, 0, &je), *id, *text, *lp;
	int rc = 0;

	p->n_events++;
	if (s->final)
		rc = sse_fail(p, "SSE event %d: %s", "data after the final event");
	else if (!json_is_object(j))
		rc = sse_fail(p, "SSE event %d: not a JSON object (%s)", j ? "array/scalar" : je.text);
	else if (json_object_get(j, "error"))
		rc = sse_fail(p, "SSE event %d: worker error: %s",
			      json_string_value(json_object_get(json_object_get(j, "error"), "message")) ?
				      json_string_value(json_object_get(json_object_get(j, "error"), "message")) :
				      "?");
	else if (json_is_true(json_object_get(j, "done")))
		s->final = json_incref(j);
	else if (json_is_true(json_object_get(j, "flush")) &&
		 json_is_string(text = json_object_get(j, "text"))) {
		if (stream_text(s, json_string_value(text), json_string_length(text)))
			rc = sse_fail(p, "SSE event %d: %s", "out of memory");
	}
	else if (!json_is_integer(id = json_object_get(j, "token_id")) ||
		 !json_is_string(text = json_object_get(j, "text")) ||
		 !json_is_number(lp = json_object_get(j, "logprob")))
		rc = sse_fail(p, "SSE event %d: %s", "token event needs token_id (int), text (string), logprob (number)");
	else {
		if (s->n == 0)
			s->ttft_ms = now_ms() - p->t0;
		json_array_append(s->texts, text);
		if (stream_push(s, (int32_t)json_integer_value(id), (float)json_number_value(lp),
				json_string_value(text), json_string_length(text)))
			rc = sse_fail(p, "SSE event %d: %s", "out of memory");
	}
	json_decref(j);
	return rc;
}

/* Splits complete events (terminated by a blank line) out of the buffer. */
int haiku_sse_feed(struct haiku_sse *p, const char *data, size_t n)
{
	size_t start = 0;

	if (p->failed)
		return -1;
	if (p->n + n + 1 > p->cap) {
		size_t cap = (p->n + n + 1) * 2;
		char *b = realloc(p->buf, cap);

		if (!b)
			return sse_fail(p, "SSE event %d: %s", "out of memory");
		p->buf = b;
		p->cap = cap;
	}
	memcpy(p->buf + p->n, data, n);
	p->n += n;
	p->buf[p->n] = '\0';
	for (;;) {
		char *end = strstr(p->buf + start, "\n\n");
		char *crlf = strstr(p->buf + start, "\r\n\r\n");
		size_t len, skip = 2;
		char *ev, *line, *save = NULL;
		size_t dn = 0;

		if (crlf && (!end || crlf < end)) {
			end = crlf;
			skip = 4;
		}
		if (!end)
			break;
		len = (size_t)(end - (p->buf + start));
		ev = malloc(len + 1);
		if (!ev)
			return sse_fail(p, "SSE event %d: %s", "out of memory");
		/* Join the data: lines; comments (":...") and other fields are ignored. */
		p->buf[start + len] = '\0';
		for (line = strtok_r(p->buf + start, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
			if (strncmp(line, "data:", 5))
				continue;
			line += 5;
			if (*line == ' ')
				line++;
			if (dn)
				ev[dn++] = '\n';
			memcpy(ev + dn, line, strlen(line));
			dn += strlen(line);
		}
		start += len + skip;
		if (dn && sse_event(p, ev, dn)) {
			free(ev);
			return -1;
		}
		free(ev);
	}
	memmove(p->buf, p->buf + start, p->n - start + 1);
	p->n -= start;
	return 0;
}

int haiku_sse_finish(struct haiku_sse *p, infer_error *err)
{
	if (p->failed) {
		if (err)
			*err = p->err;
		return p->err.code ? p->err.code : INFER_E_FORMAT;
	}
	if (!p->out->final)
		return infer_error_set(err, INFER_E_FORMAT, -1,
				       "SSE stream ended after %d events without the final done event",
				       p->n_events);
	return 0;
}

static size_t on_sse(char *ptr, size_t size, size_t nmemb, void *user)
{
	struct haiku_sse *p = user;

	return haiku_sse_feed(p, ptr, size * nmemb) ? 0 : size * nmemb;
}

int haiku_http_stream(const char *url, const char *body, double timeout_s,
		      struct haiku_stream *out, infer_error *err)
{
	struct haiku_sse p = { .out = out };
	struct curl_slist *h;
	CURL *c;
	CURLcode cc;
	int rc;

	memset(out, 0, sizeof(*out));
	out->texts = json_array();
	if (!curl_ready() || !(c = curl_easy_init()))
		return infer_error_set(err, INFER_E_IO, -1, "curl init failed");
	h = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_sse);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &p);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(timeout_s * 1e3));
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	p.t0 = now_ms();
	cc = curl_easy_perform(c);
	out->total_ms = now_ms() - p.t0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	if (p.failed)
		rc = haiku_sse_finish(&p, err);
	else if (cc != CURLE_OK)
		rc = infer_error_set(err, INFER_E_IO, -1, "POST %s: %s", url, curl_easy_strerror(cc));
	else if (out->status != 200)
		rc = infer_error_set(err, INFER_E_IO, -1, "POST %s: HTTP %ld: %.200s", url, out->status,
				     p.buf ? p.buf : "");
	else
		rc = haiku_sse_finish(&p, err);
	free(p.buf);
	return rc;
}

void haiku_stream_free(struct haiku_stream *s)
{
	free(s->ids);
	free(s->logprobs);
	free(s->text);
	json_decref(s->texts);
	json_decref(s->final);
	memset(s, 0, sizeof(*s));
}
