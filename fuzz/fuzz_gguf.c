/* libFuzzer target for the GGUF reader: any byte string must either parse
 * into tables whose every pointer lies inside the input, or be rejected with
 * a GGUF error code and a message naming a byte offset. ASan/UBSan catch
 * out-of-bounds reads; the checks below catch lies that stay in bounds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/gguf.h"

/* A broken invariant is a finding: print it and crash so libFuzzer saves the input. */
#define REQUIRE(cond)                                                                   \
	do {                                                                             \
		if (!(cond)) {                                                           \
			fprintf(stderr, "fuzz_gguf: invariant failed: %s (%s:%d)\n", #cond, \
				__FILE__, __LINE__);                                     \
			abort();                                                         \
		}                                                                        \
	} while (0)

static const uint8_t *lo, *hi;
static volatile uint8_t sink;

/* Every pointer the reader hands out must lie inside the input, and reading
 * it must be fine (ASan checks the actual accesses). */
static void touch(const void *p, uint64_t n)
{
	const uint8_t *b = p;

	REQUIRE(n == 0 || (b >= lo && b <= hi && n <= (uint64_t)(hi - b)));
	for (uint64_t i = 0; i < n; i++)
		sink ^= b[i];
}

static void walk_kv(const gguf_file *f, const gguf_kv *kv)
{
	char key[256];
	infer_error err;
	int64_t i64;

	touch(kv->key.data, kv->key.len);
	REQUIRE(kv->key.len > 0 && kv->type < GGUF_VT_COUNT);
	if (kv->type == GGUF_VT_STRING)
		touch(kv->v.str.data, kv->v.str.len);
	if (kv->type == GGUF_VT_ARRAY) {
		REQUIRE(kv->v.arr.type != GGUF_VT_ARRAY && kv->v.arr.type < GGUF_VT_COUNT);
		if (kv->v.arr.type == GGUF_VT_STRING)
			for (uint64_t j = 0; j < kv->v.arr.n; j++)
				touch(kv->v.arr.strs[j].data, kv->v.arr.strs[j].len);
		else
			touch(kv->v.arr.data, kv->v.arr.n * gguf_vtype_size(kv->v.arr.type));
	}
	/* lookups by key must find this very KV (keys are unique); skip keys
	 * with NUL bytes, which a C-string lookup cannot name */
	if (kv->key.len < sizeof(key) && !memchr(kv->key.data, 0, kv->key.len)) {
		memcpy(key, kv->key.data, kv->key.len);
		key[kv->key.len] = '\0';
		REQUIRE(gguf_find_kv(f, key) == kv);
		gguf_get_int(f, key, &i64, &err);
	}
}

static void walk(const gguf_file *f, size_t size)
{
	uint64_t prev_end = 0;

	REQUIRE(gguf_version(f) == 2 || gguf_version(f) == 3);
	REQUIRE(gguf_data_offset(f) <= size);
	for (int64_t i = 0; i < gguf_n_kv(f); i++)
		walk_kv(f, gguf_kv_at(f, i));
	for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
		const gguf_tensor *t = gguf_tensor_at(f, i);

		REQUIRE(t->n_dims <= GGUF_MAX_DIMS && memchr(t->name, 0, GGUF_NAME_MAX));
		REQUIRE(t->offset % gguf_alignment(f) == 0 && t->offset >= prev_end);
		touch(t->data, t->nbytes);
		prev_end = t->offset + t->nbytes;
		/* a name with an embedded NUL may find another tensor by its prefix */
		const gguf_tensor *g = gguf_find_tensor(f, t->name);
		REQUIRE(g && !strcmp(g->name, t->name));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	infer_error err;
	gguf_file *f;

	lo = data;
	hi = data + size;
	f = gguf_open_memory(data, size, &err);
	if (!f) {
		REQUIRE(err.code < 0 && strlen(err.msg) > 0);
		/* every validation error names the byte it is about */
		REQUIRE(err.code == INFER_E_NOMEM || strstr(err.msg, " at byte ") != NULL);
		return 0;
	}
	walk(f, size);
	gguf_close(f);
	return 0;
}
