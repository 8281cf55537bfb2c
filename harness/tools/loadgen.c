/* loadgen: a scripted, time-bounded load run against an `infer serve` worker
 * on loopback. N client threads share R requests; in every 20:
 *   14 valid: 10 /v1/generate, 2 streamed, 2 OpenAI /v1/completions;
 *    4 malformed: bad JSON, types, ranges, unknown/duplicate fields, an
 *      empty body, a body over the size limit (413), an unknown path (404);
 *    2 disconnecting: one drops a stream after its first event, one drops
 *      the connection half-way through sending its body.
 * Pass: the worker never dies, every valid request gets the reference answer
 * (greedy, so deterministic; one reference per endpoint, taken during
 * warm-up), every malformed one a 4xx JSON error, and the worker's RSS after
 * the run is within --rss-slack of its RSS after warm-up. Warm-up runs one
 * concurrent round of every request kind first, so that the threads, malloc
 * arenas and buffers that concurrency needs exist before RSS is read.
 * Prints one JSON object; exit 0 pass, 1 fail, 2 usage. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PROMPT "Write a haiku about moon"

struct opts {
	const char *url;   /* http://127.0.0.1:PORT */
	int clients;
	int requests;
	double seconds;    /* overall deadline */
	long pid;          /* worker pid, for RSS */
	double rss_slack;  /* allowed growth, fraction */
};

struct buf {
	char *p;
	size_t n;
	int abort_after_event; /* disconnecting client: drop after the first event */
};

struct stats {
	pthread_mutex_t mu;
	int next;            /* next request index */
	int ok_valid, bad_valid, ok_malformed, bad_malformed, disconnects, transport_errors;
	int by_kind[4]; /* generate, stream, completions, malformed: requests sent */
	char first_error[512];
};

static struct opts g_opt = { NULL, 16, 200, 300.0, 0, 0.05 };
static char *g_reference;  /* text of the greedy /v1/generate answer */
static char *g_ref_cmpl;   /* text of the greedy /v1/completions answer */
static char *g_oversized;  /* a body over the worker's 1 MiB default limit */
static struct stats g_st = { .mu = PTHREAD_MUTEX_INITIALIZER };
static double g_deadline;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *user)
{
	struct buf *b = user;
	size_t n = size * nmemb;
	char *p = realloc(b->p, b->n + n + 1);

	if (!p)
		return 0;
	memcpy(p + b->n, ptr, n);
	b->p = p;
	b->n += n;
	b->p[b->n] = '\0';
	if (b->abort_after_event && strstr(b->p, "\n\n"))
		return 0; /* returning short makes curl drop the connection */
	return n;
}

/* POSTs body to path; returns the HTTP status (0 on transport error). */
static long post(const char *path, const char *body, struct buf *out, CURLcode *cc)
{
	char url[512];
	long status = 0;
	CURL *c = curl_easy_init();
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");

	snprintf(url, sizeof(url), "%s%s", g_opt.url, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	*cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return *cc == CURLE_OK ? status : (*cc == CURLE_WRITE_ERROR ? -1 : 0);
}

static char *text_of_plain(const char *body)
{
	json_t *j = json_loads(body, 0, NULL);
	const char *t = j ? json_string_value(json_object_get(j, "text")) : NULL;
	char *r = t ? strdup(t) : NULL;

	json_decref(j);
	return r;
}

/* OpenAI shape: choices[0].text. */
static char *text_of_completion(const char *body)
{
	json_t *j = json_loads(body, 0, NULL);
	json_t *c = j ? json_array_get(json_object_get(j, "choices"), 0) : NULL;
	const char *t = json_string_value(json_object_get(c, "text"));
	char *r = t ? strdup(t) : NULL;

	json_decref(j);
	return r;
}

/* Concatenates the "text" of every token event of an SSE body; NULL unless a
 * final {"done":true} event was seen. */
static char *text_of_sse(const char *body)
{
	size_t cap = strlen(body) + 1, n = 0;
	char *out = calloc(1, cap);
	int done = 0;
	const char *p = body;

	while (out && (p = strstr(p, "data:"))) {
		const char *e = strstr(p, "\n\n");
		json_t *j = json_loadb(p + 5, e ? (size_t)(e - p - 5) : strlen(p + 5), 0, NULL);
		const char *t = j ? json_string_value(json_object_get(j, "text")) : NULL;

		if (j && json_is_true(json_object_get(j, "done")))
			done = 1;
		else if (t && n + strlen(t) < cap)
			n += (size_t)sprintf(out + n, "%s", t);
		json_decref(j);
		p += 5;
	}
	if (!done) {
		free(out);
		return NULL;
	}
	return out;
}

struct bad_req {
	const char *path;
	const char *body; /* NULL: the oversized body */
};

static const struct bad_req malformed[] = {
	{ "/v1/generate", "{\"prompt\": " },                               /* truncated JSON */
	{ "/v1/generate", "{\"prompt\": 42, \"max_tokens\": 8}" },         /* wrong type */
	{ "/v1/generate", "{\"prompt\": \"x\", \"max_tokens\": -5}" },     /* out of range */
	{ "/v1/generate", "{\"prompt\": \"x\", \"temperature\": \"hot\"}" }, /* wrong type */
	{ "/v1/generate", "[1, 2, 3]" },                                   /* not an object */
	{ "/v1/generate", "{\"prompt\": \"x\", \"top_p\": 7.5}" },         /* out of range */
	{ "/v1/generate", "{\"prompt\": \"x\", \"bogus\": 1}" },           /* unknown field */
	{ "/v1/generate", "{\"prompt\": \"x\", \"prompt\": \"y\"}" },      /* duplicate key */
	{ "/v1/generate", "" },                                            /* empty body */
	{ "/v1/completions", "{\"prompt\": \"x\", \"n\": 3}" },            /* unsupported n */
	{ "/v1/completions", "{\"prompt\": \"x\", \"echo\": true}" },      /* unsupported echo */
	{ "/v1/generate", NULL },                                          /* 413 */
	{ "/v1/nothing", "{}" },                                           /* 404 */
};

#define N_MALFORMED (sizeof(malformed) / sizeof(malformed[0]))

static void note_error(const char *fmt, const char *a, long b)
{
	if (!g_st.first_error[0])
		snprintf(g_st.first_error, sizeof(g_st.first_error), fmt, a, b);
}

/* Valid request k (0 generate, 1 stream, 2 completions): reference answer? */
static void valid_request(int k)
{
	static const char *const fmt[] = {
		"{\"prompt\":\"%s\",\"chat\":true,\"max_tokens\":12,\"temperature\":0,\"stream\":false}",
		"{\"prompt\":\"%s\",\"chat\":true,\"max_tokens\":12,\"temperature\":0,\"stream\":true}",
		"{\"model\":\"m\",\"prompt\":\"%s\",\"max_tokens\":12,\"temperature\":0}",
	};
	char body[256];
	struct buf b = { 0 };
	CURLcode cc;
	long st;
	char *t = NULL;
	const char *want = k == 2 ? g_ref_cmpl : g_reference;
	int ok;

	snprintf(body, sizeof(body), fmt[k], PROMPT);
	st = post(k == 2 ? "/v1/completions" : "/v1/generate", body, &b, &cc);
	if (st == 200 && b.p)
		t = k == 0 ? text_of_plain(b.p) : k == 1 ? text_of_sse(b.p) : text_of_completion(b.p);
	ok = t && want && !strcmp(t, want);
	pthread_mutex_lock(&g_st.mu);
	g_st.by_kind[k]++;
	if (ok) {
		g_st.ok_valid++;
	} else {
		g_st.bad_valid++;
		note_error("valid request got status %s%ld or a different answer", "", st);
	}
	if (st == 0)
		g_st.transport_errors++;
	pthread_mutex_unlock(&g_st.mu);
	free(t);
	free(b.p);
}

static void malformed_request(int i)
{
	const struct bad_req *m = &malformed[i % N_MALFORMED];
	struct buf b = { 0 };
	CURLcode cc;
	long st = post(m->path, m->body ? m->body : g_oversized, &b, &cc);
	json_t *j = b.p ? json_loads(b.p, 0, NULL) : NULL;
	int ok = st >= 400 && st < 500 && j && json_object_get(j, "error");

	if (!m->body)
		ok = ok && st == 413;
	pthread_mutex_lock(&g_st.mu);
	g_st.by_kind[3]++;
	if (ok) {
		g_st.ok_malformed++;
	} else {
		g_st.bad_malformed++;
		note_error("malformed request '%.200s' got status %ld", m->body ? m->body : "(oversized)",
			   st);
	}
	pthread_mutex_unlock(&g_st.mu);
	json_decref(j);
	free(b.p);
}

/* A stream dropped after its first event (the generation must be cancelled). */
static void drop_stream(int i)
{
	char body[256];
	struct buf b = { .abort_after_event = 1 };
	CURLcode cc;

	snprintf(body, sizeof(body),
		 "{\"prompt\":\"%s\",\"chat\":true,\"max_tokens\":64,\"temperature\":0.8,"
		 "\"seed\":%d,\"stream\":true}", PROMPT, i);
	post("/v1/generate", body, &b, &cc);
	free(b.p);
}

/* Announces a body, sends half of it and closes the socket. */
static void drop_upload(void)
{
	static const char body[] = "{\"prompt\":\"" PROMPT "\",\"max_tokens\":4}";
	char req[512];
	struct sockaddr_in a = { .sin_family = AF_INET };
	unsigned port = 0;
	int fd, n;

	if (sscanf(g_opt.url, "http://127.0.0.1:%u", &port) != 1)
		return;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	n = snprintf(req, sizeof(req),
		     "POST /v1/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
		     "\r\nContent-Length: %zu\r\n\r\n%.*s", sizeof(body) - 1,
		     (int)(sizeof(body) / 2), body);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return;
	if (!connect(fd, (struct sockaddr *)&a, sizeof(a)) && write(fd, req, (size_t)n) == n)
		usleep(1000);
	close(fd);
}

static void one_request(int i)
{
	int kind = i % 20;

	if (kind < 10)
		valid_request(0);
	else if (kind < 12)
		valid_request(1);
	else if (kind < 14)
		valid_request(2);
	else if (kind < 18)
		malformed_request(4 * (i / 20) + kind - 14);
	else {
		if (kind == 18)
			drop_stream(i);
		else
			drop_upload();
		pthread_mutex_lock(&g_st.mu);
		g_st.disconnects++;
		pthread_mutex_unlock(&g_st.mu);
	}
}

static int g_limit; /* requests of the current round */

static void *client(void *arg)
{
	(void)arg;
	for (;;) {
		int i;

		pthread_mutex_lock(&g_st.mu);
		i = g_st.next < g_limit && now_s() < g_deadline ? g_st.next++ : -1;
		pthread_mutex_unlock(&g_st.mu);
		if (i < 0)
			return NULL;
		one_request(i);
	}
}

/* n requests over the clients; 0 when every one was issued before the deadline. */
static int run_round(int n)
{
	pthread_t th[256];

	g_st.next = 0;
	g_limit = n;
	for (int i = 0; i < g_opt.clients; i++)
		pthread_create(&th[i], NULL, client, NULL);
	for (int i = 0; i < g_opt.clients; i++)
		pthread_join(th[i], NULL);
	return g_st.next == n ? 0 : -1;
}

static long rss_kib(long pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static int parse_args(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--help")) {
			printf("usage: loadgen --url http://127.0.0.1:PORT --pid PID [--clients 16] "
			       "[--requests 200] [--seconds 300] [--rss-slack 0.05]\n");
			exit(0);
		}
		if (!v) {
			fprintf(stderr, "error: %s needs a value\n", a);
			return -1;
		}
		if (!strcmp(a, "--url"))
			g_opt.url = v;
		else if (!strcmp(a, "--clients"))
			g_opt.clients = atoi(v);
		else if (!strcmp(a, "--requests"))
			g_opt.requests = atoi(v);
		else if (!strcmp(a, "--seconds"))
			g_opt.seconds = atof(v);
		else if (!strcmp(a, "--pid"))
			g_opt.pid = atol(v);
		else if (!strcmp(a, "--rss-slack"))
			g_opt.rss_slack = atof(v);
		else {
			fprintf(stderr, "error: unknown option %s\n", a);
			return -1;
		}
		i++;
	}
	if (!g_opt.url || g_opt.pid <= 0 || g_opt.clients < 1 || g_opt.clients > 256 ||
	    g_opt.requests < 1) {
		fprintf(stderr, "error: --url and --pid are required; clients 1..256, requests >= 1\n");
		return -1;
	}
	return 0;
}

/* The reference answer of one endpoint: the same text twice in a row. */
static char *reference(const char *path, const char *body, char *(*text_of)(const char *))
{
	char *first = NULL;

	for (int i = 0; i < 2; i++) {
		struct buf b = { 0 };
		CURLcode cc;
		long st = post(path, body, &b, &cc);
		char *t = st == 200 && b.p ? text_of(b.p) : NULL;

		free(b.p);
		if (!t) {
			fprintf(stderr, "error: warm-up %s failed (status %ld, %s)\n", path, st,
				curl_easy_strerror(cc));
			free(first);
			return NULL;
		}
		if (!first) {
			first = t;
			continue;
		}
		if (strcmp(t, first)) {
			fprintf(stderr, "error: greedy answers of %s differ during warm-up\n", path);
			free(t);
			free(first);
			return NULL;
		}
		free(t);
	}
	return first;
}

static int warm_up(void)
{
	char body[256];
	int rc;

	snprintf(body, sizeof(body),
		 "{\"prompt\":\"%s\",\"chat\":true,\"max_tokens\":12,\"temperature\":0,"
		 "\"stream\":false}", PROMPT);
	g_reference = reference("/v1/generate", body, text_of_plain);
	snprintf(body, sizeof(body),
		 "{\"model\":\"m\",\"prompt\":\"%s\",\"max_tokens\":12,\"temperature\":0}", PROMPT);
	g_ref_cmpl = reference("/v1/completions", body, text_of_completion);
	if (!g_reference || !g_ref_cmpl)
		return -1;
	/* One concurrent round of every kind, two per client at least. */
	g_deadline = now_s() + g_opt.seconds;
	rc = run_round(g_opt.clients * 2 > 40 ? g_opt.clients * 2 : 40);
	if (rc || g_st.bad_valid || g_st.bad_malformed) {
		fprintf(stderr, "error: warm-up round failed: %s\n", g_st.first_error);
		return -1;
	}
	memset(g_st.by_kind, 0, sizeof(g_st.by_kind));
	g_st.ok_valid = g_st.bad_valid = g_st.ok_malformed = g_st.bad_malformed = 0;
	g_st.disconnects = g_st.transport_errors = 0;
	return 0;
}

static int make_oversized(void)
{
	size_t n = (1u << 20) + 4096; /* over infer serve's default --max-body */

	g_oversized = malloc(n + 1);
	if (!g_oversized)
		return -1;
	memset(g_oversized, ' ', n);
	memcpy(g_oversized, "{\"prompt\":\"", 11);
	g_oversized[n - 2] = '"';
	g_oversized[n - 1] = '}';
	g_oversized[n] = 0;
	return 0;
}

int main(int argc, char **argv)
{
	long rss_warm, rss_after;
	double t0;
	int alive, pass, done;

	if (parse_args(argc, argv))
		return 2;
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_ALL);
	if (make_oversized() || warm_up()) {
		curl_global_cleanup();
		return 1;
	}
	rss_warm = rss_kib(g_opt.pid);
	t0 = now_s();
	g_deadline = t0 + g_opt.seconds;
	done = run_round(g_opt.requests) == 0;
	rss_after = rss_kib(g_opt.pid);
	alive = rss_after > 0;
	pass = alive && done && g_st.bad_valid == 0 && g_st.bad_malformed == 0 &&
	       rss_after <= (long)(rss_warm * (1.0 + g_opt.rss_slack));
	json_t *r = json_pack("{s:b, s:i, s:i, s:i, s:f, s:i, s:i, s:i, s:i, s:i, s:i, s:b,"
			      " s:I, s:I, s:f, s:s,"
			      " s:{s:i, s:i, s:i, s:i}}",
			      "pass", pass, "clients", g_opt.clients, "requests_done", g_st.next,
			      "requests_planned", g_opt.requests, "seconds", now_s() - t0,
			      "valid_ok", g_st.ok_valid, "valid_bad", g_st.bad_valid,
			      "malformed_ok", g_st.ok_malformed, "malformed_bad", g_st.bad_malformed,
			      "disconnects", g_st.disconnects, "transport_errors", g_st.transport_errors,
			      "worker_alive", alive, "rss_warm_kib", (json_int_t)rss_warm,
			      "rss_after_kib", (json_int_t)rss_after,
			      "rss_growth", rss_warm > 0 ? (double)rss_after / rss_warm - 1.0 : 0.0,
			      "first_error", g_st.first_error, "sent", "generate", g_st.by_kind[0],
			      "generate_stream", g_st.by_kind[1], "completions", g_st.by_kind[2],
			      "malformed", g_st.by_kind[3]);
	json_dumpf(r, stdout, JSON_INDENT(2));
	putchar('\n');
	json_decref(r);
	free(g_reference);
	free(g_ref_cmpl);
	free(g_oversized);
	curl_global_cleanup();
	return pass ? 0 : 1;
}
