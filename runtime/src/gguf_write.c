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

#include "infer/file.h"
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
	gguf_str *keys;      /* copies, for duplicate checks (keys may hold NUL) */
	int has_alignment;   /* general.alignment was added by the caller */
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

/* Keys given with a length may lack a terminator: copy one for messages. */
static const char *klabel(char buf[80], const char *key, size_t len)
{
	snprintf(buf, 80, "%.*s", (int)(len < 79 ? len : 79), key ? key : "");
	return buf;
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
	return w;
}

void gguf_writer_free(gguf_writer *w)
{
	if (!w)
		return;
	for (uint64_t i = 0; i < w->n_kv; i++)
		free((void *)w->keys[i].data);
	free(w->keys);
	for (uint64_t i = 0; i < w->n_t; i++)
		free(w->t[i].data);
	free(w->t);
	free(w->kv.p);
	free(w);
}

/* Checks the key and writes it with its value type; the caller appends the value. */
static int begin_kvn(gguf_writer *w, const char *key, size_t len, enum gguf_vtype t)
{
	char lb[80];

	if (w->err.code != INFER_OK)
		return w->err.code;
	if (!key || !len)
		return fail(w, GGUF_E_EMPTY_KEY, "writer: empty key%s", "");
	for (uint64_t i = 0; i < w->n_kv; i++)
		if (w->keys[i].len == len && !memcmp(w->keys[i].data, key, len))
			return fail(w, GGUF_E_DUP_KEY, "writer: duplicate key '%s'", klabel(lb, key, len));
	gguf_str *keys = realloc(w->keys, (w->n_kv + 1) * sizeof(*keys));
	if (!keys)
		return fail(w, INFER_E_NOMEM, "writer: out of memory adding '%s'", klabel(lb, key, len));
	w->keys = keys;
	char *copy = malloc(len);
	if (!copy)
		return fail(w, INFER_E_NOMEM, "writer: out of memory adding '%s'", klabel(lb, key, len));
	memcpy(copy, key, len);
	keys[w->n_kv] = (gguf_str){ copy, len };
	w->n_kv++;
	if (buf_str(&w->kv, key, len) || buf_u32(&w->kv, t))
		return fail(w, INFER_E_NOMEM, "writer: out of memory adding '%s'", klabel(lb, key, len));
	return 0;
}

static int begin_kv(gguf_writer *w, const char *key, enum gguf_vtype t)
{
	return begin_kvn(w, key, key ? strlen(key) : 0, t);
}

/* The layout follows w->alignment; an alignment KV that disagrees would lie
 * (ggml's writer has exactly that bug). */
static int check_alignment_kv(gguf_writer *w, const char *key, size_t len,
			      enum gguf_vtype t, const void *v)
{
	static const char name[] = "general.alignment";

	if (!key || len != sizeof(name) - 1 || memcmp(key, name, len))
		return 0;
	if (t != GGUF_VT_UINT32 || memcmp(v, &w->alignment, 4))
		return fail(w, INFER_E_ARG,
			    "writer: '%s' must be the u32 passed to gguf_writer_new", name);
	w->has_alignment = 1;
	return 0;
}

static int add_scalarn(gguf_writer *w, const char *key, size_t len, enum gguf_vtype t,
		       const void *v)
{
	size_t n = gguf_vtype_size(t);
	char lb[80];
	int rc;

	if (!n)
		return fail(w, INFER_E_ARG, "writer: '%s' is not a fixed-size scalar type",
			    klabel(lb, key, len));
	rc = check_alignment_kv(w, key, len, t, v);
	rc = rc ? rc : begin_kvn(w, key, len, t);
	if (rc)
		return rc;
	if (buf_put(&w->kv, v, n))
		return fail(w, INFER_E_NOMEM, "writer: out of memory adding '%s'", klabel(lb, key, len));
	return 0;
}

int gguf_writer_add_scalar(gguf_writer *w, const char *key, enum gguf_vtype t, const void *v)
{
	return add_scalarn(w, key, key ? strlen(key) : 0, t, v);
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

/* Type, count and elements of a parsed array. */
static int put_array(struct buf *b, const gguf_kv *kv)
{
	enum gguf_vtype et = kv->v.arr.type;
	size_t es = gguf_vtype_size(et);

	if (et != GGUF_VT_STRING && !es)
		return INFER_E_ARG;
	if (buf_u32(b, et) || buf_u64(b, kv->v.arr.n))
		return INFER_E_NOMEM;
	if (et != GGUF_VT_STRING)
		return buf_put(b, kv->v.arr.data, kv->v.arr.n * es) ? INFER_E_NOMEM : 0;
	for (uint64_t i = 0; i < kv->v.arr.n; i++)
		if (buf_str(b, kv->v.arr.strs[i].data, kv->v.arr.strs[i].len))
			return INFER_E_NOMEM;
	return 0;
}

int gguf_writer_add_kv(gguf_writer *w, const gguf_kv *kv)
{
	char lb[80];
	int rc;

	if (kv->type != GGUF_VT_STRING && kv->type != GGUF_VT_ARRAY)
		return add_scalarn(w, kv->key.data, kv->key.len, kv->type, &kv->v);
	rc = begin_kvn(w, kv->key.data, kv->key.len, kv->type);
	if (rc)
		return rc;
	if (kv->type == GGUF_VT_STRING)
		rc = buf_str(&w->kv, kv->v.str.data, kv->v.str.len) ? INFER_E_NOMEM : 0;
	else
		rc = put_array(&w->kv, kv);
	if (rc)
		return fail(w, rc, rc == INFER_E_NOMEM ? "writer: out of memory adding '%s'" :
			    "writer: '%s': bad array element type",
			    klabel(lb, kv->key.data, kv->key.len));
	return 0;
}

static int check_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
			const int64_t *ne, uint64_t nbytes)
{
	int64_t n = 1, ne4[GGUF_MAX_DIMS] = { 1, 1, 1, 1 };

	if (w->err.code != INFER_OK)
		return w->err.code;
	if (!name || strlen(name) >= GGUF_NAME_MAX)
		return fail(w, GGUF_E_NAME_LEN, "writer: tensor name '%s' is 64 bytes or longer",
			    name ? name : "(null)");
	for (uint64_t i = 0; i < w->n_t; i++)
		if (!strcmp(w->t[i].name, name))
			return fail(w, GGUF_E_DUP_TENSOR, "writer: duplicate tensor '%s'", name);
	/* n_dims 0 is a single element (ggml reads it so) */
	if (n_dims > GGUF_MAX_DIMS)
		return fail(w, GGUF_E_N_DIMS, "writer: tensor '%s': n_dims must be 0..4", name);
	for (uint32_t d = 0; d < n_dims; d++) {
		if (ne[d] < 0 || (ne[d] && n > INT64_MAX / ne[d]))
			return fail(w, GGUF_E_DIM, "writer: tensor '%s': bad dimension", name);
		n *= ne[d];
		ne4[d] = ne[d];
	}
	const infer_type_traits *tt = infer_type_traits_get(type);
	if (!tt)
		return fail(w, GGUF_E_TENSOR_TYPE, "writer: tensor '%s': unknown type id", name);
	if (ne4[0] % tt->block_size)
		return fail(w, GGUF_E_BLOCK, "writer: tensor '%s': ne[0] not a block multiple", name);
	if ((uint64_t)n / tt->block_size > UINT64_MAX / tt->type_size ||
	    nbytes != (uint64_t)n / tt->block_size * tt->type_size)
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
	for (uint32_t d = 0; d < n_dims; d++)
		t->ne[d] = ne[d];
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
	/* A non-default alignment must be recorded in the file, or readers
	 * would assume 32 (ggml's writer can forget it; we do not). */
	int add_align = w->alignment != GGUF_DEFAULT_ALIGNMENT && !w->has_alignment;

	rc = rc ? rc : buf_u64(m, w->n_kv + add_align);
	rc = rc ? rc : buf_put(m, w->kv.p, w->kv.len);
	if (add_align) {
		rc = rc ? rc : buf_str(m, "general.alignment", strlen("general.alignment"));
		rc = rc ? rc : buf_u32(m, GGUF_VT_UINT32);
		rc = rc ? rc : buf_u32(m, w->alignment);
	}
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

/* The body of the file; write_body's codes are plain I/O (errno) or
 * INFER_E_NOMEM. */
static int write_file_body(FILE *fp, void *user, infer_error *err)
{
	int rc = write_body(user, fp);

	if (rc == INFER_E_NOMEM)
		return infer_error_set(err, rc, -1, "out of memory");
	return rc;
}

int gguf_writer_write(gguf_writer *w, const char *path, infer_error *err)
{
	int rc;

	if (w->err.code != INFER_OK)
		return infer_error_set(err, w->err.code, -1, "%s", w->err.msg);
	rc = infer_write_atomic(path, INFER_FILE_UMASK, write_file_body, w, err);
	if (!rc)
		infer_error_clear(err);
	return rc;
}
