/* GGUF v2/v3 reader: maps the file and validates every field before use.
 *
 * Layout (GGUF spec): magic "GGUF", u32 version, i64 n_tensors, i64 n_kv,
 * n_kv key/value pairs, n_tensors tensor infos, padding to the alignment,
 * then the data section. All integers are little-endian.
 *
 * Rules: every read goes through struct cursor, which checks the bytes that
 * remain first; every count is bounded by the bytes that remain (each element
 * needs at least one minimal record) before anything is allocated; every
 * error names the field and the byte offset where it was found. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "infer/gguf.h"
#include "infer/quant.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF reader assumes a little-endian host (GGUF files are little-endian)"
#endif

#define GGUF_MAGIC "GGUF"
#define GGUF_DEFAULT_ALIGNMENT 32u
/* ggml refuses longer strings; matching it keeps our verdicts identical. */
#define GGUF_STR_MAX (1ull << 30)
/* Smallest possible records, used to bound counts by the bytes that remain:
 * KV = key length (8) + 1 key byte + value type (4) + 1 value byte;
 * tensor info = name length (8) + n_dims (4) + type (4) + offset (8). */
#define GGUF_MIN_KV_BYTES 14u
#define GGUF_MIN_TINFO_BYTES 24u

/* A name (key or tensor name) with its index, sorted for duplicate checks
 * and binary-search lookups. */
struct name_ref {
	const char *p;
	uint64_t len;
	int64_t idx;
	uint64_t offset;
};

struct gguf_file {
	const uint8_t *base;
	uint64_t size;
	void *map;          /* mmap'ed region, NULL for memory buffers / empty files */
	size_t map_len;
	char *path;
	uint32_t version;
	uint32_t alignment;
	uint64_t data_offset;
	int64_t n_kv;
	int64_t n_tensors;
	gguf_kv *kv;
	gguf_tensor *tensors;
	struct name_ref *kv_sorted;
	struct name_ref *t_sorted;
};

struct cursor {
	const uint8_t *p;
	uint64_t size;
	uint64_t pos;
	infer_error *err;
};

static const char *const vtype_names[GGUF_VT_COUNT] = {
	"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64",
};

static const uint8_t vtype_sizes[GGUF_VT_COUNT] = {
	1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8,
};

const char *gguf_vtype_name(enum gguf_vtype t)
{
	if ((unsigned)t >= GGUF_VT_COUNT)
		return "?";
	return vtype_names[t];
}

size_t gguf_vtype_size(enum gguf_vtype t)
{
	if ((unsigned)t >= GGUF_VT_COUNT)
		return 0;
	return vtype_sizes[t];
}

const char *gguf_status_name(int code)
{
	switch (code) {
	case INFER_OK: return "ok";
	case GGUF_E_MAGIC: return "bad magic";
	case GGUF_E_VERSION: return "unsupported version";
	case GGUF_E_TRUNCATED: return "truncated";
	case GGUF_E_COUNT: return "count too large";
	case GGUF_E_STRING_LEN: return "bad string length";
	case GGUF_E_VALUE_TYPE: return "bad value type";
	case GGUF_E_NESTED_ARRAY: return "nested array";
	case GGUF_E_DUP_KEY: return "duplicate key";
	case GGUF_E_EMPTY_KEY: return "empty key";
	case GGUF_E_ALIGNMENT: return "bad alignment";
	case GGUF_E_TENSOR_TYPE: return "bad tensor type";
	case GGUF_E_N_DIMS: return "bad n_dims";
	case GGUF_E_DIM: return "bad dimension";
	case GGUF_E_OVERFLOW: return "size overflow";
	case GGUF_E_BLOCK: return "row not a block multiple";
	case GGUF_E_DUP_TENSOR: return "duplicate tensor name";
	case GGUF_E_NAME_LEN: return "tensor name too long";
	case GGUF_E_OFFSET: return "bad tensor offset";
	case GGUF_E_DATA_BOUNDS: return "data beyond end of file";
	case GGUF_E_KEY: return "key not found";
	case GGUF_E_TYPE: return "wrong value type";
	default: return "error";
	}
}

/* ---- bounds-checked cursor ------------------------------------------------ */

static uint64_t cur_left(const struct cursor *c)
{
	return c->size - c->pos;
}

/* Every read calls this first: a field that does not fit is a truncation. */
static int cur_need(struct cursor *c, uint64_t n, const char *field)
{
	if (n <= cur_left(c))
		return 0;
	return infer_error_set(c->err, GGUF_E_TRUNCATED, (int64_t)c->pos,
			       "truncated: %s needs %llu bytes, only %llu left at byte %llu",
			       field, (unsigned long long)n, (unsigned long long)cur_left(c),
			       (unsigned long long)c->pos);
}

static int cur_read(struct cursor *c, void *dst, uint64_t n, const char *field)
{
	int rc = cur_need(c, n, field);

	if (rc)
		return rc;
	memcpy(dst, c->p + c->pos, n);
	c->pos += n;
	return 0;
}

static int cur_u32(struct cursor *c, uint32_t *v, const char *field)
{
	return cur_read(c, v, sizeof(*v), field);
}

static int cur_u64(struct cursor *c, uint64_t *v, const char *field)
{
	return cur_read(c, v, sizeof(*v), field);
}

static int cur_i64(struct cursor *c, int64_t *v, const char *field)
{
	return cur_read(c, v, sizeof(*v), field);
}

/* A GGUF string: u64 length then that many bytes (not terminated). */
static int cur_str(struct cursor *c, gguf_str *s, const char *field)
{
	uint64_t at = c->pos;
	uint64_t len;
	int rc = cur_u64(c, &len, field);

	if (rc)
		return rc;
	if (len > GGUF_STR_MAX || len > cur_left(c))
		return infer_error_set(c->err, GGUF_E_STRING_LEN, (int64_t)at,
				       "%s: length %llu exceeds %s (%llu bytes left) at byte %llu",
				       field, (unsigned long long)len,
				       len > GGUF_STR_MAX ? "the 1 GiB limit" : "the file",
				       (unsigned long long)cur_left(c), (unsigned long long)at);
	s->data = (const char *)(c->p + c->pos);
	s->len = len;
	c->pos += len;
	return 0;
}

/* ---- key/value section ---------------------------------------------------- */

static int read_array(struct cursor *c, gguf_kv *kv, const char *field)
{
	uint64_t at = c->pos;
	uint32_t et;
	uint64_t n;
	int rc = cur_u32(c, &et, field);

	if (rc)
		return rc;
	if (et == GGUF_VT_ARRAY)
		return infer_error_set(c->err, GGUF_E_NESTED_ARRAY, (int64_t)at,
				       "%s: arrays of arrays are not supported at byte %llu",
				       field, (unsigned long long)at);
	if (et >= GGUF_VT_COUNT)
		return infer_error_set(c->err, GGUF_E_VALUE_TYPE, (int64_t)at,
				       "%s: array element type %u is not a GGUF value type at byte %llu",
				       field, et, (unsigned long long)at);
	at = c->pos;
	rc = cur_u64(c, &n, field);
	if (rc)
		return rc;
	kv->v.arr.type = (enum gguf_vtype)et;
	kv->v.arr.n = n;
	/* Bound n by the bytes left before touching or allocating anything:
	 * a fixed-size element takes its size, a string at least its 8-byte length. */
	uint64_t min = et == GGUF_VT_STRING ? 8 : vtype_sizes[et];
	if (n > cur_left(c) / min)
		return infer_error_set(c->err, GGUF_E_COUNT, (int64_t)at,
				       "%s: array of %llu %s elements does not fit in the %llu bytes left at byte %llu",
				       field, (unsigned long long)n, vtype_names[et],
				       (unsigned long long)cur_left(c), (unsigned long long)at);
	if (et != GGUF_VT_STRING) {
		kv->v.arr.data = c->p + c->pos;
		c->pos += n * min;
		return 0;
	}
	gguf_str *strs = calloc(n ? n : 1, sizeof(*strs));
	if (!strs)
		return infer_error_set(c->err, INFER_E_NOMEM, (int64_t)at,
				       "%s: out of memory for %llu strings at byte %llu", field,
				       (unsigned long long)n, (unsigned long long)at);
	kv->v.arr.strs = strs; /* owned by the kv, freed by gguf_close */
	for (uint64_t i = 0; i < n; i++) {
		rc = cur_str(c, &strs[i], field);
		if (rc)
			return rc;
	}
	return 0;
}

static int read_value(struct cursor *c, gguf_kv *kv, const char *field)
{
	switch (kv->type) {
	case GGUF_VT_STRING:
		return cur_str(c, &kv->v.str, field);
	case GGUF_VT_ARRAY:
		return read_array(c, kv, field);
	default:
		return cur_read(c, &kv->v, vtype_sizes[kv->type], field);
	}
}

/* A short printable form of a key for messages (keys may hold any bytes). */
static void key_label(char *buf, size_t n, const gguf_str *k)
{
	size_t len = k->len < n - 1 ? (size_t)k->len : n - 1;

	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)k->data[i];
		buf[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	buf[len] = '\0';
}

static int read_kv(struct cursor *c, int64_t i, gguf_kv *kv)
{
	char field[160];
	uint32_t type;
	uint64_t at;
	int rc;

	kv->offset = c->pos;
	snprintf(field, sizeof(field), "KV %lld key", (long long)i);
	rc = cur_str(c, &kv->key, field);
	if (rc)
		return rc;
	if (kv->key.len == 0)
		return infer_error_set(c->err, GGUF_E_EMPTY_KEY, (int64_t)kv->offset,
				       "KV %lld: empty key at byte %llu", (long long)i,
				       (unsigned long long)kv->offset);
	char label[96];
	key_label(label, sizeof(label), &kv->key);
	snprintf(field, sizeof(field), "KV %lld '%s' value type", (long long)i, label);
	at = c->pos;
	rc = cur_u32(c, &type, field);
	if (rc)
		return rc;
	if (type >= GGUF_VT_COUNT)
		return infer_error_set(c->err, GGUF_E_VALUE_TYPE, (int64_t)at,
				       "KV %lld '%s': value type %u is not a GGUF value type at byte %llu",
				       (long long)i, label, type, (unsigned long long)at);
	kv->type = (enum gguf_vtype)type;
	snprintf(field, sizeof(field), "KV %lld '%s' value", (long long)i, label);
	return read_value(c, kv, field);
}

static void tensor_label(char *buf, size_t n, const gguf_tensor *t)
{
	gguf_str s = { t->name, strlen(t->name) };

	key_label(buf, n, &s);
}

static int cmp_name_ref(const void *a, const void *b)
{
	const struct name_ref *x = a, *y = b;
	uint64_t n = x->len < y->len ? x->len : y->len;
	int r = n ? memcmp(x->p, y->p, n) : 0;

	if (r)
		return r;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	/* equal names: file order, so the later one is reported as the duplicate */
	return (x->idx > y->idx) - (x->idx < y->idx);
}

/* Sorts refs by name; returns the index of the first later duplicate or -1. */
static int64_t sort_and_find_dup(struct name_ref *refs, int64_t n)
{
	if (n < 2)
		return -1;
	qsort(refs, (size_t)n, sizeof(*refs), cmp_name_ref);
	for (int64_t i = 1; i < n; i++)
		if (refs[i].len == refs[i - 1].len &&
		    (refs[i].len == 0 || !memcmp(refs[i].p, refs[i - 1].p, refs[i].len)))
			return i;
	return -1;
}

static int check_alignment(gguf_file *f, infer_error *err)
{
	const gguf_kv *kv = gguf_find_kv(f, "general.alignment");

	f->alignment = GGUF_DEFAULT_ALIGNMENT;
	if (!kv)
		return 0;
	if (kv->type != GGUF_VT_UINT32)
		return infer_error_set(err, GGUF_E_ALIGNMENT, (int64_t)kv->offset,
				       "general.alignment: must be u32 but is %s at byte %llu",
				       vtype_names[kv->type], (unsigned long long)kv->offset);
	uint32_t a = kv->v.u32;
	if (a == 0 || (a & (a - 1)))
		return infer_error_set(err, GGUF_E_ALIGNMENT, (int64_t)kv->offset,
				       "general.alignment: %u is not a power of two at byte %llu",
				       a, (unsigned long long)kv->offset);
	f->alignment = a;
	return 0;
}

static int read_kvs(gguf_file *f, struct cursor *c)
{
	int rc;

	f->kv = calloc(f->n_kv ? (size_t)f->n_kv : 1, sizeof(*f->kv));
	f->kv_sorted = calloc(f->n_kv ? (size_t)f->n_kv : 1, sizeof(*f->kv_sorted));
	if (!f->kv || !f->kv_sorted)
		return infer_error_set(c->err, INFER_E_NOMEM, -1, "out of memory for %lld KVs",
				       (long long)f->n_kv);
	for (int64_t i = 0; i < f->n_kv; i++) {
		rc = read_kv(c, i, &f->kv[i]);
		if (rc)
			return rc;
		f->kv_sorted[i] = (struct name_ref){ f->kv[i].key.data, f->kv[i].key.len, i,
						     f->kv[i].offset };
	}
	int64_t d = sort_and_find_dup(f->kv_sorted, f->n_kv);
	if (d >= 0) {
		char label[96];
		key_label(label, sizeof(label), &f->kv[f->kv_sorted[d].idx].key);
		return infer_error_set(c->err, GGUF_E_DUP_KEY, (int64_t)f->kv_sorted[d].offset,
				       "KV %lld: duplicate key '%s' (first at byte %llu) at byte %llu",
				       (long long)f->kv_sorted[d].idx, label,
				       (unsigned long long)f->kv_sorted[d - 1].offset,
				       (unsigned long long)f->kv_sorted[d].offset);
	}
	return check_alignment(f, c->err);
}

/* ---- tensor infos ---------------------------------------------------------- */

static int mul_overflows(uint64_t a, uint64_t b, uint64_t *out)
{
	return __builtin_mul_overflow(a, b, out);
}

/* Element count and byte size, with every product checked: a file must not be
 * able to make a wrapped size look small. */
static int tensor_sizes(struct cursor *c, gguf_tensor *t, const infer_type_traits *tt,
			const char *label)
{
	uint64_t n = 1, bytes;

	for (int d = 0; d < GGUF_MAX_DIMS; d++) {
		if (mul_overflows(n, (uint64_t)t->ne[d], &n) || n > INT64_MAX)
			return infer_error_set(c->err, GGUF_E_OVERFLOW, (int64_t)t->info_offset,
					       "tensor '%s': element count of [%lld, %lld, %lld, %lld] overflows int64 at byte %llu",
					       label, (long long)t->ne[0], (long long)t->ne[1],
					       (long long)t->ne[2], (long long)t->ne[3],
					       (unsigned long long)t->info_offset);
	}
	if (t->ne[0] % tt->block_size)
		return infer_error_set(c->err, GGUF_E_BLOCK, (int64_t)t->info_offset,
				       "tensor '%s': ne[0] = %lld is not a multiple of %s's block size %u at byte %llu",
				       label, (long long)t->ne[0], tt->name, tt->block_size,
				       (unsigned long long)t->info_offset);
	if (mul_overflows(n / tt->block_size, tt->type_size, &bytes) || bytes > INT64_MAX)
		return infer_error_set(c->err, GGUF_E_OVERFLOW, (int64_t)t->info_offset,
				       "tensor '%s': byte size of %llu %s elements overflows at byte %llu",
				       label, (unsigned long long)n, tt->name,
				       (unsigned long long)t->info_offset);
	t->n_elements = (int64_t)n;
	t->nbytes = bytes;
	return 0;
}

static int read_dims(struct cursor *c, gguf_tensor *t, const char *label)
{
	uint64_t at = c->pos;
	char field[128];
	int rc;

	snprintf(field, sizeof(field), "tensor '%s' n_dims", label);
	rc = cur_u32(c, &t->n_dims, field);
	if (rc)
		return rc;
	if (t->n_dims > GGUF_MAX_DIMS)
		return infer_error_set(c->err, GGUF_E_N_DIMS, (int64_t)at,
				       "tensor '%s': n_dims = %u (at most %d) at byte %llu", label,
				       t->n_dims, GGUF_MAX_DIMS, (unsigned long long)at);
	for (int d = 0; d < GGUF_MAX_DIMS; d++)
		t->ne[d] = 1;
	for (uint32_t d = 0; d < t->n_dims; d++) {
		at = c->pos;
		snprintf(field, sizeof(field), "tensor '%s' ne[%u]", label, d);
		rc = cur_i64(c, &t->ne[d], field);
		if (rc)
			return rc;
		if (t->ne[d] < 0)
			return infer_error_set(c->err, GGUF_E_DIM, (int64_t)at,
					       "tensor '%s': ne[%u] = %lld is negative at byte %llu",
					       label, d, (long long)t->ne[d], (unsigned long long)at);
	}
	return 0;
}

static int read_tensor_info(struct cursor *c, int64_t i, gguf_tensor *t, gguf_str *name)
{
	char field[128], label[GGUF_NAME_MAX + 32];
	uint64_t at;
	int rc;

	t->info_offset = c->pos;
	snprintf(field, sizeof(field), "tensor %lld name", (long long)i);
	rc = cur_str(c, name, field);
	if (rc)
		return rc;
	if (name->len >= GGUF_NAME_MAX)
		return infer_error_set(c->err, GGUF_E_NAME_LEN, (int64_t)t->info_offset,
				       "tensor %lld: name of %llu bytes (at most %d) at byte %llu",
				       (long long)i, (unsigned long long)name->len, GGUF_NAME_MAX - 1,
				       (unsigned long long)t->info_offset);
	memcpy(t->name, name->data, name->len);
	t->name[name->len] = '\0';
	key_label(label, sizeof(label), name);
	rc = read_dims(c, t, label);
	if (rc)
		return rc;
	at = c->pos;
	snprintf(field, sizeof(field), "tensor '%s' type", label);
	rc = cur_u32(c, &t->type, field);
	if (rc)
		return rc;
	const infer_type_traits *tt = infer_type_traits_get(t->type);
	if (!tt || !tt->block_size || !tt->type_size)
		return infer_error_set(c->err, GGUF_E_TENSOR_TYPE, (int64_t)at,
				       "tensor '%s': type id %u is not a ggml type at byte %llu",
				       label, t->type, (unsigned long long)at);
	snprintf(field, sizeof(field), "tensor '%s' offset", label);
	rc = cur_u64(c, &t->offset, field);
	if (rc)
		return rc;
	return tensor_sizes(c, t, tt, label);
}

static uint64_t align_up(uint64_t x, uint64_t a)
{
	return x + (a - x % a) % a;
}

/* ggml's rule (stricter than the spec, which only asks for alignment):
 * tensors are packed in file order, each starting at the previous one's end
 * rounded up to the alignment. So gaps, overlaps and reordering are errors. */
static int check_offsets(gguf_file *f, infer_error *err)
{
	uint64_t data_size = f->size - f->data_offset;
	uint64_t expect = 0;

	for (int64_t i = 0; i < f->n_tensors; i++) {
		gguf_tensor *t = &f->tensors[i];
		uint64_t at = t->info_offset;
		char label[GGUF_NAME_MAX];

		tensor_label(label, sizeof(label), t);
		if (t->offset % f->alignment)
			return infer_error_set(err, GGUF_E_OFFSET, (int64_t)at,
					       "tensor '%s': offset %llu is not a multiple of the alignment %u at byte %llu",
					       label, (unsigned long long)t->offset, f->alignment,
					       (unsigned long long)at);
		if (t->offset > data_size || t->nbytes > data_size - t->offset)
			return infer_error_set(err, GGUF_E_DATA_BOUNDS, (int64_t)at,
					       "tensor '%s': data [%llu, +%llu) of the data section at %llu runs past the end of the file (%llu bytes) at byte %llu",
					       label, (unsigned long long)t->offset,
					       (unsigned long long)t->nbytes,
					       (unsigned long long)f->data_offset,
					       (unsigned long long)f->size, (unsigned long long)at);
		if (t->offset != expect)
			return infer_error_set(err, GGUF_E_OFFSET, (int64_t)at,
					       "tensor '%s': offset %llu, expected %llu (%s) at byte %llu",
					       label, (unsigned long long)t->offset,
					       (unsigned long long)expect,
					       t->offset > expect ? "gap after the previous tensor" :
					       "overlaps the previous tensor",
					       (unsigned long long)at);
		t->data = f->base + f->data_offset + t->offset;
		expect = t->offset + align_up(t->nbytes, f->alignment);
	}
	return 0;
}

static int read_tensors(gguf_file *f, struct cursor *c)
{
	int rc;

	f->tensors = calloc(f->n_tensors ? (size_t)f->n_tensors : 1, sizeof(*f->tensors));
	f->t_sorted = calloc(f->n_tensors ? (size_t)f->n_tensors : 1, sizeof(*f->t_sorted));
	if (!f->tensors || !f->t_sorted)
		return infer_error_set(c->err, INFER_E_NOMEM, -1, "out of memory for %lld tensors",
				       (long long)f->n_tensors);
	for (int64_t i = 0; i < f->n_tensors; i++) {
		gguf_str name;

		rc = read_tensor_info(c, i, &f->tensors[i], &name);
		if (rc)
			return rc;
		/* Names compare as C strings, as in ggml (strcmp): "a\0x" and
		 * "a\0y" are the same tensor name "a", so they are duplicates. */
		f->t_sorted[i] = (struct name_ref){ f->tensors[i].name,
						    strlen(f->tensors[i].name), i,
						    f->tensors[i].info_offset };
	}
	int64_t d = sort_and_find_dup(f->t_sorted, f->n_tensors);
	if (d < 0)
		return 0;
	char label[GGUF_NAME_MAX];
	tensor_label(label, sizeof(label), &f->tensors[f->t_sorted[d].idx]);
	return infer_error_set(c->err, GGUF_E_DUP_TENSOR, (int64_t)f->t_sorted[d].offset,
			       "tensor %lld: duplicate name '%s' (first at byte %llu) at byte %llu",
			       (long long)f->t_sorted[d].idx, label,
			       (unsigned long long)f->t_sorted[d - 1].offset,
			       (unsigned long long)f->t_sorted[d].offset);
}

/* ---- header and top level -------------------------------------------------- */

static int read_header(gguf_file *f, struct cursor *c)
{
	char magic[4];
	uint64_t at;
	int rc = cur_read(c, magic, 4, "magic");

	if (rc)
		return rc;
	if (memcmp(magic, GGUF_MAGIC, 4))
		return infer_error_set(c->err, GGUF_E_MAGIC, 0,
				       "bad magic %02x %02x %02x %02x (expected 'GGUF') at byte 0",
				       (uint8_t)magic[0], (uint8_t)magic[1], (uint8_t)magic[2],
				       (uint8_t)magic[3]);
	rc = cur_u32(c, &f->version, "version");
	if (rc)
		return rc;
	if (f->version != 2 && f->version != 3)
		return infer_error_set(c->err, GGUF_E_VERSION, 4,
				       "version %u is not supported (2 or 3)%s at byte 4", f->version,
				       f->version && (f->version & 0xffff) == 0 ?
				       ", looks like a big-endian file" : "");
	at = c->pos;
	rc = cur_i64(c, &f->n_tensors, "n_tensors");
	if (rc)
		return rc;
	rc = cur_i64(c, &f->n_kv, "n_kv");
	if (rc)
		return rc;
	/* Bound both counts by the bytes left (minimal records) before allocating. */
	uint64_t left = cur_left(c);
	if (f->n_tensors < 0 || (uint64_t)f->n_tensors > left / GGUF_MIN_TINFO_BYTES)
		return infer_error_set(c->err, GGUF_E_COUNT, (int64_t)at,
				       "n_tensors = %lld cannot fit in the %llu bytes left (file truncated or count corrupt) at byte %llu",
				       (long long)f->n_tensors, (unsigned long long)left,
				       (unsigned long long)at);
	/* n_kv is bounded alone first, so the sum below cannot overflow */
	if (f->n_kv < 0 || (uint64_t)f->n_kv > left / GGUF_MIN_KV_BYTES ||
	    (uint64_t)f->n_kv * GGUF_MIN_KV_BYTES +
	    (uint64_t)f->n_tensors * GGUF_MIN_TINFO_BYTES > left)
		return infer_error_set(c->err, GGUF_E_COUNT, (int64_t)at + 8,
				       "n_kv = %lld and %lld tensor infos cannot fit in the %llu bytes left (file truncated or count corrupt) at byte %llu",
				       (long long)f->n_kv, (long long)f->n_tensors,
				       (unsigned long long)left, (unsigned long long)at + 8);
	return 0;
}

static int parse(gguf_file *f, infer_error *err)
{
	struct cursor c = { f->base, f->size, 0, err };
	int rc;

	rc = read_header(f, &c);
	if (!rc)
		rc = read_kvs(f, &c);
	if (!rc)
		rc = read_tensors(f, &c);
	if (rc)
		return rc;
	/* ggml reports the unrounded end of the infos when there are no tensors
	 * (and does not require the padding to exist); we report the same. */
	if (f->n_tensors == 0) {
		f->data_offset = c.pos;
		return 0;
	}
	f->data_offset = align_up(c.pos, f->alignment);
	if (f->data_offset > f->size)
		return infer_error_set(err, GGUF_E_DATA_BOUNDS, (int64_t)c.pos,
				       "data section: starts at %llu, past the end of the file (%llu bytes) at byte %llu",
				       (unsigned long long)f->data_offset,
				       (unsigned long long)f->size, (unsigned long long)c.pos);
	return check_offsets(f, err);
}

static gguf_file *open_parsed(gguf_file *f, infer_error *err)
{
	int rc = parse(f, err);

	if (rc) {
		gguf_close(f);
		return NULL;
	}
	infer_error_clear(err);
	return f;
}

gguf_file *gguf_open_memory(const void *buf, size_t size, infer_error *err)
{
	static const uint8_t empty[1];
	gguf_file *f = calloc(1, sizeof(*f));

	if (!f) {
		infer_error_set(err, INFER_E_NOMEM, -1, "out of memory");
		return NULL;
	}
	f->base = buf ? buf : empty;
	f->size = buf ? size : 0;
	return open_parsed(f, err);
}

static int map_file(gguf_file *f, const char *path, infer_error *err)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return infer_error_set(err, INFER_E_IO, -1, "cannot open: %s", strerror(errno));
	if (fstat(fd, &st)) {
		int e = errno;
		close(fd);
		return infer_error_set(err, INFER_E_IO, -1, "cannot stat: %s", strerror(e));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return infer_error_set(err, INFER_E_IO, -1, "not a regular file");
	}
	f->size = (uint64_t)st.st_size;
	if (st.st_size == 0) { /* mmap refuses length 0; parse an empty buffer */
		static const uint8_t empty[1];
		f->base = empty;
		close(fd);
		return 0;
	}
	f->map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (f->map == MAP_FAILED) {
		f->map = NULL;
		return infer_error_set(err, INFER_E_IO, -1, "mmap failed: %s", strerror(errno));
	}
	f->map_len = (size_t)st.st_size;
	f->base = f->map;
	return 0;
}

gguf_file *gguf_open(const char *path, infer_error *err)
{
	gguf_file *f = calloc(1, sizeof(*f));

	if (!f || !(f->path = strdup(path))) {
		free(f);
		infer_error_set(err, INFER_E_NOMEM, -1, "out of memory");
		return NULL;
	}
	if (map_file(f, path, err)) {
		gguf_close(f);
		return NULL;
	}
	return open_parsed(f, err);
}

void gguf_close(gguf_file *f)
{
	if (!f)
		return;
	if (f->kv)
		for (int64_t i = 0; i < f->n_kv; i++)
			if (f->kv[i].type == GGUF_VT_ARRAY)
				free((void *)f->kv[i].v.arr.strs);
	free(f->kv);
	free(f->kv_sorted);
	free(f->tensors);
	free(f->t_sorted);
	if (f->map)
		munmap(f->map, f->map_len);
	free(f->path);
	free(f);
}

/* ---- accessors ---------------------------------------------------------------- */

uint32_t gguf_version(const gguf_file *f) { return f->version; }
uint32_t gguf_alignment(const gguf_file *f) { return f->alignment; }
uint64_t gguf_data_offset(const gguf_file *f) { return f->data_offset; }
uint64_t gguf_file_size(const gguf_file *f) { return f->size; }
const char *gguf_path(const gguf_file *f) { return f->path ? f->path : "<memory>"; }
int64_t gguf_n_kv(const gguf_file *f) { return f->n_kv; }
int64_t gguf_n_tensors(const gguf_file *f) { return f->n_tensors; }

const gguf_kv *gguf_kv_at(const gguf_file *f, int64_t i)
{
	if (i < 0 || i >= f->n_kv)
		return NULL;
	return &f->kv[i];
}

const gguf_tensor *gguf_tensor_at(const gguf_file *f, int64_t i)
{
	if (i < 0 || i >= f->n_tensors)
		return NULL;
	return &f->tensors[i];
}

static const struct name_ref *lookup(const struct name_ref *refs, int64_t n, const char *name)
{
	struct name_ref key = { name, strlen(name), -1, 0 };
	int64_t lo = 0, hi = n;

	/* lower bound on (name, idx=-1): the first entry with this name */
	while (lo < hi) {
		int64_t mid = lo + (hi - lo) / 2;
		if (cmp_name_ref(&refs[mid], &key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < n && refs[lo].len == key.len && !memcmp(refs[lo].p, name, key.len))
		return &refs[lo];
	return NULL;
}

const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key)
{
	const struct name_ref *r = lookup(f->kv_sorted, f->n_kv, key);

	return r ? &f->kv[r->idx] : NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name)
{
	const struct name_ref *r = lookup(f->t_sorted, f->n_tensors, name);

	return r ? &f->tensors[r->idx] : NULL;
}

/* ---- typed getters -------------------------------------------------------------- */

static int get_typed(const gguf_file *f, const char *key, enum gguf_vtype want,
		     const gguf_kv **out, infer_error *err)
{
	const gguf_kv *kv = gguf_find_kv(f, key);

	*out = NULL; /* gcc -O3 cannot see that every error path returns non-zero */
	if (!kv)
		return infer_error_set(err, GGUF_E_KEY, -1, "key '%s' not found", key);
	if (kv->type != want)
		return infer_error_set(err, GGUF_E_TYPE, (int64_t)kv->offset,
				       "key '%s': stored as %s, expected %s at byte %llu", key,
				       vtype_names[kv->type], vtype_names[want],
				       (unsigned long long)kv->offset);
	*out = kv;
	return 0;
}

int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, infer_error *err)
{
	const gguf_kv *kv = NULL;
	int rc = get_typed(f, key, GGUF_VT_UINT32, &kv, err);

	if (!rc)
		*out = kv->v.u32;
	return rc;
}

int gguf_get_i32(const gguf_file *f, const char *key, int32_t *out, infer_error *err)
{
	const gguf_kv *kv = NULL;
	int rc = get_typed(f, key, GGUF_VT_INT32, &kv, err);

	if (!rc)
		*out = kv->v.i32;
	return rc;
}

int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out, infer_error *err)
{
	const gguf_kv *kv = NULL;
	int rc = get_typed(f, key, GGUF_VT_UINT64, &kv, err);

	if (!rc)
		*out = kv->v.u64;
	return rc;
}

int gguf_get_f32(const gguf_file *f, const char *key, float *out, infer_error *err)
{
	const gguf_kv *kv = NULL;
	int rc = get_typed(f, key, GGUF_VT_FLOAT32, &kv, err);

	if (!rc)
		*out = kv->v.f32;
	return rc;
}

int gguf_get_bool(const gguf_file *f, const char *key, int *out, infer_error *err)
{
	const gguf_kv *kv = NULL;
	int rc = get_typed(f, key, GGUF_VT_BOOL, &kv, err);

	if (!rc)
		*out = kv->v.b != 0; /* ggml: any non-zero byte is true */
	return rc;
}

int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, infer_error *err)
{
	const gguf_kv *kv = NULL;
	int rc = get_typed(f, key, GGUF_VT_STRING, &kv, err);

	if (!rc)
		*out = kv->v.str;
	return rc;
}

int gguf_get_int(const gguf_file *f, const char *key, int64_t *out, infer_error *err)
{
	const gguf_kv *kv = gguf_find_kv(f, key);

	if (!kv)
		return infer_error_set(err, GGUF_E_KEY, -1, "key '%s' not found", key);
	switch (kv->type) {
	case GGUF_VT_UINT8: *out = kv->v.u8; return 0;
	case GGUF_VT_INT8: *out = kv->v.i8; return 0;
	case GGUF_VT_UINT16: *out = kv->v.u16; return 0;
	case GGUF_VT_INT16: *out = kv->v.i16; return 0;
	case GGUF_VT_UINT32: *out = kv->v.u32; return 0;
	case GGUF_VT_INT32: *out = kv->v.i32; return 0;
	case GGUF_VT_INT64: *out = kv->v.i64; return 0;
	case GGUF_VT_UINT64:
		if (kv->v.u64 <= INT64_MAX) {
			*out = (int64_t)kv->v.u64;
			return 0;
		}
		return infer_error_set(err, GGUF_E_TYPE, (int64_t)kv->offset,
				       "key '%s': u64 value %llu does not fit in int64 at byte %llu",
				       key, (unsigned long long)kv->v.u64,
				       (unsigned long long)kv->offset);
	default:
		return infer_error_set(err, GGUF_E_TYPE, (int64_t)kv->offset,
				       "key '%s': stored as %s, expected an integer at byte %llu",
				       key, vtype_names[kv->type], (unsigned long long)kv->offset);
	}
}

int gguf_get_arr(const gguf_file *f, const char *key, enum gguf_vtype elem,
		 const gguf_kv **out, infer_error *err)
{
	const gguf_kv *kv = NULL;
	int rc = get_typed(f, key, GGUF_VT_ARRAY, &kv, err);

	if (rc)
		return rc;
	if (kv->v.arr.type != elem)
		return infer_error_set(err, GGUF_E_TYPE, (int64_t)kv->offset,
				       "key '%s': array of %s, expected array of %s at byte %llu",
				       key, vtype_names[kv->v.arr.type], gguf_vtype_name(elem),
				       (unsigned long long)kv->offset);
	*out = kv;
	return 0;
}
