/* infer serve: load a model once and answer HTTP requests until SIGINT/SIGTERM.
 *
 * Prints one line "infer serve: listening on http://HOST:PORT ..." on stdout
 * once the socket is bound, so a parent that asked for --port 0 learns the
 * port (the haiku check does). */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "infer/model.h"
#include "infer/server.h"
#include "infer/session.h"

struct serve_args {
	const char *model;
	const char *backend;
	infer_server_opts so;
	int threads;
	int n_ctx;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: infer serve -m MODEL.gguf [--backend cpu|cuda] [--host 127.0.0.1] [--port N]\n"
		"                   [--max-queue N] [--threads N] [--ctx N] [--max-body BYTES]\n"
		"  GET /health, POST /v1/generate (SSE with \"stream\": true), POST /v1/completions.\n"
		"  --port 0 binds any free port; the line printed on stdout names it.\n");
}

static int parse_long(const char *opt, const char *v, long lo, long hi, long *out)
{
	char *end;
	long x;

	errno = 0;
	x = strtol(v, &end, 10);
	if (errno || end == v || *end || x < lo || x > hi) {
		fprintf(stderr, "error: %s '%s' must be an integer in [%ld, %ld]\n", opt, v, lo, hi);
		return -1;
	}
	*out = x;
	return 0;
}

/* 0 ok, 1 --help, -1 usage error. */
static int parse_args(int argc, char **argv, struct serve_args *a)
{
	long x;

	for (int i = 1; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(o, "--help") || !strcmp(o, "-h"))
			return 1;
		if (!v) {
			fprintf(stderr, "error: %s needs a value\n", o);
			return -1;
		}
		i++;
		if (!strcmp(o, "-m") || !strcmp(o, "--model")) {
			a->model = v;
		} else if (!strcmp(o, "--backend")) {
			a->backend = v;
		} else if (!strcmp(o, "--host")) {
			a->so.host = v;
		} else if (!strcmp(o, "--port")) {
			if (parse_long(o, v, 0, 65535, &x))
				return -1;
			a->so.port = (uint16_t)x;
		} else if (!strcmp(o, "--max-queue")) {
			if (parse_long(o, v, 0, 100000, &x))
				return -1;
			a->so.max_queue = (int)x;
		} else if (!strcmp(o, "--threads")) {
			if (parse_long(o, v, 0, 1024, &x))
				return -1;
			a->threads = (int)x;
		} else if (!strcmp(o, "--ctx")) {
			if (parse_long(o, v, 0, INT_MAX, &x))
				return -1;
			a->n_ctx = (int)x;
		} else if (!strcmp(o, "--max-body")) {
			if (parse_long(o, v, 1, LONG_MAX, &x))
				return -1;
			a->so.max_body = (size_t)x;
		} else {
			fprintf(stderr, "error: unknown option '%s'\n", o);
			return -1;
		}
	}
	if (!a->model) {
		fprintf(stderr, "error: -m MODEL.gguf is required\n");
		return -1;
	}
	if (strcmp(a->backend, "cpu") && strcmp(a->backend, "cuda")) {
		fprintf(stderr, "error: --backend '%s': expected cpu or cuda\n", a->backend);
		return -1;
	}
	return 0;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

/* Blocks until SIGINT or SIGTERM. The signals were blocked before any thread
 * started, so every thread inherits the mask and only sigwait() sees them. */
static int wait_for_signal(const sigset_t *set)
{
	int sig = 0;

	while (sigwait(set, &sig))
		;
	return sig;
}

int cmd_serve(int argc, char **argv)
{
	struct serve_args a = { .backend = "cpu" };
	infer_session_opts sopts = { 0 };
	infer_server_engine e;
	infer_error err = { 0 };
	infer_model *m;
	infer_session *s;
	infer_server *srv;
	sigset_t set;
	int rc;

	infer_server_opts_default(&a.so);
	rc = parse_args(argc, argv, &a);
	if (rc) {
		usage(rc > 0 ? stdout : stderr);
		return rc > 0 ? 0 : 2;
	}
	m = infer_model_load(a.model, &err);
	if (!m) {
		fprintf(stderr, "error: %s: %s\n", a.model, err.msg);
		return err.code == INFER_E_IO ? 1 : 2;
	}
	sopts.backend = a.backend;
	sopts.n_ctx = a.n_ctx;
	sopts.n_threads = a.threads;
	s = infer_session_new(m, &sopts, &err);
	if (!s) {
		fprintf(stderr, "error: %s\n", err.msg);
		infer_model_free(m);
		return 1;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN); /* a client that vanished is an error return, not a kill */
	infer_server_engine_session(&e, s, base_name(a.model));
	srv = infer_server_start(&e, &a.so, &err);
	if (!srv) {
		fprintf(stderr, "error: %s\n", err.msg);
		infer_session_free(s);
		infer_model_free(m);
		return 1;
	}
	printf("infer serve: listening on http://%s:%u (model %s, backend %s)\n", a.so.host,
	       (unsigned)infer_server_port(srv), e.model_name, e.backend);
	fflush(stdout);
	rc = wait_for_signal(&set);
	fprintf(stderr, "infer serve: signal %d, stopping after %llu requests\n", rc,
		(unsigned long long)infer_server_requests(srv));
	infer_server_stop(srv);
	infer_session_free(s);
	infer_model_free(m);
	return 0;
}
