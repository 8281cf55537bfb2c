/* GGUF v3 writer: KVs are serialised as they are added, tensors are copied,
 * and gguf_writer_write lays the file out (header, KVs, tensor infos,
 * padding, data) into a temporary file that is renamed into place, so a
 * failed write never leaves a partial file behind.
 *
 * Errors are sticky: the first failed add is remembered and gguf_writer_write
 * reports it, so a caller that ignores one return code still cannot produce
 * a file that silently lacks a KV or tensor. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "infer/gguf.h"
#include "infer/quant.h"

#define GGUF_DEFAULT_ALIGNMENT 32u

struct buf {
	uint8_t *p;
	size_t len, cap;
};

struct wtensor {
	char name[GGUF_NAME_MAX];
	uint32_t n_dims;
	int64_t ne[GGUF_MAX_DIMS];
	uint32_t type;
	uint64_t nbytes;
	void *data;
};

struct gguf_writer {
	uint32_t alignment;
	struct buf kv;       /* serialised KV pairs, in insertion order */
	uint64_t n_kv;
	char **keys;         /* for duplicate checks */
	struct wtensor *t;
	uint64_t n_t, cap_t;
	infer_error err;     /* first failure (sticky) */
};

static int fail(gguf_writer *w, int code, const char *fmt, const char *what)
{
	if (w->err.code == INFER_OK)
		infer_error_set(&w->err, code, -1, fmt, what);
	return code;
}

static int buf_put(struct buf *b, const void *src, size_t n)
{
	if (n == 0) /* src may be NULL then (an empty KV section) */
		return 0;
	if (n > b->cap - b->len) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap - b->len < n)
			cap *= 2;
		uint8_t *p = realloc(b->p, cap);
		if (!p)
			return INFER_E_NOMEM;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, src, n);
	b->len += n;
	return 0;
}

static int buf_u32(struct buf *b, uint32_t v) { return buf_put(b, &v, 4); }
static int buf_u64(struct buf *b, uint64_t v) { return buf_put(b, &v, 8); }

static int buf_str(struct buf *b, const char *s, uint64_t len)
{
	int rc = buf_u64(b, len);

	return rc ? rc : buf_put(b, s, len);
}

gguf_writer *gguf_writer_new(uint32_t alignment)
{
	gguf_writer *w;

	if (alignment == 0)
		alignment = GGUF_DEFAULT_ALIGNMENT;
	if (alignment & (alignment - 1))
		return NULL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	infer_error_clear(&w->err);
	w->alignment = alignment;
	/* A non-default alignment must be recorded in the file, or readers
	 * would assume 32 (ggml's writer forgets this; we do not). */
	if (alignment != GGUF_DEFAULT_ALIGNMENT &&
	    gguf_writer_add_u32(w, "general.alignment", alignment)) {
		gguf_writer_free(w);
		return NULL;
	}
	return w;
}

void gguf_writer_free(gguf_writer *w)
{
	if (!w)
		return;
	for (uint64_t i = 0; i < w->n_kv; i++)
		free(w->keys[i]);
	free(w->keys);
	for (uint64_t i = 0; i < w->n_t; i++)
		free(w->t[i].data);
	free(w->t);
	free(w->kv.p);
	free(w);
}

/* Checks the key and writes it with its value type; the caller appends the value. */
static int begin_kv(gguf_writer *w, const char *key, enum gguf_vtype t)
{
	if (w->err.code != INFER_OK)
		return w->err.code;
	if (!key || !*key)
		return fail(w, GGUF_E_EMPTY_KEY, "writer: empty key%s", "");
	for (uint64_t i = 0; i < w->n_kv; i++)
		if (!strcmp(w->keys[i], key))
			return fail(w, GGUF_E_DUP_KEY, "writer: duplicate key '%s'", key);
	char **keys = realloc(w->keys, (w->n_kv + 1) * sizeof(*keys));
	if (!keys)
		return fail(w, INFER_E_NOMEM, "writer: out of memory adding '%s'", key);
	w->keys = keys;
	if (!(keys[w->n_kv] = strdup(key)))
		return fail(w, INFER_E_NOMEM, "writer: out of memory adding '%s'", key);
	w->n_kv++;
	if (buf_str(&w->kv, key, strlen(key)) || buf_u32(&w->kv, t))
		return fail(w, INFER_E_NOMEM, "writer: out of memory adding '%s'", key);
	return 0;
}

int gguf_writer_add_scalar(gguf_writer *w, const char *key, enum gguf_vtype t, const void *v)
{
	size_t n = gguf_vtype_size(t);
	int rc;

	if (!n)
		return fail(w, INFER_E_ARG, "writer: '%s' is not a fixed-size scalar type", key);
	/* The layout follows w->alignment; a different alignment KV would lie. */
	if (key && !strcmp(key, "general.alignment") &&
	    (t != GGUF_VT_UINT32 || *(const uint32_t *)v != w->alignment))
		return fail(w, INFER_E_ARG,
			    "writer: '%s' must be the u32 passed to gguf_writer_new", key);
	rc = begin_kv(w, key, t);
	if (rc)
		return rc;
	if (buf_put(&w->kv, v, n))
		return fail(w, INFER_E_NOMEM, "writer: out of memory adding '%s'", key);
	return 0;
}

int gguf_writer_add_u32(gguf_writer *w, const char *key, uint32_t v)
{
	return gguf_writer_add_scalar(w, key, GGUF_VT_UINT32, &v);
}

int gguf_writer_add_i32(gguf_writer *w, const char *key, int32_t v)
{
	return gguf_writer_add_scalar(w, key, GGUF_VT_INT32, &v);
}

int gguf_writer_add_u64(gguf_writer *w, const char *key, uint64_t v)
{
	return gguf_writer_add_scalar(w, key, GGUF_VT_UINT64, &v);
}

int gguf_writer_add_f32(gguf_writer *w, const char *key, float v)
{
	return gguf_writer_add_scalar(w, key, GGUF_VT_FLOAT32, &v);
}

int gguf_writer_add_bool(gguf_writer *w, const char *key, int v)
{
	uint8_t b = v != 0;

	return gguf_writer_add_scalar(w, key, GGUF_VT_BOOL, &b);
}

int gguf_writer_add_str(gguf_writer *w, const char *key, const char *v)
{
	int rc = begin_kv(w, key, GGUF_VT_STRING);

	if (rc)
		return rc;
	if (buf_str(&w->kv, v, strlen(v)))
		return fail(w, INFER_E_NOMEM, "writer: out of memory adding '%s'", key);
	return 0;
}

int gguf_writer_add_arr(gguf_writer *w, const char *key, enum gguf_vtype elem,
			const void *data, uint64_t n)
{
	size_t es = gguf_vtype_size(elem);
	int rc;

	if (!es)
		return fail(w, INFER_E_ARG, "writer: '%s': element type must be fixed-size", key);
	if (n > SIZE_MAX / es)
		return fail(w, INFER_E_ARG, "writer: '%s': array too large", key);
	rc = begin_kv(w, key, GGUF_VT_ARRAY);
	if (rc)
		return rc;
	if (buf_u32(&w->kv, elem) || buf_u64(&w->kv, n) || buf_put(&w->kv, data, n * es))
		return fail(w, INFER_E_NOMEM, "writer: out of memory adding '%s'", key);
	return 0;
}

int gguf_writer_add_str_arr(gguf_writer *w, const char *key, const char *const *v, uint64_t n)
{
	int rc = begin_kv(w, key, GGUF_VT_ARRAY);

	if (rc)
		return rc;
	if (buf_u32(&w->kv, GGUF_VT_STRING) || buf_u64(&w->kv, n))
		return fail(w, INFER_E_NOMEM, "writer: out of memory adding '%s'", key);
	for (uint64_t i = 0; i < n; i++)
		if (buf_str(&w->kv, v[i], strlen(v[i])))
			return fail(w, INFER_E_NOMEM, "writer: out of memory adding '%s'", key);
	return 0;
}

static int check_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
			const int64_t *ne, uint64_t nbytes)
{
	int64_t n = 1;

	if (w->err.code != INFER_OK)
		return w->err.code;
	if (!name || strlen(name) >= GGUF_NAME_MAX)
		return fail(w, GGUF_E_NAME_LEN, "writer: tensor name '%s' is 64 bytes or longer",
			    name ? name : "(null)");
	for (uint64_t i = 0; i < w->n_t; i++)
		if (!strcmp(w->t[i].name, name))
			return fail(w, GGUF_E_DUP_TENSOR, "writer: duplicate tensor '%s'", name);
	if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
		return fail(w, GGUF_E_N_DIMS, "writer: tensor '%s': n_dims must be 1..4", name);
	for (uint32_t d = 0; d < n_dims; d++) {
		if (ne[d] < 0 || (ne[d] && n > INT64_MAX / ne[d]))
			return fail(w, GGUF_E_DIM, "writer: tensor '%s': bad dimension", name);
		n *= ne[d];
	}
	if (!infer_type_traits_get(type))
		return fail(w, GGUF_E_TENSOR_TYPE, "writer: tensor '%s': unknown type id", name);
	if (infer_row_size(type, ne[0]) == 0 && ne[0] != 0)
		return fail(w, GGUF_E_BLOCK, "writer: tensor '%s': ne[0] not a block multiple", name);
	uint64_t want = n ? infer_row_size(type, ne[0]) * (uint64_t)(n / ne[0]) : 0;
	if (nbytes != want)
		return fail(w, INFER_E_ARG, "writer: tensor '%s': nbytes does not match type and shape",
			    name);
	return 0;
}

int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type,
			   uint32_t n_dims, const int64_t *ne, const void *data, uint64_t nbytes)
{
	int rc = check_tensor(w, name, type, n_dims, ne, nbytes);

	if (rc)
		return rc;
	if (w->n_t == w->cap_t) {
		uint64_t cap = w->cap_t ? 2 * w->cap_t : 16;
		struct wtensor *t = realloc(w->t, cap * sizeof(*t));
		if (!t)
			return fail(w, INFER_E_NOMEM, "writer: out of memory adding '%s'", name);
		w->t = t;
		w->cap_t = cap;
	}
	struct wtensor *t = &w->t[w->n_t];
	memset(t, 0, sizeof(*t));
	t->data = malloc(nbytes ? nbytes : 1);
	if (!t->data)
		return fail(w, INFER_E_NOMEM, "writer: out of memory adding '%s'", name);
	if (nbytes)
		memcpy(t->data, data, nbytes);
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->n_dims = n_dims;
	t->type = type;
	t->nbytes = nbytes;
	for (int d = 0; d < GGUF_MAX_DIMS; d++)
		t->ne[d] = (uint32_t)d < n_dims ? ne[d] : 1;
	w->n_t++;
	return 0;
}

static uint64_t pad_to(uint64_t x, uint64_t a)
{
	return (a - x % a) % a;
}

/* Header, KVs and tensor infos, with each tensor's offset in the data section. */
static int build_meta(const gguf_writer *w, struct buf *m)
{
	uint64_t off = 0;
	int rc = buf_put(m, "GGUF", 4);

	rc = rc ? rc : buf_u32(m, 3);
	rc = rc ? rc : buf_u64(m, w->n_t);
	rc = rc ? rc : buf_u64(m, w->n_kv);
	rc = rc ? rc : buf_put(m, w->kv.p, w->kv.len);
	for (uint64_t i = 0; i < w->n_t && !rc; i++) {
		const struct wtensor *t = &w->t[i];

		rc = buf_str(m, t->name, strlen(t->name));
		rc = rc ? rc : buf_u32(m, t->n_dims);
		for (uint32_t d = 0; d < t->n_dims && !rc; d++)
			rc = buf_u64(m, (uint64_t)t->ne[d]);
		rc = rc ? rc : buf_u32(m, t->type);
		rc = rc ? rc : buf_u64(m, off);
		off += t->nbytes + pad_to(t->nbytes, w->alignment);
	}
	return rc;
}

static int write_all(FILE *fp, const void *p, uint64_t n)
{
	return n && fwrite(p, 1, n, fp) != n ? INFER_E_IO : 0;
}

static int write_body(const gguf_writer *w, FILE *fp)
{
	static const uint8_t zeros[256]; /* alignment padding, at most alignment-1 bytes */
	struct buf m = { 0 };
	int rc = build_meta(w, &m);

	if (rc) {
		free(m.p);
		return rc;
	}
	rc = write_all(fp, m.p, m.len);
	uint64_t pad = pad_to(m.len, w->alignment);
	free(m.p);
	for (; !rc && pad; pad -= pad > sizeof(zeros) ? sizeof(zeros) : pad)
		rc = write_all(fp, zeros, pad > sizeof(zeros) ? sizeof(zeros) : pad);
	for (uint64_t i = 0; i < w->n_t && !rc; i++) {
		rc = write_all(fp, w->t[i].data, w->t[i].nbytes);
		for (pad = pad_to(w->t[i].nbytes, w->alignment); !rc && pad;
		     pad -= pad > sizeof(zeros) ? sizeof(zeros) : pad)
			rc = write_all(fp, zeros, pad > sizeof(zeros) ? sizeof(zeros) : pad);
	}
	return rc;
}

int gguf_writer_write(gguf_writer *w, const char *path, infer_error *err)
{
	char *tmp;
	FILE *fp;
	int fd, rc;

	if (w->err.code != INFER_OK)
		return infer_error_set(err, w->err.code, -1, "%s", w->err.msg);
	if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0)
		return infer_error_set(err, INFER_E_NOMEM, -1, "out of memory");
	fd = mkstemp(tmp);
	if (fd < 0) {
		rc = infer_error_set(err, INFER_E_IO, -1, "%s: cannot create temporary file: %s",
				     path, strerror(errno));
		free(tmp);
		return rc;
	}
	/* mkstemp creates 0600; give the file the usual umask-based mode */
	mode_t mask = umask(0);
	umask(mask);
	fp = fchmod(fd, 0666 & ~mask) ? NULL : fdopen(fd, "wb");
	if (!fp) {
		close(fd);
		rc = INFER_E_IO;
	} else {
		rc = write_body(w, fp);
		if (fflush(fp) || fsync(fileno(fp)))
			rc = rc ? rc : INFER_E_IO;
		if (fclose(fp))
			rc = rc ? rc : INFER_E_IO;
	}
	if (!rc && rename(tmp, path))
		rc = INFER_E_IO;
	if (rc) {
		int e = errno;
		unlink(tmp);
		infer_error_set(err, rc, -1, "%s: write failed: %s", path,
				rc == INFER_E_NOMEM ? "out of memory" : strerror(e));
	} else {
		infer_error_clear(err);
	}
	free(tmp);
	return rc;
}
