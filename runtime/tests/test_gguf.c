/* GGUF reader and writer unit tests: writer -> reader round trip, typed
 * getters, one hand-built malformed file per validation code (built byte by
 * byte here, independent of the writer), every truncation and random byte
 * corruptions of a valid file (no crash, a clean error), and the writer never
 * leaving a partial file behind. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "infer/gguf.h"
#include "infer/quant.h"

static char tmpdir[256];

static void tmp_path(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", tmpdir, name);
}

/* ---- a tiny byte builder for hand-made files ------------------------------------- */

struct bb {
	uint8_t p[8192];
	size_t n;
};

static void put(struct bb *b, const void *src, size_t n)
{
	CU_ASSERT_FATAL(b->n + n <= sizeof(b->p));
	memcpy(b->p + b->n, src, n);
	b->n += n;
}

static void put_u32(struct bb *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(struct bb *b, uint64_t v) { put(b, &v, 8); }

static void put_str(struct bb *b, const char *s)
{
	put_u64(b, strlen(s));
	put(b, s, strlen(s));
}

static void header(struct bb *b, int64_t n_tensors, int64_t n_kv)
{
	b->n = 0;
	put(b, "GGUF", 4);
	put_u32(b, 3);
	put_u64(b, (uint64_t)n_tensors);
	put_u64(b, (uint64_t)n_kv);
}

static void kv_u32(struct bb *b, const char *key, uint32_t v)
{
	put_str(b, key);
	put_u32(b, GGUF_VT_UINT32);
	put_u32(b, v);
}

static void tinfo(struct bb *b, const char *name, uint32_t n_dims, const int64_t *ne,
		  uint32_t type, uint64_t off)
{
	put_str(b, name);
	put_u32(b, n_dims);
	put(b, ne, 8 * n_dims);
	put_u32(b, type);
	put_u64(b, off);
}

static void pad(struct bb *b, size_t a)
{
	while (b->n % a)
		b->p[b->n++] = 0;
}

static void zeros(struct bb *b, size_t n)
{
	CU_ASSERT_FATAL(b->n + n <= sizeof(b->p));
	memset(b->p + b->n, 0, n);
	b->n += n;
}

/* A valid file: two KVs, tensors a (f32 [4]) and b (f32 [2, 3]). */
static void valid_file(struct bb *b)
{
	int64_t ne_a[1] = { 4 }, ne_b[2] = { 2, 3 };

	header(b, 2, 2);
	kv_u32(b, "general.x", 7);
	kv_u32(b, "llama.block_count", 2);
	tinfo(b, "a", 1, ne_a, INFER_TYPE_F32, 0);
	tinfo(b, "b", 2, ne_b, INFER_TYPE_F32, 32);
	pad(b, 32);
	zeros(b, 32 + 24);
}

static int expect_reject(const struct bb *b, int code, int64_t offset)
{
	infer_error err;
	gguf_file *f = gguf_open_memory(b->p, b->n, &err);

	CU_ASSERT_PTR_NULL(f);
	gguf_close(f);
	if (f)
		return 0;
	if (err.code != code || (offset >= 0 && err.offset != offset))
		fprintf(stderr, "\n  want %d (%s) at %lld, got %d at %lld: %s\n", code,
			gguf_status_name(code), (long long)offset, err.code, (long long)err.offset,
			err.msg);
	CU_ASSERT_EQUAL(err.code, code);
	if (offset >= 0)
		CU_ASSERT_EQUAL(err.offset, offset);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, " at byte "));
	return err.code == code;
}

/* ---- one malformed file per validation code ------------------------------------ */

static void test_valid_base(void)
{
	struct bb b;
	infer_error err;

	valid_file(&b);
	gguf_file *f = gguf_open_memory(b.p, b.n, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_EQUAL(gguf_n_tensors(f), 2);
	CU_ASSERT_EQUAL(gguf_find_tensor(f, "b")->n_elements, 6);
	CU_ASSERT_EQUAL(gguf_data_offset(f) % 32, 0);
	gguf_close(f);
}

static void test_each_code(void)
{
	struct bb b;
	size_t at;
	int64_t ne1[1] = { 4 }, ne2[2] = { 2, 3 };

	valid_file(&b);
	b.p[3] = 'X';
	expect_reject(&b, GGUF_E_MAGIC, 0);

	valid_file(&b);
	b.p[4] = 1;
	expect_reject(&b, GGUF_E_VERSION, 4);

	valid_file(&b);
	b.n = 10; /* inside n_tensors */
	expect_reject(&b, GGUF_E_TRUNCATED, 8);

	header(&b, 0, 1000); /* 1000 KVs cannot fit in 20 bytes */
	zeros(&b, 20);
	expect_reject(&b, GGUF_E_COUNT, 16);

	header(&b, 0, 1);
	at = b.n;
	put_u64(&b, 100); /* key length past the end */
	put(&b, "k", 1);
	zeros(&b, 20);
	expect_reject(&b, GGUF_E_STRING_LEN, (int64_t)at);

	header(&b, 0, 1);
	put_str(&b, "k");
	at = b.n;
	put_u32(&b, 13);
	zeros(&b, 8);
	expect_reject(&b, GGUF_E_VALUE_TYPE, (int64_t)at);

	header(&b, 0, 1);
	put_str(&b, "k");
	put_u32(&b, GGUF_VT_ARRAY);
	at = b.n;
	put_u32(&b, GGUF_VT_ARRAY);
	put_u64(&b, 0);
	zeros(&b, 8);
	expect_reject(&b, GGUF_E_NESTED_ARRAY, (int64_t)at);

	header(&b, 0, 2);
	kv_u32(&b, "dup", 1);
	at = b.n;
	kv_u32(&b, "dup", 2);
	expect_reject(&b, GGUF_E_DUP_KEY, (int64_t)at);

	header(&b, 0, 1);
	kv_u32(&b, "", 1);
	expect_reject(&b, GGUF_E_EMPTY_KEY, 24);

	header(&b, 0, 1);
	kv_u32(&b, "general.alignment", 3);
	expect_reject(&b, GGUF_E_ALIGNMENT, 24);

	header(&b, 1, 0);
	put_str(&b, "t");
	put_u32(&b, 1);
	put(&b, ne1, 8);
	at = b.n;
	put_u32(&b, 5); /* removed Q4_3 */
	put_u64(&b, 0);
	zeros(&b, 64);
	expect_reject(&b, GGUF_E_TENSOR_TYPE, (int64_t)at);

	header(&b, 1, 0);
	put_str(&b, "t");
	at = b.n;
	put_u32(&b, 5);
	zeros(&b, 80);
	expect_reject(&b, GGUF_E_N_DIMS, (int64_t)at);

	int64_t neg[2] = { 4, -1 };
	header(&b, 1, 0);
	tinfo(&b, "t", 2, neg, INFER_TYPE_F32, 0);
	zeros(&b, 64);
	expect_reject(&b, GGUF_E_DIM, 24 + 8 + 1 + 4 + 8);

	int64_t big[2] = { 1ll << 32, 1ll << 32 }; /* wraps to 0 in 64 bits */
	header(&b, 1, 0);
	tinfo(&b, "t", 2, big, INFER_TYPE_F32, 0);
	zeros(&b, 64);
	expect_reject(&b, GGUF_E_OVERFLOW, 24);

	int64_t ne16[1] = { 16 };
	header(&b, 1, 0);
	tinfo(&b, "t", 1, ne16, INFER_TYPE_Q4_0, 0);
	zeros(&b, 64);
	expect_reject(&b, GGUF_E_BLOCK, 24);

	header(&b, 2, 0);
	tinfo(&b, "t", 1, ne1, INFER_TYPE_F32, 0);
	at = b.n;
	tinfo(&b, "t", 1, ne1, INFER_TYPE_F32, 32);
	pad(&b, 32);
	zeros(&b, 64);
	expect_reject(&b, GGUF_E_DUP_TENSOR, (int64_t)at);

	/* ggml compares tensor names as C strings: "t\0a" and "t\0b" collide */
	header(&b, 2, 0);
	put_u64(&b, 3);
	put(&b, "t\0a", 3);
	put_u32(&b, 1);
	put(&b, ne1, 8);
	put_u32(&b, INFER_TYPE_F32);
	put_u64(&b, 0);
	at = b.n;
	put_u64(&b, 3);
	put(&b, "t\0b", 3);
	put_u32(&b, 1);
	put(&b, ne1, 8);
	put_u32(&b, INFER_TYPE_F32);
	put_u64(&b, 32);
	pad(&b, 32);
	zeros(&b, 64);
	expect_reject(&b, GGUF_E_DUP_TENSOR, (int64_t)at);

	char name64[65];
	memset(name64, 'n', 64);
	name64[64] = '\0';
	header(&b, 1, 0);
	tinfo(&b, name64, 1, ne1, INFER_TYPE_F32, 0);
	zeros(&b, 64);
	expect_reject(&b, GGUF_E_NAME_LEN, 24);

	header(&b, 2, 0);
	tinfo(&b, "a", 1, ne1, INFER_TYPE_F32, 0);
	at = b.n;
	tinfo(&b, "b", 2, ne2, INFER_TYPE_F32, 16); /* aligned would be 32 */
	pad(&b, 32);
	zeros(&b, 64);
	expect_reject(&b, GGUF_E_OFFSET, (int64_t)at);

	header(&b, 2, 0);
	tinfo(&b, "a", 1, ne1, INFER_TYPE_F32, 32); /* gap before the first tensor */
	tinfo(&b, "b", 2, ne2, INFER_TYPE_F32, 64);
	pad(&b, 32);
	zeros(&b, 96);
	expect_reject(&b, GGUF_E_OFFSET, 24);

	valid_file(&b);
	b.n -= 8; /* tensor b's data cut short */
	expect_reject(&b, GGUF_E_DATA_BOUNDS, -1);
}

/* Every prefix of a valid file: rejected with a truncation-class error until
 * the last tensor's data is complete (only the final padding may be missing). */
static void test_every_truncation(void)
{
	struct bb b;
	infer_error err;

	valid_file(&b);
	size_t full = b.n, data_end = full; /* tensor b ends the file exactly */
	for (size_t n = 0; n < full; n++) {
		gguf_file *f = gguf_open_memory(b.p, n, &err);
		CU_ASSERT_PTR_NULL(f);
		gguf_close(f);
		if (f)
			continue;
		int c = err.code;
		CU_ASSERT(c == GGUF_E_TRUNCATED || c == GGUF_E_COUNT || c == GGUF_E_STRING_LEN ||
			  c == GGUF_E_DATA_BOUNDS);
		CU_ASSERT(err.offset >= 0 && (size_t)err.offset <= n);
	}
	gguf_file *f = gguf_open_memory(b.p, data_end, &err);
	CU_ASSERT_PTR_NOT_NULL(f);
	gguf_close(f);
}

/* Deterministic random corruptions: never a crash (ASan build), always either
 * a parse whose tensors lie inside the buffer or an error naming a byte. */
static void test_random_corruptions(void)
{
	struct bb b, m;
	infer_error err;
	uint64_t s = 0x9e3779b97f4a7c15ull;
	int accepted = 0, rejected = 0;

	valid_file(&b);
	for (int it = 0; it < 5000; it++) {
		m = b;
		for (int k = 0; k < 1 + it % 4; k++) {
			s = s * 6364136223846793005ull + 1442695040888963407ull;
			m.p[(s >> 33) % m.n] = (uint8_t)(s >> 20);
		}
		gguf_file *f = gguf_open_memory(m.p, m.n, &err);
		if (!f) {
			rejected++;
			CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, " at byte "));
			continue;
		}
		accepted++;
		for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
			const gguf_tensor *t = gguf_tensor_at(f, i);
			CU_ASSERT((const uint8_t *)t->data >= m.p &&
				  (const uint8_t *)t->data + t->nbytes <= m.p + m.n);
		}
		gguf_close(f);
	}
	CU_ASSERT(rejected > 0 && accepted > 0);
}

/* ---- getters -------------------------------------------------------------------- */

static void test_getters(void)
{
	struct bb b;
	infer_error err;
	uint32_t u32;
	uint64_t u64;
	int64_t i64;
	int32_t i32;
	float f32;
	int bv;
	gguf_str str;
	const gguf_kv *kv;

	header(&b, 0, 5);
	kv_u32(&b, "qwen2.block_count", 24);
	put_str(&b, "big");
	put_u32(&b, GGUF_VT_UINT64);
	put_u64(&b, UINT64_MAX);
	put_str(&b, "flag");
	put_u32(&b, GGUF_VT_BOOL);
	put(&b, "\x02", 1); /* ggml: any non-zero byte is true */
	put_str(&b, "name");
	put_u32(&b, GGUF_VT_STRING);
	put_str(&b, "qwen2");
	put_str(&b, "ids");
	put_u32(&b, GGUF_VT_ARRAY);
	put_u32(&b, GGUF_VT_INT32);
	put_u64(&b, 2);
	put_u32(&b, 5);
	put_u32(&b, (uint32_t)-6);
	gguf_file *f = gguf_open_memory(b.p, b.n, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);

	CU_ASSERT_EQUAL(gguf_get_u32(f, "qwen2.block_count", &u32, &err), 0);
	CU_ASSERT_EQUAL(u32, 24);
	CU_ASSERT_EQUAL(gguf_get_int(f, "qwen2.block_count", &i64, &err), 0);
	CU_ASSERT_EQUAL(i64, 24);
	CU_ASSERT_EQUAL(gguf_get_u32(f, "qwen2.missing", &u32, &err), GGUF_E_KEY);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "qwen2.missing"));
	CU_ASSERT_EQUAL(gguf_get_i32(f, "qwen2.block_count", &i32, &err), GGUF_E_TYPE);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "stored as u32, expected i32"));
	CU_ASSERT_EQUAL(gguf_get_u64(f, "big", &u64, &err), 0);
	CU_ASSERT_EQUAL(u64, UINT64_MAX);
	CU_ASSERT_EQUAL(gguf_get_int(f, "big", &i64, &err), GGUF_E_TYPE);
	CU_ASSERT_EQUAL(gguf_get_f32(f, "big", &f32, &err), GGUF_E_TYPE);
	CU_ASSERT_EQUAL(gguf_get_bool(f, "flag", &bv, &err), 0);
	CU_ASSERT_EQUAL(bv, 1);
	CU_ASSERT_EQUAL(gguf_get_str(f, "name", &str, &err), 0);
	CU_ASSERT(str.len == 5 && !memcmp(str.data, "qwen2", 5));
	CU_ASSERT_EQUAL(gguf_get_int(f, "name", &i64, &err), GGUF_E_TYPE);
	CU_ASSERT_EQUAL(gguf_get_arr(f, "ids", GGUF_VT_INT32, &kv, &err), 0);
	CU_ASSERT_EQUAL(kv->v.arr.n, 2);
	CU_ASSERT_EQUAL(gguf_get_arr(f, "ids", GGUF_VT_UINT32, &kv, &err), GGUF_E_TYPE);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "array of i32, expected array of u32"));
	CU_ASSERT_EQUAL(gguf_get_arr(f, "name", GGUF_VT_INT32, &kv, &err), GGUF_E_TYPE);
	CU_ASSERT_PTR_NULL(gguf_find_tensor(f, "x"));
	CU_ASSERT_PTR_NULL(gguf_kv_at(f, 5));
	CU_ASSERT_PTR_NULL(gguf_kv_at(f, -1));
	gguf_close(f);
}

static void test_open_errors(void)
{
	infer_error err;
	char path[512];

	CU_ASSERT_PTR_NULL(gguf_open("/nonexistent/x.gguf", &err));
	CU_ASSERT_EQUAL(err.code, INFER_E_IO);
	CU_ASSERT_PTR_NULL(gguf_open(tmpdir, &err)); /* a directory */
	CU_ASSERT_EQUAL(err.code, INFER_E_IO);
	tmp_path(path, sizeof(path), "empty.gguf");
	FILE *fp = fopen(path, "wb");
	CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
	fclose(fp);
	CU_ASSERT_PTR_NULL(gguf_open(path, &err));
	CU_ASSERT_EQUAL(err.code, GGUF_E_TRUNCATED);
	unlink(path);
}

/* ---- writer --------------------------------------------------------------------- */

static const char *const strs[] = { "alpha", "", "\xe6\x97\xa5\xe6\x9c\xac", "tab\tnl\n" };

/* Writes every KV kind and tensors of several types and shapes. */
static gguf_writer *make_writer(uint32_t alignment, uint8_t *payload, size_t payload_len)
{
	gguf_writer *w = gguf_writer_new(alignment);
	uint8_t raw[8] = { 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88 };
	int16_t i16s[3] = { -1, 2, -3 };
	double f64s[2] = { 1.5, -0.0 };

	CU_ASSERT_PTR_NOT_NULL_FATAL(w);
	for (int t = 0; t < GGUF_VT_COUNT; t++) {
		char key[32];
		if (t == GGUF_VT_STRING || t == GGUF_VT_ARRAY)
			continue;
		snprintf(key, sizeof(key), "scalar.%s", gguf_vtype_name((enum gguf_vtype)t));
		CU_ASSERT_EQUAL(gguf_writer_add_scalar(w, key, (enum gguf_vtype)t, raw), 0);
		snprintf(key, sizeof(key), "arr.%s", gguf_vtype_name((enum gguf_vtype)t));
		CU_ASSERT_EQUAL(gguf_writer_add_arr(w, key, (enum gguf_vtype)t, payload,
						    16 / gguf_vtype_size((enum gguf_vtype)t)), 0);
	}
	CU_ASSERT_EQUAL(gguf_writer_add_u32(w, "general.u32", 24), 0);
	CU_ASSERT_EQUAL(gguf_writer_add_i32(w, "general.i32", -24), 0);
	CU_ASSERT_EQUAL(gguf_writer_add_u64(w, "general.u64", 1ull << 40), 0);
	CU_ASSERT_EQUAL(gguf_writer_add_f32(w, "general.f32", 0.1f), 0);
	CU_ASSERT_EQUAL(gguf_writer_add_bool(w, "general.bool", 1), 0);
	CU_ASSERT_EQUAL(gguf_writer_add_str(w, "general.name", "round trip"), 0);
	CU_ASSERT_EQUAL(gguf_writer_add_str_arr(w, "tokens", strs, 4), 0);
	CU_ASSERT_EQUAL(gguf_writer_add_str_arr(w, "no.tokens", strs, 0), 0);
	CU_ASSERT_EQUAL(gguf_writer_add_arr(w, "i16s", GGUF_VT_INT16, i16s, 3), 0);
	CU_ASSERT_EQUAL(gguf_writer_add_arr(w, "f64s", GGUF_VT_FLOAT64, f64s, 2), 0);

	int64_t ne_f32[1] = { 5 }, ne_f16[2] = { 3, 2 }, ne_q40[3] = { 64, 2, 1 },
		ne_q8[4] = { 32, 1, 2, 3 }, ne_q4k[2] = { 256, 1 };
	struct { const char *name; uint32_t type, nd; int64_t *ne; } ts[] = {
		{ "f32.t", INFER_TYPE_F32, 1, ne_f32 },
		{ "f16.t", INFER_TYPE_F16, 2, ne_f16 },
		{ "q4_0.t", INFER_TYPE_Q4_0, 3, ne_q40 },
		{ "q8_0.t", INFER_TYPE_Q8_0, 4, ne_q8 },
		{ "q4_K.t", INFER_TYPE_Q4_K, 2, ne_q4k },
	};
	for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
		int64_t n = 1;
		for (uint32_t d = 0; d < ts[i].nd; d++)
			n *= ts[i].ne[d];
		uint64_t nbytes = infer_row_size(ts[i].type, ts[i].ne[0]) * (uint64_t)(n / ts[i].ne[0]);
		CU_ASSERT_FATAL(nbytes > 0 && nbytes <= payload_len);
		CU_ASSERT_EQUAL(gguf_writer_add_tensor(w, ts[i].name, ts[i].type, ts[i].nd, ts[i].ne,
						       payload + i, nbytes), 0);
	}
	return w;
}

static void check_round_trip(uint32_t alignment)
{
	uint8_t payload[4096];
	char path[512];
	infer_error err;

	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 131 + 7);
	tmp_path(path, sizeof(path), "rt.gguf");
	gguf_writer *w = make_writer(alignment, payload, sizeof(payload) - 8);
	CU_ASSERT_EQUAL_FATAL(gguf_writer_write(w, path, &err), 0);
	gguf_writer_free(w);

	gguf_file *f = gguf_open(path, &err);
	if (!f)
		fprintf(stderr, "\n  %s\n", err.msg);
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_EQUAL(gguf_version(f), 3);
	CU_ASSERT_EQUAL(gguf_alignment(f), alignment);
	CU_ASSERT_EQUAL(gguf_data_offset(f) % alignment, 0);
	/* 11 scalars + 11 arrays + 10 named KVs (+ general.alignment when not 32) */
	CU_ASSERT_EQUAL(gguf_n_kv(f), 32 + (alignment != 32));
	for (int t = 0; t < GGUF_VT_COUNT; t++) {
		char key[32];
		const gguf_kv *kv;
		if (t == GGUF_VT_STRING || t == GGUF_VT_ARRAY)
			continue;
		snprintf(key, sizeof(key), "scalar.%s", gguf_vtype_name((enum gguf_vtype)t));
		kv = gguf_find_kv(f, key);
		CU_ASSERT_PTR_NOT_NULL_FATAL(kv);
		CU_ASSERT_EQUAL(kv->type, t);
		CU_ASSERT(!memcmp(&kv->v, "\x81\x82\x83\x84\x85\x86\x87\x88",
				  gguf_vtype_size((enum gguf_vtype)t)));
		snprintf(key, sizeof(key), "arr.%s", gguf_vtype_name((enum gguf_vtype)t));
		CU_ASSERT_EQUAL_FATAL(gguf_get_arr(f, key, (enum gguf_vtype)t, &kv, &err), 0);
		CU_ASSERT_EQUAL(kv->v.arr.n * gguf_vtype_size((enum gguf_vtype)t), 16);
		CU_ASSERT(!memcmp(kv->v.arr.data, payload, 16));
	}
	uint32_t u32; int32_t i32; uint64_t u64; float f32; int bv; gguf_str s;
	const gguf_kv *kv;
	CU_ASSERT(!gguf_get_u32(f, "general.u32", &u32, &err) && u32 == 24);
	CU_ASSERT(!gguf_get_i32(f, "general.i32", &i32, &err) && i32 == -24);
	CU_ASSERT(!gguf_get_u64(f, "general.u64", &u64, &err) && u64 == 1ull << 40);
	CU_ASSERT(!gguf_get_f32(f, "general.f32", &f32, &err) && f32 == 0.1f);
	CU_ASSERT(!gguf_get_bool(f, "general.bool", &bv, &err) && bv == 1);
	CU_ASSERT(!gguf_get_str(f, "general.name", &s, &err) && s.len == 10 &&
		  !memcmp(s.data, "round trip", 10));
	CU_ASSERT_EQUAL_FATAL(gguf_get_arr(f, "tokens", GGUF_VT_STRING, &kv, &err), 0);
	CU_ASSERT_EQUAL_FATAL(kv->v.arr.n, 4);
	for (int i = 0; i < 4; i++)
		CU_ASSERT(kv->v.arr.strs[i].len == strlen(strs[i]) &&
			  !memcmp(kv->v.arr.strs[i].data, strs[i], strlen(strs[i])));
	CU_ASSERT(!gguf_get_arr(f, "no.tokens", GGUF_VT_STRING, &kv, &err) && kv->v.arr.n == 0);
	CU_ASSERT(!gguf_get_arr(f, "f64s", GGUF_VT_FLOAT64, &kv, &err) && kv->v.arr.n == 2);

	CU_ASSERT_EQUAL_FATAL(gguf_n_tensors(f), 5);
	for (int64_t i = 0; i < 5; i++) {
		const gguf_tensor *t = gguf_tensor_at(f, i);
		CU_ASSERT_EQUAL(t->offset % alignment, 0);
		CU_ASSERT(!memcmp(t->data, payload + i, t->nbytes));
		CU_ASSERT_PTR_EQUAL(gguf_find_tensor(f, t->name), t);
	}
	const gguf_tensor *t = gguf_find_tensor(f, "q8_0.t");
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT(t->n_dims == 4 && t->ne[0] == 32 && t->ne[1] == 1 && t->ne[2] == 2 && t->ne[3] == 3);
	CU_ASSERT_EQUAL(t->nbytes, 6 * 34);
	t = gguf_find_tensor(f, "q4_0.t");
	CU_ASSERT(t->n_dims == 3 && t->ne[3] == 1 && t->n_elements == 128 && t->type == INFER_TYPE_Q4_0);
	/* the last tensor is padded too, like ggml's writer */
	CU_ASSERT_EQUAL(gguf_file_size(f) % alignment, 0);
	gguf_close(f);
	unlink(path);
}

static void test_round_trip(void)
{
	check_round_trip(32);
	check_round_trip(64);
	check_round_trip(1);
	check_round_trip(512);
}

/* Failed writes leave nothing behind; errors are sticky. */
static void test_writer_errors(void)
{
	char path[512];
	infer_error err;
	struct stat st;
	float x[4] = { 0 };
	int64_t ne[1] = { 4 }, ne_bad[1] = { 16 };

	CU_ASSERT_PTR_NULL(gguf_writer_new(48)); /* not a power of two */

	gguf_writer *w = gguf_writer_new(0);
	CU_ASSERT_EQUAL(gguf_writer_add_u32(w, "general.alignment", 64), INFER_E_ARG);
	gguf_writer_free(w);

	tmp_path(path, sizeof(path), "dup.gguf");
	w = gguf_writer_new(0);
	CU_ASSERT_EQUAL(gguf_writer_add_u32(w, "k", 1), 0);
	CU_ASSERT_EQUAL(gguf_writer_add_u32(w, "k", 2), GGUF_E_DUP_KEY);
	CU_ASSERT_EQUAL(gguf_writer_add_u32(w, "other", 2), GGUF_E_DUP_KEY); /* sticky */
	CU_ASSERT_EQUAL(gguf_writer_write(w, path, &err), GGUF_E_DUP_KEY);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "duplicate key 'k'"));
	CU_ASSERT_NOT_EQUAL(stat(path, &st), 0);
	gguf_writer_free(w);

	w = gguf_writer_new(0);
	CU_ASSERT_EQUAL(gguf_writer_add_tensor(w, "t", INFER_TYPE_Q4_0, 1, ne_bad, x, 9), GGUF_E_BLOCK);
	gguf_writer_free(w);
	w = gguf_writer_new(0);
	CU_ASSERT_EQUAL(gguf_writer_add_tensor(w, "t", INFER_TYPE_F32, 1, ne, x, 15), INFER_E_ARG);
	gguf_writer_free(w);
	w = gguf_writer_new(0);
	CU_ASSERT_EQUAL(gguf_writer_add_tensor(w, "t", 4, 1, ne, x, 16), GGUF_E_TENSOR_TYPE);
	gguf_writer_free(w);

	/* unwritable destination: error, and no temporary file left in the folder */
	w = gguf_writer_new(0);
	CU_ASSERT_EQUAL(gguf_writer_add_tensor(w, "t", INFER_TYPE_F32, 1, ne, x, 16), 0);
	tmp_path(path, sizeof(path), "no/such/dir/x.gguf");
	CU_ASSERT_EQUAL(gguf_writer_write(w, path, &err), INFER_E_IO);
	/* a destination that is a directory: rename fails, the temp file is removed */
	CU_ASSERT_EQUAL(gguf_writer_write(w, tmpdir, &err), INFER_E_IO);
	gguf_writer_free(w);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s')\"", tmpdir);
	CU_ASSERT_EQUAL(system(cmd), 0);
}

int main(void)
{
	CU_pSuite s;
	int failures;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_gguf.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("gguf", NULL, NULL);
	CU_add_test(s, "hand-built valid file parses", test_valid_base);
	CU_add_test(s, "one malformed file per error code, with its byte offset", test_each_code);
	CU_add_test(s, "every truncation is a clean error", test_every_truncation);
	CU_add_test(s, "random corruptions: no crash, clean errors", test_random_corruptions);
	CU_add_test(s, "typed getters: missing key, wrong type", test_getters);
	CU_add_test(s, "open errors: missing, directory, empty", test_open_errors);
	CU_add_test(s, "writer -> reader round trip (alignment 32, 64, 1, 512)", test_round_trip);
	CU_add_test(s, "writer errors are sticky; no partial file", test_writer_errors);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = (int)CU_get_number_of_failures();
	CU_cleanup_registry();
	rmdir(tmpdir);
	return failures ? 1 : 0;
}
