/* Reader for llama.cpp's tokenizer test vectors (.inp/.out pairs). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/tokenizer.h"

#define TOKVEC_SEP "\n__ggml_vocab_test__\n"

static char *slurp(const char *path, size_t *len, infer_error *err)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f) {
		infer_error_set(err, INFER_E_IO, -1, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
		infer_error_set(err, INFER_E_IO, -1, "%s: cannot size the file", path);
		goto out;
	}
	buf = malloc((size_t)n + 1);
	if (!buf) {
		infer_error_set(err, INFER_E_NOMEM, -1, "%s: out of memory", path);
		goto out;
	}
	if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
		infer_error_set(err, INFER_E_IO, -1, "%s: short read", path);
		free(buf);
		buf = NULL;
		goto out;
	}
	buf[n] = '\0';
	*len = (size_t)n;
out:
	fclose(f);
	return buf;
}

static int grow(infer_tokvec *v, size_t *cap)
{
	size_t c = *cap ? 2 * *cap : 64;
	char **text = realloc(v->text, c * sizeof(*text));
	size_t *tl;

	if (!text)
		return INFER_E_NOMEM;
	v->text = text;
	tl = realloc(v->text_len, c * sizeof(*tl));
	if (!tl)
		return INFER_E_NOMEM;
	v->text_len = tl;
	*cap = c;
	return 0;
}

static int read_inp(const char *path, infer_tokvec *v, infer_error *err)
{
	size_t len, pos = 0, cap = 0, sl = strlen(TOKVEC_SEP);
	char *buf = slurp(path, &len, err);
	int rc = 0;

	if (!buf)
		return err ? err->code : INFER_E_IO;
	while (pos < len) {
		char *m = memmem(buf + pos, len - pos, TOKVEC_SEP, sl);
		size_t n;

		if (!m) {
			rc = infer_error_set(err, INFER_E_FORMAT, (int64_t)pos,
					     "%s: byte %zu: text after the last separator "
					     "(every string must end with \\n__ggml_vocab_test__\\n)",
					     path, pos);
			break;
		}
		n = (size_t)(m - (buf + pos));
		if (v->n == cap && grow(v, &cap)) {
			rc = infer_error_set(err, INFER_E_NOMEM, -1, "out of memory");
			break;
		}
		v->text[v->n] = malloc(n + 1);
		if (!v->text[v->n]) {
			rc = infer_error_set(err, INFER_E_NOMEM, -1, "out of memory");
			break;
		}
		memcpy(v->text[v->n], buf + pos, n);
		v->text[v->n][n] = '\0';
		v->text_len[v->n++] = n;
		pos += n + sl;
	}
	free(buf);
	return rc;
}

/* One line " 1 2 3" -> ids; col is 1-based for messages. */
static int parse_line(const char *path, size_t line, const char *s, size_t n, int32_t **ids,
		      size_t *n_ids, infer_error *err)
{
	size_t i = 0, cnt = 0;

	*ids = malloc((n / 2 + 1) * sizeof(**ids));
	if (!*ids)
		return infer_error_set(err, INFER_E_NOMEM, -1, "out of memory");
	while (i < n) {
		long long val = 0;
		size_t start;

		if (s[i] != ' ')
			return infer_error_set(err, INFER_E_FORMAT, -1,
					       "%s:%zu:%zu: expected ' ' before a token id", path,
					       line, i + 1);
		start = ++i;
		while (i < n && s[i] >= '0' && s[i] <= '9' && val <= INT32_MAX)
			val = val * 10 + (s[i++] - '0');
		if (i == start || val > INT32_MAX || (i < n && s[i] != ' '))
			return infer_error_set(err, INFER_E_FORMAT, -1,
					       "%s:%zu:%zu: expected a token id", path, line,
					       start + 1);
		(*ids)[cnt++] = (int32_t)val;
	}
	*n_ids = cnt;
	return 0;
}

static int read_out(const char *path, infer_tokvec *v, infer_error *err)
{
	size_t len, pos = 0, line = 0;
	char *buf = slurp(path, &len, err);
	int rc = 0;

	if (!buf)
		return err ? err->code : INFER_E_IO;
	v->ids = calloc(v->n ? v->n : 1, sizeof(*v->ids));
	v->n_ids = calloc(v->n ? v->n : 1, sizeof(*v->n_ids));
	v->out_line = calloc(v->n ? v->n : 1, sizeof(*v->out_line));
	if (!v->ids || !v->n_ids || !v->out_line) {
		free(buf);
		return infer_error_set(err, INFER_E_NOMEM, -1, "out of memory");
	}
	while (pos < len && !rc) {
		char *nl = memchr(buf + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (buf + pos)) : len - pos;

		if (line == v->n) {
			rc = infer_error_set(err, INFER_E_FORMAT, -1,
					     "%s:%zu: more lines than the %zu strings of the .inp file",
					     path, line + 1, v->n);
			break;
		}
		v->out_line[line] = line + 1;
		rc = parse_line(path, line + 1, buf + pos, n, &v->ids[line], &v->n_ids[line], err);
		line++;
		pos += n + 1;
	}
	if (!rc && line != v->n)
		rc = infer_error_set(err, INFER_E_FORMAT, -1,
				     "%s: %zu lines for the %zu strings of the .inp file", path,
				     line, v->n);
	free(buf);
	return rc;
}

int infer_tokvec_load(const char *inp_path, const char *out_path, infer_tokvec *v,
		      infer_error *err)
{
	int rc;

	memset(v, 0, sizeof(*v));
	rc = read_inp(inp_path, v, err);
	if (!rc)
		rc = read_out(out_path, v, err);
	if (rc)
		infer_tokvec_free(v);
	return rc;
}

void infer_tokvec_free(infer_tokvec *v)
{
	size_t i;

	for (i = 0; i < v->n; i++) {
		free(v->text ? v->text[i] : NULL);
		free(v->ids ? v->ids[i] : NULL);
	}
	free(v->text);
	free(v->text_len);
	free(v->ids);
	free(v->n_ids);
	free(v->out_line);
	memset(v, 0, sizeof(*v));
}
