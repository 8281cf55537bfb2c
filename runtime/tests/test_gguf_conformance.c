/* GGUF parser conformance: walks ../shared/conformance/gguf/manifest.yaml
 * (ggml's verdict and parsed tables for every file, see its README) and
 * checks each file: same verdict, and for accepted files the same header,
 * KV pairs and tensor table. Falls back to the copy in golden/conformance/gguf
 * and passes with "skipped: reference set not found" when neither exists.
 *
 * Our verdict must equal `recommended` where the manifest gives accept or
 * reject, and `expected` (ggml) where it says "either". The files where that
 * makes us differ from ggml are listed in deliberate_diffs[] and in
 * runtime/README.md; the suite fails if the two drift apart. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <yaml.h>

#include "infer/gguf.h"
#include "infer/quant.h"

/* Files where we deliberately give another verdict than ggml (README). */
static const char *const deliberate_diffs[] = {
	"edge_huge_tensor_small_file.gguf",
	"edge_ne_overflow_wraps_to_zero.gguf",
	"edge_truncated_data_at_384.gguf",
	"edge_truncated_data_at_472.gguf",
};

/* The distinct error each rejected public file must produce. Files not in
 * this table (a hold-out set) are checked for their verdict only. */
static const struct {
	const char *file;
	int code;
} want_codes[] = {
	{ "edge_huge_tensor_small_file.gguf", GGUF_E_DATA_BOUNDS },
	{ "edge_ne_overflow_wraps_to_zero.gguf", GGUF_E_OVERFLOW },
	{ "edge_truncated_data_at_384.gguf", GGUF_E_DATA_BOUNDS },
	{ "edge_truncated_data_at_472.gguf", GGUF_E_DATA_BOUNDS },
	{ "invalid_alignment_0.gguf", GGUF_E_ALIGNMENT },
	{ "invalid_alignment_48.gguf", GGUF_E_ALIGNMENT },
	{ "invalid_alignment_string.gguf", GGUF_E_ALIGNMENT },
	{ "invalid_alignment_u64.gguf", GGUF_E_ALIGNMENT },
	{ "invalid_api_alignment64_layout32.gguf", GGUF_E_OFFSET },
	{ "invalid_api_zero_element_tensor.gguf", GGUF_E_OFFSET },
	{ "invalid_array_len_2e30p1.gguf", GGUF_E_COUNT },
	{ "invalid_array_len_2e62.gguf", GGUF_E_COUNT },
	{ "invalid_array_len_beyond_eof.gguf", GGUF_E_COUNT },
	{ "invalid_array_of_array.gguf", GGUF_E_NESTED_ARRAY },
	{ "invalid_array_str_count_2e61.gguf", GGUF_E_COUNT },
	{ "invalid_duplicate_key.gguf", GGUF_E_DUP_KEY },
	{ "invalid_duplicate_tensor_name.gguf", GGUF_E_DUP_TENSOR },
	{ "invalid_empty_file.gguf", GGUF_E_TRUNCATED },
	{ "invalid_empty_key.gguf", GGUF_E_EMPTY_KEY },
	{ "invalid_ggml_type_4.gguf", GGUF_E_TENSOR_TYPE },
	{ "invalid_ggml_type_43.gguf", GGUF_E_TENSOR_TYPE },
	{ "invalid_ggml_type_neg1.gguf", GGUF_E_TENSOR_TYPE },
	{ "invalid_key_len_2e40.gguf", GGUF_E_STRING_LEN },
	{ "invalid_key_len_beyond_eof.gguf", GGUF_E_STRING_LEN },
	{ "invalid_magic_GGUG.gguf", GGUF_E_MAGIC },
	{ "invalid_magic_byteswapped.gguf", GGUF_E_MAGIC },
	{ "invalid_magic_short.gguf", GGUF_E_TRUNCATED },
	{ "invalid_n_dims_5.gguf", GGUF_E_N_DIMS },
	{ "invalid_n_kv_2e40.gguf", GGUF_E_COUNT },
	{ "invalid_n_kv_2e62.gguf", GGUF_E_COUNT },
	{ "invalid_n_tensors_2e62.gguf", GGUF_E_COUNT },
	{ "invalid_n_tensors_neg1.gguf", GGUF_E_COUNT },
	/* the 4th tensor info is read from the data bytes: its "name length" is huge */
	{ "invalid_n_tensors_plus1.gguf", GGUF_E_STRING_LEN },
	{ "invalid_nbytes_overflow.gguf", GGUF_E_OVERFLOW },
	{ "invalid_ne_negative.gguf", GGUF_E_DIM },
	{ "invalid_ne_overflow.gguf", GGUF_E_OVERFLOW },
	{ "invalid_offset_beyond_eof.gguf", GGUF_E_DATA_BOUNDS },
	{ "invalid_offset_first_nonzero.gguf", GGUF_E_OFFSET },
	{ "invalid_offset_gap.gguf", GGUF_E_OFFSET },
	{ "invalid_offset_misaligned.gguf", GGUF_E_OFFSET },
	{ "invalid_offset_overlap.gguf", GGUF_E_OFFSET },
	{ "invalid_row_not_block_multiple.gguf", GGUF_E_BLOCK },
	{ "invalid_str_len_2e63.gguf", GGUF_E_STRING_LEN },
	{ "invalid_str_len_beyond_eof.gguf", GGUF_E_STRING_LEN },
	{ "invalid_tensor_name_64.gguf", GGUF_E_NAME_LEN },
	/* Truncations: inside a field -> TRUNCATED; where the header's counts
	 * already cannot fit in what is left -> COUNT; inside a length-prefixed
	 * string -> STRING_LEN; inside the padding before the data -> DATA_BOUNDS. */
	{ "invalid_truncated_at_12.gguf", GGUF_E_TRUNCATED },
	{ "invalid_truncated_at_142.gguf", GGUF_E_COUNT },
	{ "invalid_truncated_at_157.gguf", GGUF_E_COUNT },
	{ "invalid_truncated_at_231.gguf", GGUF_E_STRING_LEN },
	{ "invalid_truncated_at_24.gguf", GGUF_E_COUNT },
	{ "invalid_truncated_at_246.gguf", GGUF_E_TRUNCATED },
	{ "invalid_truncated_at_259.gguf", GGUF_E_TRUNCATED },
	{ "invalid_truncated_at_27.gguf", GGUF_E_COUNT },
	{ "invalid_truncated_at_275.gguf", GGUF_E_TRUNCATED },
	{ "invalid_truncated_at_37.gguf", GGUF_E_COUNT },
	{ "invalid_truncated_at_383.gguf", GGUF_E_DATA_BOUNDS },
	{ "invalid_truncated_at_6.gguf", GGUF_E_TRUNCATED },
	{ "invalid_truncated_at_67.gguf", GGUF_E_COUNT },
	{ "invalid_value_type_13.gguf", GGUF_E_VALUE_TYPE },
	{ "invalid_value_type_neg1.gguf", GGUF_E_VALUE_TYPE },
	{ "invalid_version_0.gguf", GGUF_E_VERSION },
	{ "invalid_version_1.gguf", GGUF_E_VERSION },
	{ "invalid_version_4.gguf", GGUF_E_VERSION },
	{ "invalid_version_4294967295.gguf", GGUF_E_VERSION },
};

/* ---- SHA-256 (FIPS 180-4), to tie each file to its manifest entry ------------ */

static const uint32_t sha_k[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t ror(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha_block(uint32_t h[8], const uint8_t *p)
{
	uint32_t w[64], s[8];

	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 64; i++) {
		uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
		uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	memcpy(s, h, sizeof(s));
	for (int i = 0; i < 64; i++) {
		uint32_t t1 = s[7] + (ror(s[4], 6) ^ ror(s[4], 11) ^ ror(s[4], 25)) +
			      ((s[4] & s[5]) ^ (~s[4] & s[6])) + sha_k[i] + w[i];
		uint32_t t2 = (ror(s[0], 2) ^ ror(s[0], 13) ^ ror(s[0], 22)) +
			      ((s[0] & s[1]) ^ (s[0] & s[2]) ^ (s[1] & s[2]));
		memmove(s + 1, s, 7 * sizeof(s[0]));
		s[4] += t1;
		s[0] = t1 + t2;
	}
	for (int i = 0; i < 8; i++)
		h[i] += s[i];
}

static void sha256_hex(const void *data, uint64_t len, char out[65])
{
	uint32_t h[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
			  0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };
	const uint8_t *p = data;
	uint8_t tail[128] = { 0 };
	uint64_t full = len / 64 * 64, rest = len - full;

	for (uint64_t i = 0; i < full; i += 64)
		sha_block(h, p + i);
	memcpy(tail, p + full, rest);
	tail[rest] = 0x80;
	uint64_t tl = rest + 9 <= 64 ? 64 : 128;
	for (int i = 0; i < 8; i++)
		tail[tl - 1 - i] = (uint8_t)((len * 8) >> (8 * i));
	for (uint64_t i = 0; i < tl; i += 64)
		sha_block(h, tail + i);
	for (int i = 0; i < 8; i++)
		snprintf(out + 8 * i, 9, "%08x", h[i]);
}

/* ---- YAML document helpers ---------------------------------------------------- */

static yaml_document_t doc;

static const char *scalar(yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static size_t scalar_len(yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? n->data.scalar.length : 0;
}

static yaml_node_t *get(yaml_node_t *map, const char *key)
{
	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		const char *k = scalar(yaml_document_get_node(&doc, p->key));
		if (k && !strcmp(k, key))
			return yaml_document_get_node(&doc, p->value);
	}
	return NULL;
}

static const char *get_s(yaml_node_t *map, const char *key)
{
	return scalar(get(map, key));
}

static int seq_len(yaml_node_t *n)
{
	if (!n || n->type != YAML_SEQUENCE_NODE)
		return -1;
	return (int)(n->data.sequence.items.top - n->data.sequence.items.start);
}

static yaml_node_t *seq_at(yaml_node_t *n, int i)
{
	return yaml_document_get_node(&doc, n->data.sequence.items.start[i]);
}

/* ---- comparison; every mismatch is printed and counted --------------------------- */

static int mismatches;
static const char *cur_file;

static void __attribute__((format(printf, 1, 2))) miss(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "  MISMATCH %s: ", cur_file);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	mismatches++;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
	       c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* A manifest string: plain, {hex: ...}, or {length, sha256, prefix} for long ones. */
static int str_equal(yaml_node_t *want, const char *p, uint64_t len)
{
	if (want && want->type == YAML_SCALAR_NODE)
		return scalar_len(want) == len && !memcmp(scalar(want), p, len);
	const char *hex = get_s(want, "hex");
	if (hex) {
		size_t n = strlen(hex) / 2;
		if (n != len)
			return 0;
		for (size_t i = 0; i < n; i++)
			if ((uint8_t)p[i] != (hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1])))
				return 0;
		return 1;
	}
	const char *l = get_s(want, "length"), *sha = get_s(want, "sha256");
	yaml_node_t *prefix = get(want, "prefix");
	if (!l || !sha || !prefix)
		return 0;
	char got[65];
	sha256_hex(p, len, got);
	return strtoull(l, NULL, 10) == len && !strcmp(got, sha) &&
	       scalar_len(prefix) <= len && !memcmp(scalar(prefix), p, scalar_len(prefix));
}

/* One value of type t at p (raw little-endian) against its manifest node. */
static int value_equal(yaml_node_t *want, enum gguf_vtype t, const void *p)
{
	const char *s = scalar(want);
	uint64_t u = 0;

	switch (t) {
	case GGUF_VT_BOOL:
		return s && !strcmp(s, *(const uint8_t *)p ? "true" : "false");
	case GGUF_VT_FLOAT32: {
		uint32_t bits;
		memcpy(&bits, p, 4);
		s = get_s(want, "bits");
		return s && strtoul(s, NULL, 16) == bits;
	}
	case GGUF_VT_FLOAT64: {
		uint64_t bits;
		memcpy(&bits, p, 8);
		s = get_s(want, "bits");
		return s && strtoull(s, NULL, 16) == bits;
	}
	default:
		break;
	}
	if (!s)
		return 0;
	memcpy(&u, p, gguf_vtype_size(t));
	switch (t) {
	case GGUF_VT_INT8: return strtoll(s, NULL, 10) == *(const int8_t *)p;
	case GGUF_VT_INT16: return strtoll(s, NULL, 10) == (int16_t)u;
	case GGUF_VT_INT32: return strtoll(s, NULL, 10) == (int32_t)u;
	case GGUF_VT_INT64: return strtoll(s, NULL, 10) == (int64_t)u;
	default: return strtoull(s, NULL, 10) == u;
	}
}

static void check_array(yaml_node_t *want, const gguf_kv *kv, const char *key)
{
	const char *at = get_s(want, "arr_type"), *n = get_s(want, "n");
	yaml_node_t *vals = get(want, "values");
	enum gguf_vtype et = kv->v.arr.type;

	if (!at || strcmp(at, gguf_vtype_name(et)))
		return miss("KV '%s': array of %s, manifest %s", key, gguf_vtype_name(et), at);
	if (!n || strtoull(n, NULL, 10) != kv->v.arr.n)
		return miss("KV '%s': %" PRIu64 " elements, manifest %s", key, kv->v.arr.n, n);
	int nv = seq_len(vals);
	uint64_t expect_nv = kv->v.arr.n < 16 ? kv->v.arr.n : 16;
	if (nv < 0 || (uint64_t)nv != expect_nv)
		return miss("KV '%s': manifest lists %d values, expected %" PRIu64, key, nv, expect_nv);
	for (int i = 0; i < nv; i++) {
		int ok = et == GGUF_VT_STRING ?
			 str_equal(seq_at(vals, i), kv->v.arr.strs[i].data, kv->v.arr.strs[i].len) :
			 value_equal(seq_at(vals, i), et,
				     (const uint8_t *)kv->v.arr.data + (size_t)i * gguf_vtype_size(et));
		if (!ok)
			return miss("KV '%s': element %d differs", key, i);
	}
}

static void check_kv(yaml_node_t *want, const gguf_kv *kv, int64_t i)
{
	char key[80];
	const char *type = get_s(want, "type");

	snprintf(key, sizeof(key), "#%lld", (long long)i);
	if (!str_equal(get(want, "key"), kv->key.data, kv->key.len))
		return miss("KV %lld: key differs", (long long)i);
	if (kv->key.len < 64)
		snprintf(key, sizeof(key), "%.*s", (int)kv->key.len, kv->key.data);
	if (!type || strcmp(type, gguf_vtype_name(kv->type)))
		return miss("KV '%s': type %s, manifest %s", key, gguf_vtype_name(kv->type), type);
	if (kv->type == GGUF_VT_ARRAY)
		return check_array(want, kv, key);
	int ok = kv->type == GGUF_VT_STRING ?
		 str_equal(get(want, "value"), kv->v.str.data, kv->v.str.len) :
		 value_equal(get(want, "value"), kv->type, &kv->v);
	if (!ok)
		miss("KV '%s': value differs from the manifest", key);
}

static void check_int(const char *what, yaml_node_t *want, uint64_t got)
{
	const char *s = scalar(want);

	if (!s || strtoull(s, NULL, 10) != got)
		miss("%s = %" PRIu64 ", manifest %s", what, got, s ? s : "(missing)");
}

static void check_tensor(yaml_node_t *want, const gguf_tensor *t)
{
	yaml_node_t *ne = get(want, "ne");
	const char *type = get_s(want, "type");

	if (!str_equal(get(want, "name"), t->name, strlen(t->name)))
		return miss("tensor '%s': name differs", t->name);
	check_int("type_id", get(want, "type_id"), t->type);
	if (!type || strcasecmp(type, infer_type_name(t->type)))
		miss("tensor '%s': type %s, manifest %s", t->name, infer_type_name(t->type), type);
	check_int("n_dims_stored", get(want, "n_dims_stored"), t->n_dims);
	if (seq_len(ne) != GGUF_MAX_DIMS)
		return miss("tensor '%s': manifest ne is not 4-D", t->name);
	for (int d = 0; d < GGUF_MAX_DIMS; d++)
		check_int("ne", seq_at(ne, d), (uint64_t)t->ne[d]);
	check_int("offset", get(want, "offset"), t->offset);
	check_int("size", get(want, "size"), t->nbytes);
}

static void check_tables(yaml_node_t *entry, const gguf_file *f)
{
	yaml_node_t *h = get(entry, "header"), *kvs = get(entry, "kv"), *ts = get(entry, "tensors");

	check_int("version", get(h, "version"), gguf_version(f));
	check_int("n_kv", get(h, "n_kv"), (uint64_t)gguf_n_kv(f));
	check_int("n_tensors", get(h, "n_tensors"), (uint64_t)gguf_n_tensors(f));
	check_int("alignment", get(h, "alignment"), gguf_alignment(f));
	check_int("data_offset", get(h, "data_offset"), gguf_data_offset(f));
	if (seq_len(kvs) != gguf_n_kv(f) || seq_len(ts) != gguf_n_tensors(f))
		return miss("manifest lists %d KVs / %d tensors", seq_len(kvs), seq_len(ts));
	for (int64_t i = 0; i < gguf_n_kv(f); i++)
		check_kv(seq_at(kvs, (int)i), gguf_kv_at(f, i), i);
	for (int64_t i = 0; i < gguf_n_tensors(f); i++)
		check_tensor(seq_at(ts, (int)i), gguf_tensor_at(f, i));
}

static int is_deliberate_diff(const char *file)
{
	for (size_t i = 0; i < sizeof(deliberate_diffs) / sizeof(deliberate_diffs[0]); i++)
		if (!strcmp(deliberate_diffs[i], file))
			return 1;
	return 0;
}

static int want_code(const char *file)
{
	for (size_t i = 0; i < sizeof(want_codes) / sizeof(want_codes[0]); i++)
		if (!strcmp(want_codes[i].file, file))
			return want_codes[i].code;
	return 0;
}

/* The verdict we must give: `recommended` unless it is "either". */
static int want_accept(yaml_node_t *entry)
{
	const char *rec = get_s(entry, "recommended"), *exp = get_s(entry, "expected");

	if (rec && strcmp(rec, "either"))
		return !strcmp(rec, "accept");
	return exp && !strcmp(exp, "accept");
}

/* Checks one parse result against its manifest entry; returns the mismatches. */
static int check_entry(yaml_node_t *entry, const gguf_file *f, const infer_error *err)
{
	const char *file = get_s(entry, "file"), *exp = get_s(entry, "expected");
	int before = mismatches;

	cur_file = file;
	if (want_accept(entry) != (f != NULL)) {
		miss("we %s (%s), want %s", f ? "accept" : "reject", f ? "" : err->msg,
		     want_accept(entry) ? "accept" : "reject");
		return mismatches - before;
	}
	if (!f) {
		int code = want_code(file);
		if (code && err->code != code)
			miss("error %d (%s), want %d (%s): %s", err->code, gguf_status_name(err->code),
			     code, gguf_status_name(code), err->msg);
		if (!strstr(err->msg, " at byte "))
			miss("error message names no byte offset: %s", err->msg);
	} else {
		check_tables(entry, f);
	}
	/* A verdict unlike ggml's must be one of the documented differences. */
	if ((exp && !strcmp(exp, "accept")) != (f != NULL) && !is_deliberate_diff(file))
		miss("verdict differs from ggml's but is not listed in runtime/README.md");
	return mismatches - before;
}

/* ---- fixtures ---------------------------------------------------------------- */

static char ref_dir[4096];
static yaml_node_t *files;

static int find_ref_dir(void)
{
	const char *shared = getenv("INFER_SHARED_DIR"), *src = getenv("INFER_SOURCE_DIR");
	struct stat st;

	snprintf(ref_dir, sizeof(ref_dir), "%s/conformance/gguf", shared ? shared : "../shared");
	if (!stat(ref_dir, &st))
		return 1;
	snprintf(ref_dir, sizeof(ref_dir), "%s/golden/conformance/gguf", src ? src : ".");
	return !stat(ref_dir, &st);
}

static int load_manifest(void)
{
	char path[4200];
	yaml_parser_t parser;
	FILE *fp;
	int ok;

	snprintf(path, sizeof(path), "%s/manifest.yaml", ref_dir);
	fp = fopen(path, "rb");
	if (!fp) {
		fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
		return 0;
	}
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_file(&parser, fp);
	ok = yaml_parser_load(&parser, &doc);
	if (!ok)
		fprintf(stderr, "%s: YAML error at line %zu: %s\n", path,
			parser.problem_mark.line + 1, parser.problem ? parser.problem : "?");
	yaml_parser_delete(&parser);
	fclose(fp);
	if (!ok)
		return 0;
	files = get(yaml_document_get_root_node(&doc), "files");
	return seq_len(files) > 0;
}

static uint8_t *read_all(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *buf = NULL;
	long n;

	if (!fp)
		return NULL;
	if (!fseek(fp, 0, SEEK_END) && (n = ftell(fp)) >= 0 && !fseek(fp, 0, SEEK_SET)) {
		buf = malloc((size_t)n + 1);
		if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
			free(buf);
			buf = NULL;
		}
		*len = (size_t)n;
	}
	fclose(fp);
	return buf;
}

static yaml_node_t *entry_for(const char *file)
{
	for (int i = 0; i < seq_len(files); i++)
		if (!strcmp(get_s(seq_at(files, i), "file"), file))
			return seq_at(files, i);
	return NULL;
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_every_file(void)
{
	int n = seq_len(files), accepted = 0, diffs = 0;

	for (int i = 0; i < n; i++) {
		yaml_node_t *e = seq_at(files, i);
		const char *file = get_s(e, "file"), *sha = get_s(e, "sha256");
		char path[4400], got[65];
		size_t len = 0;
		uint8_t *bytes;
		infer_error err;

		CU_ASSERT_PTR_NOT_NULL_FATAL(file);
		cur_file = file;
		snprintf(path, sizeof(path), "%s/%s", ref_dir, file);
		bytes = read_all(path, &len);
		if (!bytes) {
			miss("cannot read %s", path);
			continue;
		}
		sha256_hex(bytes, len, got);
		if (!sha || strcmp(sha, got))
			miss("sha256 %s differs from the manifest", got);
		/* The mmap path and the memory path must agree. */
		gguf_file *f = gguf_open(path, &err);
		infer_error err2;
		gguf_file *g = gguf_open_memory(bytes, len, &err2);
		if ((f == NULL) != (g == NULL) || (!f && err.code != err2.code))
			miss("gguf_open and gguf_open_memory disagree");
		check_entry(e, f, &err);
		accepted += f != NULL;
		diffs += (f != NULL) != !strcmp(get_s(e, "expected"), "accept");
		gguf_close(f);
		gguf_close(g);
		free(bytes);
	}
	printf("\n  %d files, %d accepted, %d deliberate verdict differences from ggml, %d mismatches\n",
	       n, accepted, diffs, mismatches);
	CU_ASSERT_EQUAL(mismatches, 0);
	CU_ASSERT(n > 0);
}

/* ---- the writer against ggml's writer ------------------------------------------ */

static int same_kv(const gguf_kv *a, const gguf_kv *b)
{
	if (a->key.len != b->key.len || memcmp(a->key.data, b->key.data, a->key.len) ||
	    a->type != b->type)
		return 0;
	if (a->type == GGUF_VT_STRING)
		return a->v.str.len == b->v.str.len && !memcmp(a->v.str.data, b->v.str.data, a->v.str.len);
	if (a->type != GGUF_VT_ARRAY)
		return !memcmp(&a->v, &b->v, gguf_vtype_size(a->type));
	if (a->v.arr.type != b->v.arr.type || a->v.arr.n != b->v.arr.n)
		return 0;
	if (a->v.arr.type != GGUF_VT_STRING)
		return !memcmp(a->v.arr.data, b->v.arr.data, a->v.arr.n * gguf_vtype_size(a->v.arr.type));
	for (uint64_t i = 0; i < a->v.arr.n; i++)
		if (a->v.arr.strs[i].len != b->v.arr.strs[i].len ||
		    memcmp(a->v.arr.strs[i].data, b->v.arr.strs[i].data, a->v.arr.strs[i].len))
			return 0;
	return 1;
}

static int same_tensor(const gguf_tensor *a, const gguf_tensor *b)
{
	return !strcmp(a->name, b->name) && a->type == b->type && a->n_dims == b->n_dims &&
	       !memcmp(a->ne, b->ne, sizeof(a->ne)) && a->offset == b->offset &&
	       a->nbytes == b->nbytes && !memcmp(a->data, b->data, a->nbytes);
}

/* Rewrites f with our writer (same alignment, every KV and tensor in order). */
static int rewrite(const gguf_file *f, const char *path, infer_error *err)
{
	gguf_writer *w = gguf_writer_new(gguf_alignment(f));

	for (int64_t i = 0; i < gguf_n_kv(f); i++)
		gguf_writer_add_kv(w, gguf_kv_at(f, i));
	for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
		const gguf_tensor *t = gguf_tensor_at(f, i);
		gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->nbytes);
	}
	int rc = gguf_writer_write(w, path, err); /* reports the first failed add */
	gguf_writer_free(w);
	return rc;
}

/* Every accepted file, rewritten by our writer, reads back with identical
 * tables and tensor bytes; files that ggml's writer produced come out byte
 * for byte identical (ggml's writer is the reference layout). */
static void test_writer_reproduces(void)
{
	char out[] = "/tmp/test_gguf_conf_XXXXXX";
	int fd = mkstemp(out), identical = 0, rewritten = 0;

	CU_ASSERT_FATAL(fd >= 0);
	close(fd);
	for (int i = 0; i < seq_len(files); i++) {
		yaml_node_t *e = seq_at(files, i);
		const char *file = get_s(e, "file"), *origin = get_s(e, "origin");
		char path[4400];
		infer_error err;
		size_t la = 0, lb = 0;

		cur_file = file;
		snprintf(path, sizeof(path), "%s/%s", ref_dir, file);
		gguf_file *f = gguf_open(path, &err);
		if (!f)
			continue;
		if (rewrite(f, out, &err)) {
			miss("writer failed: %s", err.msg);
			gguf_close(f);
			continue;
		}
		rewritten++;
		gguf_file *g = gguf_open(out, &err);
		if (!g) {
			miss("rewritten file rejected: %s", err.msg);
		} else {
			int ok = gguf_n_kv(g) == gguf_n_kv(f) && gguf_n_tensors(g) == gguf_n_tensors(f);
			for (int64_t k = 0; ok && k < gguf_n_kv(f); k++)
				ok = same_kv(gguf_kv_at(f, k), gguf_kv_at(g, k));
			for (int64_t k = 0; ok && k < gguf_n_tensors(f); k++)
				ok = same_tensor(gguf_tensor_at(f, k), gguf_tensor_at(g, k));
			if (!ok)
				miss("rewritten file differs in its tables or tensor bytes");
		}
		uint8_t *a = read_all(path, &la), *b = read_all(out, &lb);
		if (origin && !strcmp(origin, "ggml-writer") && !strcmp(get_s(e, "category"), "valid")) {
			if (la != lb || memcmp(a, b, la))
				miss("not byte-identical to ggml's writer (%zu vs %zu bytes)", lb, la);
			else
				identical++;
		}
		free(a);
		free(b);
		gguf_close(g);
		gguf_close(f);
	}
	unlink(out);
	printf("\n  %d files rewritten, %d byte-identical to ggml's writer\n", rewritten, identical);
	CU_ASSERT(rewritten > 0);
	CU_ASSERT_EQUAL(mismatches, 0);
}

/* Opens a file of the set into memory; NULL (and a skip note) when absent. */
static uint8_t *load_fixture(const char *file, size_t *len)
{
	char path[4400];

	snprintf(path, sizeof(path), "%s/%s", ref_dir, file);
	return read_all(path, len);
}

/* The comparison can fail: a still-valid file whose KV value, tensor type or
 * header differs from its manifest entry must produce mismatches, and a
 * corrupted copy must be rejected with the expected distinct code. */
static void test_suite_can_fail(void)
{
	yaml_node_t *e = entry_for("valid_crafted_base.gguf");
	size_t len = 0;
	uint8_t *base = load_fixture("valid_crafted_base.gguf", &len);
	infer_error err;

	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(base);
	int saved = mismatches;
	fprintf(stderr, "\n  (the MISMATCH lines below are provoked on purpose)\n");

	/* unchanged copy: no mismatch */
	gguf_file *f = gguf_open_memory(base, len, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_EQUAL(check_entry(e, f, &err), 0);
	gguf_close(f);

	/* llama.block_count 2 -> 3: valid file, KV table must differ */
	const gguf_kv *kv;
	f = gguf_open_memory(base, len, &err);
	CU_ASSERT_EQUAL_FATAL(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_VT_STRING, &kv, &err), 0);
	uint32_t bc;
	CU_ASSERT_EQUAL_FATAL(gguf_get_u32(f, "llama.block_count", &bc, &err), 0);
	size_t at = (size_t)(gguf_find_kv(f, "llama.block_count")->offset + 8 +
			     strlen("llama.block_count") + 4);
	gguf_close(f);
	base[at] ^= 1;
	f = gguf_open_memory(base, len, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT(check_entry(e, f, &err) > 0);
	gguf_close(f);
	base[at] ^= 1;

	/* first tensor's type q4_0 (2) -> q8_0 (8): 102 instead of 54 bytes, so the
	 * next tensor's offset 64 now overlaps it -> GGUF_E_OFFSET */
	f = gguf_open_memory(base, len, &err);
	size_t type_at = (size_t)(gguf_tensor_at(f, 0)->info_offset + 8 + strlen("token_embd.weight") + 4 + 2 * 8);
	gguf_close(f);
	CU_ASSERT_EQUAL(base[type_at], 2);
	base[type_at] = 8;
	f = gguf_open_memory(base, len, &err);
	CU_ASSERT_PTR_NULL(f);
	CU_ASSERT_EQUAL(err.code, GGUF_E_OFFSET);
	CU_ASSERT(check_entry(e, f, &err) > 0);
	gguf_close(f);
	base[type_at] = 2;

	/* bad magic in a copy */
	base[0] = 'X';
	f = gguf_open_memory(base, len, &err);
	CU_ASSERT_PTR_NULL(f);
	CU_ASSERT_EQUAL(err.code, GGUF_E_MAGIC);
	CU_ASSERT(check_entry(e, f, &err) > 0);
	base[0] = 'G';

	/* an invalid file compared against an entry that wants another code */
	yaml_node_t *inv = entry_for("invalid_version_4.gguf");
	CU_ASSERT_PTR_NOT_NULL_FATAL(inv);
	base[4] = 9;
	f = gguf_open_memory(base, len, &err);
	CU_ASSERT_PTR_NULL(f);
	CU_ASSERT_EQUAL(err.code, GGUF_E_VERSION);
	CU_ASSERT_EQUAL(check_entry(inv, f, &err), 0); /* right code: no mismatch */
	err.code = GGUF_E_MAGIC;
	CU_ASSERT(check_entry(inv, NULL, &err) > 0);   /* wrong code: caught */

	/* the SHA-256 used to tie files to entries: FIPS 180-4 test vector "abc" */
	char hex[65];
	sha256_hex("abc", 3, hex);
	CU_ASSERT_STRING_EQUAL(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	free(base);
	mismatches = saved; /* the provoked mismatches are expected */
}

int main(void)
{
	CU_pSuite s;
	int failures;

	if (!find_ref_dir()) {
		printf("test_gguf_conformance: skipped: reference set not found\n");
		return 0;
	}
	if (!load_manifest()) {
		fprintf(stderr, "test_gguf_conformance: cannot load %s/manifest.yaml\n", ref_dir);
		return 1;
	}
	printf("test_gguf_conformance: using %s\n", ref_dir);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("gguf_conformance", NULL, NULL);
	CU_add_test(s, "every manifest file: verdict, code, header, KVs, tensors", test_every_file);
	CU_add_test(s, "mutated copies make the suite fail", test_suite_can_fail);
	CU_add_test(s, "our writer reproduces every accepted file (ggml-written: byte for byte)",
		    test_writer_reproduces);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = (int)CU_get_number_of_failures();
	CU_cleanup_registry();
	yaml_document_delete(&doc);
	return failures ? 1 : 0;
}
