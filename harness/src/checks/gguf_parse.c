/* gguf_parse: the runtime's GGUF reader against ggml's verdict on one file of
 * the parser corpus (../shared/conformance/gguf, copied to golden/).
 *
 * params (one check per manifest entry, see specs/gguf.yaml):
 *   golden: the .gguf file
 *   entry:  its manifest entry (expected / recommended verdict, header, kv, tensors)
 *   verdict: "recommended" (default: our reader is a strict loader that also
 *            checks the data section) or "expected" (ggml's metadata-only verdict)
 *   verify_sha256: true (default) checks the file against the manifest digest first
 *
 * Pass: the reader rejects what must be rejected and accepts what must be
 * accepted with the same header, key/value pairs and tensor infos ggml
 * reported. "either" accepts both verdicts (tables are still compared when
 * the file is accepted). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "infer/gguf.h"
#include "sha256.h"

#define MAX_MISMATCHES 20

struct diff {
	json_t *list; /* array of strings */
	size_t n;
};

__attribute__((format(printf, 2, 3)))
static void mismatch(struct diff *d, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	d->n++;
	if (json_array_size(d->list) >= MAX_MISMATCHES)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	json_array_append_new(d->list, json_string(buf));
}

/* The manifest writes integers as numbers, or as strings when they do not fit int64. */
static int int_matches(const json_t *want, int is_signed, int64_t s, uint64_t u)
{
	char got[32], w[32];

	if (is_signed)
		snprintf(got, sizeof(got), "%" PRId64, s);
	else
		snprintf(got, sizeof(got), "%" PRIu64, u);
	if (json_is_integer(want))
		snprintf(w, sizeof(w), "%" JSON_INTEGER_FORMAT, json_integer_value(want));
	else if (json_is_string(want))
		snprintf(w, sizeof(w), "%s", json_string_value(want));
	else
		return 0;
	return strcmp(got, w) == 0;
}

static int hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A manifest string: plain, {hex: ...}, or {length, sha256, prefix} for long ones. */
static int str_matches(const json_t *want, const char *data, uint64_t len)
{
	if (json_is_string(want))
		return json_string_length(want) == len && memcmp(json_string_value(want), data, len) == 0;
	if (json_is_string(json_object_get(want, "hex"))) {
		const char *h = json_string_value(json_object_get(want, "hex"));
		uint64_t i;

		if (strlen(h) != 2 * len)
			return 0;
		for (i = 0; i < len; i++)
			if (hex_val(h[2 * i]) < 0 || hex_val(h[2 * i + 1]) < 0 ||
			    (unsigned char)data[i] != (hex_val(h[2 * i]) << 4 | hex_val(h[2 * i + 1])))
				return 0;
		return 1;
	}
	if (json_is_integer(json_object_get(want, "length"))) {
		const char *prefix = json_string_value(json_object_get(want, "prefix"));
		const char *sha = json_string_value(json_object_get(want, "sha256"));
		char got[65];

		if ((uint64_t)json_integer_value(json_object_get(want, "length")) != len)
			return 0;
		if (prefix && (strlen(prefix) > len || memcmp(prefix, data, strlen(prefix))))
			return 0;
		if (!sha)
			return 0;
		sha256_hex(data, len, got);
		return strcmp(got, sha) == 0;
	}
	return 0;
}

/* f32/f64 values are compared through the bit pattern the manifest records. */
static int float_matches(const json_t *want, uint64_t bits)
{
	const char *b = json_string_value(json_object_get(want, "bits"));

	return b && strtoull(b, NULL, 16) == bits;
}

static const char *type_short(enum gguf_vtype t)
{
	static const char *const n[] = { "u8", "i8", "u16", "i16", "u32", "i32", "f32",
					 "bool", "str", "arr", "u64", "i64", "f64" };

	return (unsigned)t < GGUF_VT_COUNT ? n[t] : "?";
}

/* Element i of a fixed-size value at p (little-endian, unaligned). */
static int scalar_matches(const json_t *want, enum gguf_vtype t, const unsigned char *p)
{
	uint64_t u = 0;
	size_t i, n = gguf_vtype_size(t);

	for (i = 0; i < n; i++)
		u |= (uint64_t)p[i] << (8 * i);
	switch (t) {
	case GGUF_VT_UINT8: case GGUF_VT_UINT16: case GGUF_VT_UINT32: case GGUF_VT_UINT64:
		return int_matches(want, 0, 0, u);
	case GGUF_VT_INT8:
		return int_matches(want, 1, (int8_t)u, 0);
	case GGUF_VT_INT16:
		return int_matches(want, 1, (int16_t)u, 0);
	case GGUF_VT_INT32:
		return int_matches(want, 1, (int32_t)u, 0);
	case GGUF_VT_INT64:
		return int_matches(want, 1, (int64_t)u, 0);
	case GGUF_VT_FLOAT32: case GGUF_VT_FLOAT64:
		return float_matches(want, u);
	case GGUF_VT_BOOL:
		return json_is_boolean(want) && json_is_true(want) == (u != 0);
	default:
		return 0;
	}
}

/* Raw bytes of a scalar kv, for scalar_matches. */
static const unsigned char *kv_bytes(const gguf_kv *kv, unsigned char buf[8])
{
	memset(buf, 0, 8);
	memcpy(buf, &kv->v, gguf_vtype_size(kv->type) <= 8 ? gguf_vtype_size(kv->type) : 8);
	return buf;
}

static void compare_value(struct diff *d, const char *key, const gguf_kv *kv, const json_t *want)
{
	const json_t *vals;
	unsigned char buf[8];
	size_t i;

	if (kv->type == GGUF_VT_STRING) {
		if (!str_matches(json_object_get(want, "value"), kv->v.str.data, kv->v.str.len))
			mismatch(d, "kv %s: string value differs", key);
		return;
	}
	if (kv->type != GGUF_VT_ARRAY) {
		/* Host byte order is little-endian on every platform we build for. */
		if (!scalar_matches(json_object_get(want, "value"), kv->type, kv_bytes(kv, buf)))
			mismatch(d, "kv %s: %s value differs", key, type_short(kv->type));
		return;
	}
	if (strcmp(type_short(kv->v.arr.type), json_string_value(json_object_get(want, "arr_type")) ?
							 json_string_value(json_object_get(want, "arr_type")) : "")) {
		mismatch(d, "kv %s: array of %s, manifest says %s", key, type_short(kv->v.arr.type),
			 json_string_value(json_object_get(want, "arr_type")));
		return;
	}
	if (!int_matches(json_object_get(want, "n"), 0, 0, kv->v.arr.n)) {
		mismatch(d, "kv %s: array length %" PRIu64 " differs from the manifest", key, kv->v.arr.n);
		return;
	}
	vals = json_object_get(want, "values");
	for (i = 0; i < json_array_size(vals) && i < kv->v.arr.n; i++) {
		const json_t *w = json_array_get(vals, i);
		int ok;

		if (kv->v.arr.type == GGUF_VT_STRING)
			ok = str_matches(w, kv->v.arr.strs[i].data, kv->v.arr.strs[i].len);
		else
			ok = scalar_matches(w, kv->v.arr.type, (const unsigned char *)kv->v.arr.data +
									 i * gguf_vtype_size(kv->v.arr.type));
		if (!ok) {
			mismatch(d, "kv %s: array element %zu differs", key, i);
			return;
		}
	}
}

static void compare_kvs(struct diff *d, const gguf_file *f, const json_t *kvs)
{
	size_t i;

	for (i = 0; i < json_array_size(kvs) && (int64_t)i < gguf_n_kv(f); i++) {
		const json_t *want = json_array_get(kvs, i);
		const gguf_kv *kv = gguf_kv_at(f, (int64_t)i);
		const json_t *wk = json_object_get(want, "key");
		char key[80];

		snprintf(key, sizeof(key), "#%zu '%.*s'", i, (int)(kv->key.len < 48 ? kv->key.len : 48),
			 kv->key.data);
		if (!str_matches(wk, kv->key.data, kv->key.len)) {
			mismatch(d, "kv %s: key differs from the manifest", key);
			continue;
		}
		if (strcmp(type_short(kv->type), json_string_value(json_object_get(want, "type")) ?
							 json_string_value(json_object_get(want, "type")) : "")) {
			mismatch(d, "kv %s: type %s, manifest says %s", key, type_short(kv->type),
				 json_string_value(json_object_get(want, "type")));
			continue;
		}
		compare_value(d, key, kv, want);
	}
}

static void compare_tensors(struct diff *d, const gguf_file *f, const json_t *ts)
{
	size_t i, j;

	for (i = 0; i < json_array_size(ts) && (int64_t)i < gguf_n_tensors(f); i++) {
		const json_t *w = json_array_get(ts, i), *ne = json_object_get(w, "ne");
		const gguf_tensor *t = gguf_tensor_at(f, (int64_t)i);

		if (!str_matches(json_object_get(w, "name"), t->name, strlen(t->name))) {
			mismatch(d, "tensor #%zu '%s': name differs from the manifest", i, t->name);
			continue;
		}
		if (!int_matches(json_object_get(w, "type_id"), 0, 0, t->type))
			mismatch(d, "tensor '%s': type id %u differs from the manifest", t->name, t->type);
		if (!int_matches(json_object_get(w, "n_dims_stored"), 0, 0, t->n_dims))
			mismatch(d, "tensor '%s': n_dims %u differs from the manifest", t->name, t->n_dims);
		for (j = 0; j < GGUF_MAX_DIMS; j++)
			if (!int_matches(json_array_get(ne, j), 1, t->ne[j], 0))
				mismatch(d, "tensor '%s': ne[%zu] = %" PRId64 " differs from the manifest", t->name,
					 j, t->ne[j]);
		if (!int_matches(json_object_get(w, "offset"), 0, 0, t->offset))
			mismatch(d, "tensor '%s': offset %" PRIu64 " differs from the manifest", t->name, t->offset);
		if (!int_matches(json_object_get(w, "size"), 0, 0, t->nbytes))
			mismatch(d, "tensor '%s': size %" PRIu64 " differs from the manifest", t->name, t->nbytes);
	}
}

static void compare_header(struct diff *d, const gguf_file *f, const json_t *h)
{
	if (!int_matches(json_object_get(h, "version"), 0, 0, gguf_version(f)))
		mismatch(d, "header: version %u differs from the manifest", gguf_version(f));
	if (!int_matches(json_object_get(h, "n_kv"), 1, gguf_n_kv(f), 0))
		mismatch(d, "header: n_kv %" PRId64 " differs from the manifest", gguf_n_kv(f));
	if (!int_matches(json_object_get(h, "n_tensors"), 1, gguf_n_tensors(f), 0))
		mismatch(d, "header: n_tensors %" PRId64 " differs from the manifest", gguf_n_tensors(f));
	if (!int_matches(json_object_get(h, "alignment"), 0, 0, gguf_alignment(f)))
		mismatch(d, "header: alignment %u differs from the manifest", gguf_alignment(f));
	/* Without tensors ggml reports the unrounded end of the KV section, an
	 * artefact of its reader, not a property of the file (corpus README). */
	if (gguf_n_tensors(f) > 0 && !int_matches(json_object_get(h, "data_offset"), 0, 0, gguf_data_offset(f)))
		mismatch(d, "header: data_offset %" PRIu64 " differs from the manifest", gguf_data_offset(f));
}

static int verify_digest(const char *path, const char *want, char *why, size_t n)
{
	FILE *fp = fopen(path, "rb");
	char got[65];
	unsigned char *buf;
	long len;

	if (!fp)
		return snprintf(why, n, "cannot open %s", path), -1;
	fseek(fp, 0, SEEK_END);
	len = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	buf = malloc(len > 0 ? (size_t)len : 1);
	if (!buf || fread(buf, 1, (size_t)len, fp) != (size_t)len) {
		free(buf);
		fclose(fp);
		return snprintf(why, n, "cannot read %s", path), -1;
	}
	fclose(fp);
	sha256_hex(buf, (size_t)len, got);
	free(buf);
	if (strcmp(got, want))
		return snprintf(why, n, "golden file %s has sha256 %.16s..., manifest says %.16s...", path, got,
				want), -1;
	return 0;
}

static void run(const struct check *c, const char *backend, struct check_result *r)
{
	const char *path = check_param_str(c, "golden", NULL);
	const json_t *entry = json_object_get(c->params, "entry");
	const char *vkey = check_param_str(c, "verdict", "recommended");
	const char *want = json_string_value(json_object_get(entry, vkey));
	const char *sha = json_string_value(json_object_get(entry, "sha256"));
	infer_error e = { 0 };
	struct diff d = { json_array(), 0 };
	gguf_file *f;
	char why[512];

	r->details = json_pack("{s:s, s:s?}", "verdict_key", vkey, "expected", want);
	if (!path || !want) {
		check_result_set(r, CHECK_ERROR, "manifest entry has no '%s' verdict or no file", vkey);
		goto out;
	}
	if (json_object_get(c->params, "verify_sha256") != json_false() && sha &&
	    verify_digest(path, sha, why, sizeof(why))) {
		check_result_set(r, CHECK_ERROR, "%s", why);
		goto out;
	}
	f = gguf_open(path, &e);
	json_object_set_new(r->details, "got", json_string(f ? "accept" : "reject"));
	if (!f) {
		json_object_set_new(r->details, "error", json_string(e.msg));
		json_object_set_new(r->details, "error_code", json_integer(e.code));
		if (!strcmp(want, "accept"))
			check_result_set(r, CHECK_FAIL, "rejected a file ggml accepts: %s", e.msg);
		else
			check_result_set(r, CHECK_PASS, "rejected (%s): %s", want, e.msg);
		goto out;
	}
	if (!strcmp(want, "reject")) {
		check_result_set(r, CHECK_FAIL, "accepted a file that must be rejected: %s",
				 json_string_value(json_object_get(entry, "description")));
		gguf_close(f);
		goto out;
	}
	compare_header(&d, f, json_object_get(entry, "header"));
	compare_kvs(&d, f, json_object_get(entry, "kv"));
	compare_tensors(&d, f, json_object_get(entry, "tensors"));
	gguf_close(f);
	json_object_set(r->details, "differences", d.list);
	if (d.n)
		check_result_set(r, CHECK_FAIL, "%zu mismatch(es) with ggml's tables: %s", d.n,
				 json_string_value(json_array_get(d.list, 0)));
	else
		check_result_set(r, CHECK_PASS, "accepted (%s); header, %zu kv and %zu tensors match", want,
				 json_array_size(json_object_get(entry, "kv")),
				 json_array_size(json_object_get(entry, "tensors")));
out:
	json_decref(d.list);
}

static int validate(const json_t *params, const json_t *tol, infer_error *err)
{
	static const char *const keys[] = { "golden", "entry", "verdict", "verify_sha256" };
	const char *k, *v;
	json_t *x;
	size_t i;

	json_object_foreach((json_t *)params, k, x) {
		for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (!strcmp(k, keys[i]))
				break;
		if (i == sizeof(keys) / sizeof(keys[0]))
			return infer_error_set(err, INFER_E_ARG, -1,
					       "%s: unknown parameter (golden, entry, verdict, verify_sha256)", k);
	}
	if (!json_is_string(json_object_get(params, "golden")))
		return infer_error_set(err, INFER_E_ARG, -1, "golden: input path required");
	if (!json_is_object(json_object_get(params, "entry")))
		return infer_error_set(err, INFER_E_ARG, -1,
				       "entry: gguf_parse expands over the corpus manifest (expand: {manifest: ...})");
	v = json_string_value(json_object_get(params, "verdict"));
	if (json_object_get(params, "verdict") && (!v || (strcmp(v, "recommended") && strcmp(v, "expected"))))
		return infer_error_set(err, INFER_E_ARG, -1, "verdict: 'recommended' or 'expected'");
	x = json_object_get(params, "verify_sha256");
	if (x && !json_is_boolean(x))
		return infer_error_set(err, INFER_E_ARG, -1, "verify_sha256: true or false");
	if (tol)
		return infer_error_set(err, INFER_E_ARG, -1, "tolerance: gguf_parse compares exactly, no tolerance");
	return 0;
}

const struct check_kind check_kind_gguf_parse = {
	.name = "gguf_parse",
	.validate = validate,
	.run = run,
};
