/* infer tokenize -m MODEL.gguf [--special] [--no-bos] [--timings] (-p TEXT | --file F)
 * Prints the token ids of the text, separated by spaces, on one line.
 * --timings adds one JSON line on stderr: how long opening the GGUF, loading
 * the vocabulary and tokenizing took (the tokenizer's benchmark). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "infer/gguf.h"
#include "infer/tokenizer.h"

static void usage(void)
{
	fprintf(stderr,
		"usage: infer tokenize -m MODEL.gguf [--special] [--no-bos] [--timings] "
		"(-p TEXT | --file F)\n"
		"  --special  match control tokens such as <|im_start|> in the text\n"
		"  --no-bos   never add BOS/EOS, even when the vocabulary asks for them\n"
		"  --timings  print load and tokenize times as JSON on stderr\n");
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0, r;

	if (!f) {
		fprintf(stderr, "error: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	do {
		if (n == cap) {
			char *p = realloc(buf, cap = cap ? 2 * cap : 65536);

			if (!p) {
				fprintf(stderr, "error: %s: out of memory\n", path);
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = p;
		}
		r = fread(buf + n, 1, cap - n, f);
		n += r;
	} while (r > 0);
	if (ferror(f)) {
		fprintf(stderr, "error: %s: read failed\n", path);
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*len = n;
	return buf;
}

struct tok_args {
	const char *model, *prompt, *file;
	int special, add_special, timings;
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int parse_args(int argc, char **argv, struct tok_args *a)
{
	int i;

	*a = (struct tok_args){ .add_special = 1 };
	for (i = 1; i < argc; i++) {
		const char *s = argv[i];

		if (!strcmp(s, "--special")) {
			a->special = 1;
		} else if (!strcmp(s, "--timings")) {
			a->timings = 1;
		} else if (!strcmp(s, "--no-bos")) {
			a->add_special = 0;
		} else if ((!strcmp(s, "-m") || !strcmp(s, "-p") || !strcmp(s, "--file")) &&
			   i + 1 < argc) {
			const char **dst = s[1] == 'm' ? &a->model : s[1] == 'p' ? &a->prompt : &a->file;

			*dst = argv[++i];
		} else {
			fprintf(stderr, "error: unexpected argument '%s'\n", s);
			return -1;
		}
	}
	if (!a->model || (!a->prompt == !a->file)) {
		fprintf(stderr, "error: need -m MODEL and exactly one of -p TEXT, --file F\n");
		return -1;
	}
	return 0;
}

int cmd_tokenize(int argc, char **argv)
{
	struct tok_args a;
	infer_error err;
	gguf_file *f = NULL;
	infer_tokenizer *t = NULL;
	char *text = NULL;
	int32_t *ids = NULL;
	size_t len = 0, n = 0, i;
	double t0, t1, t2, t3;
	int rc = 1;

	infer_error_clear(&err);
	if (parse_args(argc, argv, &a)) {
		usage();
		return 2;
	}
	if (a.file) {
		text = read_file(a.file, &len);
		if (!text)
			return 1;
	}
	t0 = now_ms();
	f = gguf_open(a.model, &err);
	t1 = now_ms();
	if (f)
		t = infer_tokenizer_load(f, &err);
	t2 = now_ms();
	if (!t) {
		fprintf(stderr, "error: %s: %s\n", a.model, err.msg);
		rc = 2;
		goto out;
	}
	if (infer_tokenize_ex(t, a.file ? text : a.prompt, a.file ? len : strlen(a.prompt),
			      a.special, a.add_special, &ids, &n, &err)) {
		fprintf(stderr, "error: tokenize: %s\n", err.msg);
		goto out;
	}
	t3 = now_ms();
	for (i = 0; i < n; i++)
		printf(i ? " %d" : "%d", ids[i]);
	printf("\n");
	if (a.timings)
		fprintf(stderr,
			"{\"gguf_open_ms\": %.3f, \"tokenizer_load_ms\": %.3f, \"tokenize_ms\": %.3f, "
			"\"n_vocab\": %d, \"n_bytes\": %zu, \"n_tokens\": %zu}\n",
			t1 - t0, t2 - t1, t3 - t2, infer_tokenizer_n_vocab(t),
			a.file ? len : strlen(a.prompt), n);
	rc = 0;
out:
	free(ids);
	infer_tokenizer_free(t);
	gguf_close(f);
	free(text);
	return rc;
}
