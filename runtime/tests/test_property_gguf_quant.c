/* Property tests (seeded, reproducible):
 *
 * 1. GGUF writer -> reader round trip: random metadata (every scalar type,
 *    fixed-size and string arrays, keys and strings of arbitrary non-NUL
 *    bytes) and random tensors (every type with a layout, 0-4 dims, random
 *    bytes) at random alignments come back identical. The comparison is a
 *    function that counts differences, and it is shown to count a flipped
 *    data byte, a flipped metadata byte and a changed alignment.
 * 2. Memory safety of every codec on random blocks: each block lies in a
 *    buffer of exactly its size that touches a PROT_NONE guard page on one
 *    side (both sides are tried), and so does the output; any access outside
 *    faults (in the sanitizer build ASan's redzones check too). Every output
 *    element must be written (two runs over differently pre-filled outputs
 *    agree bit for bit), and ids without a layout are refused with their id.
 *
 * The name contains "gguf" and "quant": ctest label sanitize (ASan+UBSan). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "infer/gguf.h"
#include "infer/quant.h"

/* ---- a small seeded generator (splitmix64) ------------------------------------ */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint32_t rnd_below(uint32_t n)
{
	return (uint32_t)(rnd() % n);
}

static void rnd_bytes(void *p, size_t n)
{
	uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)rnd();
}

/* Non-NUL bytes: the writer's key/string API takes C strings. */
static void rnd_text(char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		s[i] = (char)(1 + rnd_below(255));
	s[len] = 0;
}

/* ---- 1. GGUF round trip -------------------------------------------------------- */

#define MAX_KV 24
#define MAX_TENSORS 8
#define MAX_ARR 40
#define MAX_STR 48

/* What was written, to compare with what is read. */
struct kv_model {
	char key[80];
	enum gguf_vtype type;     /* ARRAY: elem says of what */
	enum gguf_vtype elem;
	uint8_t raw[8];           /* scalar bytes */
	uint64_t n;               /* array length */
	uint8_t *data;            /* fixed-size array elements */
	char **strs;              /* STRING value (strs[0]) or string array */
};

struct tensor_model {
	char name[GGUF_NAME_MAX];
	uint32_t type, n_dims;
	int64_t ne[GGUF_MAX_DIMS];
	uint8_t *data;
	uint64_t nbytes;
};

struct file_model {
	uint32_t alignment; /* as given to the writer (0 = default) */
	struct kv_model kv[MAX_KV];
	int n_kv;
	struct tensor_model t[MAX_TENSORS];
	int n_tensors;
};

static const enum gguf_vtype fixed_types[] = {
	GGUF_VT_UINT8, GGUF_VT_INT8, GGUF_VT_UINT16, GGUF_VT_INT16, GGUF_VT_UINT32,
	GGUF_VT_INT32, GGUF_VT_FLOAT32, GGUF_VT_BOOL, GGUF_VT_UINT64, GGUF_VT_INT64,
	GGUF_VT_FLOAT64,
};
#define N_FIXED (sizeof(fixed_types) / sizeof(fixed_types[0]))

static char *rnd_string(void)
{
	size_t len = rnd_below(MAX_STR);
	char *s = malloc(len + 1);

	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	rnd_text(s, len);
	return s;
}

static void rnd_kv(struct kv_model *kv, int i)
{
	char tail[24];
	uint32_t pick = rnd_below(4);

	/* The index prefix keeps keys unique; the tail is arbitrary bytes. */
	rnd_text(tail, rnd_below(sizeof(tail)));
	snprintf(kv->key, sizeof(kv->key), "k%d.%s", i, tail);
	if (pick == 0) {
		kv->type = GGUF_VT_STRING;
		kv->n = 1;
		kv->strs = calloc(1, sizeof(char *));
		CU_ASSERT_PTR_NOT_NULL_FATAL(kv->strs);
		kv->strs[0] = rnd_string();
		return;
	}
	if (pick == 1) {
		kv->type = fixed_types[rnd_below(N_FIXED)];
		rnd_bytes(kv->raw, sizeof(kv->raw));
		if (kv->type == GGUF_VT_BOOL)
			kv->raw[0] &= 1; /* a bool holds 0 or 1: the reader may refuse others */
		return;
	}
	kv->type = GGUF_VT_ARRAY;
	kv->n = rnd_below(MAX_ARR + 1);
	if (pick == 2) {
		kv->elem = GGUF_VT_STRING;
		kv->strs = calloc(kv->n + 1, sizeof(char *));
		CU_ASSERT_PTR_NOT_NULL_FATAL(kv->strs);
		for (uint64_t j = 0; j < kv->n; j++)
			kv->strs[j] = rnd_string();
		return;
	}
	kv->elem = fixed_types[rnd_below(N_FIXED)];
	kv->data = malloc(kv->n * 8 + 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(kv->data);
	rnd_bytes(kv->data, kv->n * gguf_vtype_size(kv->elem));
	if (kv->elem == GGUF_VT_BOOL)
		for (uint64_t j = 0; j < kv->n; j++)
			kv->data[j] &= 1;
}

/* A type with a layout, chosen uniformly among the ids that have one. */
static const infer_type_traits *rnd_type(void)
{
	for (;;) {
		const infer_type_traits *tt = infer_type_traits_get(rnd_below(INFER_TYPE_COUNT));

		if (tt && tt->block_size && tt->type_size)
			return tt;
	}
}

static void rnd_tensor(struct tensor_model *t, int i)
{
	const infer_type_traits *tt = rnd_type();
	char tail[40];
	uint64_t rows = 1;

	rnd_text(tail, rnd_below(sizeof(tail)));
	snprintf(t->name, sizeof(t->name), "t%d.%s", i, tail);
	t->type = tt->id;
	t->n_dims = rnd_below(GGUF_MAX_DIMS + 1);
	for (int d = 0; d < GGUF_MAX_DIMS; d++)
		t->ne[d] = 1;
	if (t->n_dims == 0 && tt->block_size != 1)
		t->n_dims = 1; /* one element is not a whole block */
	for (uint32_t d = 0; d < t->n_dims; d++) {
		t->ne[d] = d == 0 ? (int64_t)tt->block_size * (1 + rnd_below(3)) : 1 + rnd_below(3);
		if (d > 0)
			rows *= (uint64_t)t->ne[d];
	}
	t->nbytes = infer_row_size(t->type, t->ne[0]) * rows;
	CU_ASSERT_FATAL(t->nbytes > 0);
	t->data = malloc(t->nbytes);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t->data);
	rnd_bytes(t->data, t->nbytes);
}

static void model_make(struct file_model *m, uint64_t seed)
{
	static const uint32_t aligns[] = { 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 4096 };

	memset(m, 0, sizeof(*m));
	rng_state = seed;
	m->alignment = aligns[rnd_below(sizeof(aligns) / sizeof(aligns[0]))];
	m->n_kv = (int)rnd_below(MAX_KV + 1);
	for (int i = 0; i < m->n_kv; i++)
		rnd_kv(&m->kv[i], i);
	m->n_tensors = (int)rnd_below(MAX_TENSORS + 1);
	for (int i = 0; i < m->n_tensors; i++)
		rnd_tensor(&m->t[i], i);
}

static void model_free(struct file_model *m)
{
	for (int i = 0; i < m->n_kv; i++) {
		struct kv_model *kv = &m->kv[i];

		for (uint64_t j = 0; kv->strs && j < kv->n; j++)
			free(kv->strs[j]);
		free(kv->strs);
		free(kv->data);
	}
	for (int i = 0; i < m->n_tensors; i++)
		free(m->t[i].data);
}

static int model_write(const struct file_model *m, const char *path)
{
	gguf_writer *w = gguf_writer_new(m->alignment);
	infer_error err;
	int rc = 0;

	if (!w)
		return -1;
	for (int i = 0; !rc && i < m->n_kv; i++) {
		const struct kv_model *kv = &m->kv[i];

		if (kv->type == GGUF_VT_STRING)
			rc = gguf_writer_add_str(w, kv->key, kv->strs[0]);
		else if (kv->type != GGUF_VT_ARRAY)
			rc = gguf_writer_add_scalar(w, kv->key, kv->type, kv->raw);
		else if (kv->elem == GGUF_VT_STRING)
			rc = gguf_writer_add_str_arr(w, kv->key, (const char *const *)kv->strs, kv->n);
		else
			rc = gguf_writer_add_arr(w, kv->key, kv->elem, kv->data, kv->n);
	}
	for (int i = 0; !rc && i < m->n_tensors; i++) {
		const struct tensor_model *t = &m->t[i];

		rc = gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->nbytes);
	}
	if (!rc && gguf_writer_write(w, path, &err)) {
		fprintf(stderr, "\n  write %s: %s\n", path, err.msg);
		rc = -1;
	}
	gguf_writer_free(w);
	return rc;
}

static int str_eq(gguf_str s, const char *c)
{
	return s.len == strlen(c) && !memcmp(s.data, c, s.len);
}

/* Differences between one KV read back and its model. */
static int kv_diff(const gguf_file *f, const struct kv_model *kv)
{
	const gguf_kv *r = gguf_find_kv(f, kv->key);

	if (!r || r->type != kv->type)
		return 1;
	if (kv->type == GGUF_VT_STRING)
		return !str_eq(r->v.str, kv->strs[0]);
	if (kv->type != GGUF_VT_ARRAY)
		return memcmp(&r->v, kv->raw, gguf_vtype_size(kv->type)) != 0;
	if (r->v.arr.type != kv->elem || r->v.arr.n != kv->n)
		return 1;
	if (kv->elem != GGUF_VT_STRING)
		return kv->n && memcmp(r->v.arr.data, kv->data, kv->n * gguf_vtype_size(kv->elem));
	for (uint64_t j = 0; j < kv->n; j++)
		if (!str_eq(r->v.arr.strs[j], kv->strs[j]))
			return 1;
	return 0;
}

static int tensor_diff(const gguf_file *f, int i, const struct tensor_model *t, uint32_t align)
{
	const gguf_tensor *r = gguf_tensor_at(f, i);
	int d = 0;

	if (!r || strcmp(r->name, t->name) || gguf_find_tensor(f, t->name) != r)
		return 1;
	d += r->type != t->type || r->n_dims != t->n_dims || r->nbytes != t->nbytes;
	d += memcmp(r->ne, t->ne, sizeof(r->ne)) != 0;
	d += (gguf_data_offset(f) + r->offset) % align != 0;
	d += r->nbytes == t->nbytes && memcmp(r->data, t->data, t->nbytes) != 0;
	return d;
}

/* Number of differences between the file and the model (0: identical). */
static int model_diff(const gguf_file *f, const struct file_model *m)
{
	uint32_t align = m->alignment ? m->alignment : 32;
	int d = 0;

	d += gguf_version(f) != 3 || gguf_alignment(f) != align;
	/* The writer adds general.alignment for a non-default alignment. */
	d += gguf_n_kv(f) != m->n_kv + (align != 32);
	for (int i = 0; i < m->n_kv; i++)
		d += kv_diff(f, &m->kv[i]);
	d += gguf_n_tensors(f) != m->n_tensors;
	for (int i = 0; i < m->n_tensors && i < gguf_n_tensors(f); i++)
		d += tensor_diff(f, i, &m->t[i], align);
	return d;
}

static uint8_t *slurp(const char *path, size_t *n)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *b = NULL;
	long len;

	if (!fp)
		return NULL;
	if (!fseek(fp, 0, SEEK_END) && (len = ftell(fp)) > 0 && !fseek(fp, 0, SEEK_SET)) {
		b = malloc((size_t)len);
		if (b && fread(b, 1, (size_t)len, fp) != (size_t)len) {
			free(b);
			b = NULL;
		}
		*n = (size_t)len;
	}
	fclose(fp);
	return b;
}

#define N_FILES 200

static void test_round_trip_random(void)
{
	char path[] = "/tmp/test_property_gguf.XXXXXX";
	int fd = mkstemp(path), failed = 0;
	infer_error err;

	CU_ASSERT_FATAL(fd >= 0);
	close(fd);
	for (uint64_t seed = 1; seed <= N_FILES; seed++) {
		struct file_model m;
		gguf_file *f;
		int d;

		model_make(&m, seed);
		CU_ASSERT_EQUAL_FATAL(model_write(&m, path), 0);
		f = gguf_open(path, &err);
		if (!f)
			fprintf(stderr, "\n  seed %llu: %s\n", (unsigned long long)seed, err.msg);
		CU_ASSERT_PTR_NOT_NULL_FATAL(f);
		d = model_diff(f, &m);
		if (d && failed++ < 5)
			fprintf(stderr, "\n  seed %llu: %d differences\n", (unsigned long long)seed, d);
		CU_ASSERT_EQUAL(d, 0);
		gguf_close(f);
		model_free(&m);
	}
	unlink(path);
}

/* The comparison can fail: a flipped tensor byte, a flipped byte inside a
 * string value and another alignment are each counted. */
static void test_round_trip_detects_changes(void)
{
	char path[] = "/tmp/test_property_gguf.XXXXXX";
	int fd = mkstemp(path), seen_t = 0, seen_kv = 0;
	infer_error err;

	CU_ASSERT_FATAL(fd >= 0);
	close(fd);
	for (uint64_t seed = 1; seed <= 40 && (!seen_t || !seen_kv); seed++) {
		struct file_model m;
		size_t n = 0;
		uint8_t *b;
		gguf_file *f;

		model_make(&m, seed);
		CU_ASSERT_EQUAL_FATAL(model_write(&m, path), 0);
		b = slurp(path, &n);
		CU_ASSERT_PTR_NOT_NULL_FATAL(b);
		f = gguf_open_memory(b, n, &err);
		CU_ASSERT_PTR_NOT_NULL_FATAL(f);
		CU_ASSERT_EQUAL(model_diff(f, &m), 0);
		m.alignment = gguf_alignment(f) == 64 ? 128 : 64;
		CU_ASSERT(model_diff(f, &m) > 0);
		m.alignment = gguf_alignment(f);
		if (m.n_tensors) {
			const gguf_tensor *t = gguf_tensor_at(f, m.n_tensors - 1);

			b[(const uint8_t *)t->data - b + t->nbytes / 2] ^= 0x10;
			CU_ASSERT(model_diff(f, &m) > 0);
			b[(const uint8_t *)t->data - b + t->nbytes / 2] ^= 0x10;
			seen_t = 1;
		}
		for (int i = 0; i < m.n_kv; i++) {
			const gguf_kv *kv = gguf_find_kv(f, m.kv[i].key);

			if (kv->type != GGUF_VT_STRING || !kv->v.str.len)
				continue;
			b[(const uint8_t *)kv->v.str.data - b] ^= 0x01;
			CU_ASSERT(model_diff(f, &m) > 0);
			b[(const uint8_t *)kv->v.str.data - b] ^= 0x01;
			seen_kv = 1;
			break;
		}
		CU_ASSERT_EQUAL(model_diff(f, &m), 0);
		gguf_close(f);
		free(b);
		model_free(&m);
	}
	CU_ASSERT(seen_t && seen_kv);
	unlink(path);
}

/* ---- 2. codecs on random blocks, guarded -------------------------------------- */

/* n bytes that end exactly at a PROT_NONE page (right = 1) or start exactly
 * after one (right = 0). */
struct guarded {
	uint8_t *map;
	size_t map_len;
	uint8_t *p;
};

static size_t page;

static void guarded_new(struct guarded *g, size_t n, int right)
{
	size_t body = (n + page - 1) / page * page;

	g->map_len = body + 2 * page;
	g->map = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CU_ASSERT_FATAL(g->map != MAP_FAILED);
	CU_ASSERT_FATAL(!mprotect(g->map, page, PROT_NONE));
	CU_ASSERT_FATAL(!mprotect(g->map + page + body, page, PROT_NONE));
	g->p = right ? g->map + page + body - n : g->map + page;
}

static void guarded_free(struct guarded *g)
{
	munmap(g->map, g->map_len);
}

#define TRIALS 24

/* Decodes nb random blocks twice, outputs pre-filled differently: a fault is
 * an access outside, a difference an element left unwritten. */
static void decode_guarded(const infer_type_traits *tt, int64_t nb, int right)
{
	size_t in = (size_t)nb * tt->type_size, n = (size_t)nb * tt->block_size;
	struct guarded src, a, b;
	infer_error err;

	guarded_new(&src, in, right);
	guarded_new(&a, n * sizeof(float), right);
	guarded_new(&b, n * sizeof(float), !right);
	rnd_bytes(src.p, in);
	memset(a.p, 0xa5, n * sizeof(float));
	memset(b.p, 0x5a, n * sizeof(float));
	CU_ASSERT_EQUAL(infer_dequantize(tt->id, src.p, (float *)a.p, (int64_t)n, tt->name, &err), 0);
	CU_ASSERT_EQUAL(infer_dequantize(tt->id, src.p, (float *)b.p, (int64_t)n, tt->name, &err), 0);
	if (memcmp(a.p, b.p, n * sizeof(float))) {
		fprintf(stderr, "\n  %s: output not fully written\n", tt->name);
		CU_FAIL("dequantizer left output elements unwritten");
	}
	guarded_free(&src);
	guarded_free(&a);
	guarded_free(&b);
}

static void test_dequant_guarded(void)
{
	int decoders = 0;

	page = (size_t)sysconf(_SC_PAGESIZE);
	rng_state = 7;
	for (uint32_t id = 0; id < INFER_TYPE_COUNT; id++) {
		const infer_type_traits *tt = infer_type_traits_get(id);

		if (!tt || !tt->to_float)
			continue;
		decoders++;
		for (int i = 0; i < TRIALS; i++)
			decode_guarded(tt, 1 + rnd_below(4), i & 1);
	}
	/* Every type ggml still defines has a decoder (quant.h). */
	CU_ASSERT(decoders >= 35);
}

/* Random floats in, exactly the blocks' bytes out, guarded; the bytes must
 * decode again (the encoder wrote a valid block). */
static void encode_guarded(const infer_type_traits *tt, int64_t nb, int right)
{
	size_t out = (size_t)nb * tt->type_size, n = (size_t)nb * tt->block_size;
	struct guarded src, dst, back;
	float *x;
	infer_error err;

	guarded_new(&src, n * sizeof(float), right);
	guarded_new(&dst, out, right);
	guarded_new(&back, n * sizeof(float), !right);
	x = (float *)src.p;
	for (size_t i = 0; i < n; i++)
		x[i] = (float)((double)(int64_t)(rnd() >> 11) / (double)(1ull << 52) - 1.0) *
		       (rnd_below(4) ? 1.0f : 1000.0f);
	if (infer_quantize(tt->id, x, dst.p, (int64_t)n, tt->name, &err)) {
		fprintf(stderr, "\n  %s: %s\n", tt->name, err.msg);
		CU_FAIL("encoder refused finite input");
	} else if (tt->to_float) {
		CU_ASSERT_EQUAL(infer_dequantize(tt->id, dst.p, (float *)back.p, (int64_t)n,
						 tt->name, &err), 0);
	}
	guarded_free(&src);
	guarded_free(&dst);
	guarded_free(&back);
}

static void test_quant_guarded(void)
{
	int encoders = 0;

	page = (size_t)sysconf(_SC_PAGESIZE);
	rng_state = 11;
	for (uint32_t id = 0; id < INFER_TYPE_COUNT; id++) {
		const infer_type_traits *tt = infer_type_traits_get(id);

		if (!tt || !tt->from_float)
			continue;
		encoders++;
		for (int i = 0; i < TRIALS / 4; i++)
			encode_guarded(tt, 1 + rnd_below(4), i & 1);
	}
	CU_ASSERT(encoders >= 20);
}

/* Ids without a layout: an error naming the id, and the output untouched. */
static void test_unknown_types_refused(void)
{
	uint8_t src[64] = { 0 };
	float dst[32];
	int refused = 0;

	for (uint32_t id = 0; id < INFER_TYPE_COUNT + 8; id++) {
		char want[16];
		infer_error err = { 0 };

		if (infer_type_traits_get(id))
			continue;
		memset(dst, 0x7f, sizeof(dst));
		CU_ASSERT_NOT_EQUAL(infer_dequantize(id, src, dst, 32, "w", &err), 0);
		snprintf(want, sizeof(want), "%u", id);
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, want));
		CU_ASSERT_EQUAL(dst[0], dst[31]);
		CU_ASSERT(dst[0] != 0.0f);
		refused++;
	}
	CU_ASSERT(refused >= 8 + 6); /* the removed ids and those past the end */
}

int main(void)
{
	CU_pSuite s;
	int failures;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("property", NULL, NULL);
	CU_add_test(s, "gguf: 200 random files round-trip through writer and reader",
		    test_round_trip_random);
	CU_add_test(s, "gguf: the round-trip comparison counts a flipped byte and an alignment",
		    test_round_trip_detects_changes);
	CU_add_test(s, "dequant: random blocks of every type, guard pages both sides",
		    test_dequant_guarded);
	CU_add_test(s, "quantize: random rows of every encoder, guard pages both sides",
		    test_quant_guarded);
	CU_add_test(s, "ids without a layout are refused naming the id", test_unknown_types_refused);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = (int)CU_get_number_of_failures();
	CU_cleanup_registry();
	return failures ? 1 : 0;
}
