/* loadgen: a scripted, time-bounded load run against an `infer serve` worker
 * on loopback. N client threads share R requests mixing valid (plain and
 * streaming), malformed and disconnecting clients. Pass: the worker never
 * dies, every valid request gets the reference answer (greedy, so it is
 * deterministic), every malformed one gets a 4xx JSON error, and the
 * worker's RSS after the run is within --rss-slack of its RSS after warm-up.
 * Prints one JSON object; exit 0 pass, 1 fail, 2 usage. */
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
	char first_error[512];
};

static struct opts g_opt = { NULL, 16, 200, 300.0, 0, 0.05 };
static char *g_reference;  /* text of the greedy answer */
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

static const char *const malformed[] = {
	"{\"prompt\": ",                                        /* truncated JSON */
	"{\"prompt\": 42, \"max_tokens\": 8}",                  /* wrong type */
	"{\"prompt\": \"x\", \"max_tokens\": -5}",              /* out of range */
	"{\"prompt\": \"x\", \"temperature\": \"hot\"}",        /* wrong type */
	"[1, 2, 3]",                                            /* not an object */
	"{\"prompt\": \"x\", \"top_p\": 7.5}",                  /* out of range */
};

static void note_error(const char *fmt, const char *a, long b)
{
	if (!g_st.first_error[0])
		snprintf(g_st.first_error, sizeof(g_st.first_error), fmt, a, b);
}

static void one_request(int i)
{
	char body[256];
	struct buf b = { 0 };
	CURLcode cc;
	long st;
	int kind = i % 10; /* 0-5 valid plain, 6 valid stream, 7-8 malformed, 9 disconnect */

	if (kind <= 6) {
		snprintf(body, sizeof(body),
			 "{\"prompt\":\"%s\",\"chat\":true,\"max_tokens\":12,\"temperature\":0,\"stream\":%s}",
			 PROMPT, kind == 6 ? "true" : "false");
		st = post("/v1/generate", body, &b, &cc);
		char *t = st == 200 ? (kind == 6 ? text_of_sse(b.p ? b.p : "") : text_of_plain(b.p ? b.p : "")) : NULL;
		int ok = t && !strcmp(t, g_reference);
		pthread_mutex_lock(&g_st.mu);
		if (ok)
			g_st.ok_valid++;
		else {
			g_st.bad_valid++;
			note_error("valid request got status %s%ld or a different answer", "", st);
		}
		if (st == 0)
			g_st.transport_errors++;
		pthread_mutex_unlock(&g_st.mu);
		free(t);
	} else if (kind <= 8) {
		const char *m = malformed[(i / 10) % (sizeof(malformed) / sizeof(malformed[0]))];
		st = post("/v1/generate", m, &b, &cc);
		json_t *j = b.p ? json_loads(b.p, 0, NULL) : NULL;
		int ok = st >= 400 && st < 500 && j && json_object_get(j, "error");
		pthread_mutex_lock(&g_st.mu);
		if (ok)
			g_st.ok_malformed++;
		else {
			g_st.bad_malformed++;
			note_error("malformed body '%s' got status %ld", m, st);
		}
		pthread_mutex_unlock(&g_st.mu);
		json_decref(j);
	} else {
		b.abort_after_event = 1;
		snprintf(body, sizeof(body),
			 "{\"prompt\":\"%s\",\"chat\":true,\"max_tokens\":64,\"temperature\":0.8,\"seed\":%d,\"stream\":true}",
			 PROMPT, i);
		post("/v1/generate", body, &b, &cc);
		pthread_mutex_lock(&g_st.mu);
		g_st.disconnects++;
		pthread_mutex_unlock(&g_st.mu);
	}
	free(b.p);
}

static void *client(void *arg)
{
	(void)arg;
	for (;;) {
		int i;

		pthread_mutex_lock(&g_st.mu);
		i = g_st.next < g_opt.requests && now_s() < g_deadline ? g_st.next++ : -1;
		pthread_mutex_unlock(&g_st.mu);
		if (i < 0)
			return NULL;
		one_request(i);
	}
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
	if (!g_opt.url || g_opt.pid <= 0 || g_opt.clients < 1 || g_opt.clients > 256 || g_opt.requests < 1) {
		fprintf(stderr, "error: --url and --pid are required; clients 1..256, requests >= 1\n");
		return -1;
	}
	return 0;
}

static int warm_up(void)
{
	char body[256];
	CURLcode cc;

	snprintf(body, sizeof(body),
		 "{\"prompt\":\"%s\",\"chat\":true,\"max_tokens\":12,\"temperature\":0,\"stream\":false}", PROMPT);
	for (int i = 0; i < 20; i++) {
		struct buf b = { 0 };
		long st = post("/v1/generate", body, &b, &cc);
		char *t = st == 200 && b.p ? text_of_plain(b.p) : NULL;

		free(b.p);
		if (!t) {
			fprintf(stderr, "error: warm-up request %d failed (status %ld, %s)\n", i, st,
				curl_easy_strerror(cc));
			return -1;
		}
		if (!g_reference)
			g_reference = t;
		else if (strcmp(t, g_reference)) {
			fprintf(stderr, "error: greedy answers differ during warm-up\n");
			free(t);
			return -1;
		} else
			free(t);
		one_request(10 * i + 9); /* one disconnecting client per round, also warmed */
	}
	return 0;
}

int main(int argc, char **argv)
{
	pthread_t th[256];
	long rss_warm, rss_after;
	double t0;
	int alive, pass;

	if (parse_args(argc, argv))
		return 2;
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_ALL);
	if (warm_up()) {
		curl_global_cleanup();
		return 1;
	}
	g_st.disconnects = 0;
	rss_warm = rss_kib(g_opt.pid);
	t0 = now_s();
	g_deadline = t0 + g_opt.seconds;
	for (int i = 0; i < g_opt.clients; i++)
		pthread_create(&th[i], NULL, client, NULL);
	for (int i = 0; i < g_opt.clients; i++)
		pthread_join(th[i], NULL);
	rss_after = rss_kib(g_opt.pid);
	alive = rss_after > 0;
	pass = alive && g_st.bad_valid == 0 && g_st.bad_malformed == 0 && g_st.next == g_opt.requests &&
	       rss_after <= (long)(rss_warm * (1.0 + g_opt.rss_slack));
	json_t *r = json_pack("{s:b, s:i, s:i, s:i, s:f, s:i, s:i, s:i, s:i, s:i, s:i, s:b, s:I, s:I, s:f, s:s}",
			      "pass", pass, "clients", g_opt.clients, "requests_done", g_st.next,
			      "requests_planned", g_opt.requests, "seconds", now_s() - t0,
			      "valid_ok", g_st.ok_valid, "valid_bad", g_st.bad_valid,
			      "malformed_ok", g_st.ok_malformed, "malformed_bad", g_st.bad_malformed,
			      "disconnects", g_st.disconnects, "transport_errors", g_st.transport_errors,
			      "worker_alive", alive, "rss_warm_kib", (json_int_t)rss_warm,
			      "rss_after_kib", (json_int_t)rss_after,
			      "rss_growth", rss_warm > 0 ? (double)rss_after / rss_warm - 1.0 : 0.0,
			      "first_error", g_st.first_error);
	json_dumpf(r, stdout, JSON_INDENT(2));
	putchar('\n');
	json_decref(r);
	free(g_reference);
	curl_global_cleanup();
	return pass ? 0 : 1;
}
