/* infer inspect FILE.gguf [--json]: the metadata and the tensor table.
 *
 * Text mode is for people (one line per KV and per tensor, long values
 * shortened); --json is for programs: one object
 *   {"version", "alignment", "data_offset", "metadata": {key: value},
 *    "tensors": [{"name", "type", "dims", "offset", "nbytes"}]}
 * written with jansson. Arrays longer than 64 elements are summarised as
 * {"array_type", "length"}. Values JSON cannot carry exactly are spelled out:
 * a u64 above INT64_MAX as a decimal string, NaN/Inf as "nan"/"inf"/"-inf",
 * a string (or key) that is not valid UTF-8 as {"hex": "..."} ("hex:..." for keys). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "commands.h"
#include "infer/gguf.h"
#include "infer/quant.h"

#define JSON_ARRAY_MAX 64
#define TEXT_STR_MAX 60
#define TEXT_ARR_MAX 8

static void usage(FILE *out)
{
	fprintf(out,
		"usage: infer inspect FILE.gguf [--json]\n"
		"  Prints the GGUF header, every metadata key/value and the tensor table\n"
		"  (name, type, dims, offset in the data section, bytes).\n"
		"  --json  one JSON object: version, alignment, data_offset, metadata, tensors\n"
		"exit: 0 ok, 1 cannot read the file, 2 usage error or malformed GGUF\n"
		"      (one line on stderr: error: FILE: WHAT at byte OFFSET)\n");
}

/* ---- JSON ----------------------------------------------------------------------- */

static json_t *hex_of(const char *p, uint64_t n)
{
	char *hex = malloc(2 * n + 1);
	json_t *j;

	if (!hex)
		return NULL;
	for (uint64_t i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", (uint8_t)p[i]);
	hex[2 * n] = '\0';
	j = json_pack("{s:s}", "hex", hex);
	free(hex);
	return j;
}

static json_t *str_json(const char *p, uint64_t n)
{
	json_t *j = json_stringn(p, n); /* NULL when not valid UTF-8 */

	return j ? j : hex_of(p, n);
}

static json_t *real_json(double v)
{
	if (isnan(v))
		return json_string("nan");
	if (isinf(v))
		return json_string(v > 0 ? "inf" : "-inf");
	return json_real(v);
}

/* One fixed-size value read from raw little-endian bytes. */
static json_t *scalar_json(enum gguf_vtype t, const void *p)
{
	union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
		uint64_t u64; int64_t i64; float f32; double f64; } v;
	char buf[32];

	memcpy(&v, p, gguf_vtype_size(t));
	switch (t) {
	case GGUF_VT_UINT8: return json_integer(v.u8);
	case GGUF_VT_INT8: return json_integer(v.i8);
	case GGUF_VT_UINT16: return json_integer(v.u16);
	case GGUF_VT_INT16: return json_integer(v.i16);
	case GGUF_VT_UINT32: return json_integer(v.u32);
	case GGUF_VT_INT32: return json_integer(v.i32);
	case GGUF_VT_INT64: return json_integer(v.i64);
	case GGUF_VT_UINT64:
		if (v.u64 <= INT64_MAX)
			return json_integer((json_int_t)v.u64);
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v.u64);
		return json_string(buf);
	case GGUF_VT_FLOAT32: return real_json(v.f32);
	case GGUF_VT_FLOAT64: return real_json(v.f64);
	case GGUF_VT_BOOL: return json_boolean(v.u8 != 0);
	default: return NULL;
	}
}

static json_t *array_json(const gguf_kv *kv)
{
	enum gguf_vtype et = kv->v.arr.type;
	json_t *a;

	if (kv->v.arr.n > JSON_ARRAY_MAX)
		return json_pack("{s:s,s:I}", "array_type", gguf_vtype_name(et),
				 "length", (json_int_t)kv->v.arr.n);
	a = json_array();
	for (uint64_t i = 0; a && i < kv->v.arr.n; i++) {
		json_t *e = et == GGUF_VT_STRING ?
			    str_json(kv->v.arr.strs[i].data, kv->v.arr.strs[i].len) :
			    scalar_json(et, (const uint8_t *)kv->v.arr.data + i * gguf_vtype_size(et));
		if (json_array_append_new(a, e)) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static json_t *value_json(const gguf_kv *kv)
{
	if (kv->type == GGUF_VT_STRING)
		return str_json(kv->v.str.data, kv->v.str.len);
	if (kv->type == GGUF_VT_ARRAY)
		return array_json(kv);
	return scalar_json(kv->type, &kv->v);
}

static int add_kv(json_t *meta, const gguf_kv *kv)
{
	json_t *v = value_json(kv);

	if (!v)
		return -1;
	if (!json_object_setn_new(meta, kv->key.data, kv->key.len, v))
		return 0;
	/* key is not valid UTF-8: spell it in hex, v was consumed by the failed call */
	json_t *h = hex_of(kv->key.data, kv->key.len);
	char *key;
	int rc = -1;
	if (h && asprintf(&key, "hex:%s", json_string_value(json_object_get(h, "hex"))) >= 0) {
		rc = json_object_set_new(meta, key, value_json(kv));
		free(key);
	}
	json_decref(h);
	return rc;
}

static json_t *tensor_json(const gguf_tensor *t)
{
	json_t *dims = json_array();

	for (uint32_t d = 0; dims && d < t->n_dims; d++)
		json_array_append_new(dims, json_integer(t->ne[d]));
	return json_pack("{s:o,s:s,s:o,s:I,s:I}", "name", str_json(t->name, strlen(t->name)),
			 "type", infer_type_name(t->type), "dims", dims,
			 "offset", (json_int_t)t->offset, "nbytes", (json_int_t)t->nbytes);
}

static int print_json(const gguf_file *f)
{
	json_t *meta = json_object(), *tensors = json_array();
	json_t *root = json_pack("{s:i,s:i,s:I,s:o,s:o}", "version", (int)gguf_version(f),
				 "alignment", (int)gguf_alignment(f),
				 "data_offset", (json_int_t)gguf_data_offset(f),
				 "metadata", meta, "tensors", tensors);
	int rc = root ? 0 : -1;

	for (int64_t i = 0; !rc && i < gguf_n_kv(f); i++)
		rc = add_kv(meta, gguf_kv_at(f, i));
	for (int64_t i = 0; !rc && i < gguf_n_tensors(f); i++)
		rc = json_array_append_new(tensors, tensor_json(gguf_tensor_at(f, i)));
	if (!rc)
		rc = json_dumpf(root, stdout, JSON_INDENT(2)) || fputc('\n', stdout) == EOF;
	json_decref(root);
	return rc;
}

/* ---- text ---------------------------------------------------------------------- */

static void print_str(const char *p, uint64_t n)
{
	putchar('"');
	for (uint64_t i = 0; i < n && i < TEXT_STR_MAX; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			printf("\\x%02x", c);
		else
			putchar(c);
	}
	printf(n > TEXT_STR_MAX ? "\"... (%llu bytes)" : "\"", (unsigned long long)n);
}

static void print_scalar(enum gguf_vtype t, const void *p)
{
	json_t *j = scalar_json(t, p);

	if (json_is_real(j)) /* enough digits to round-trip the stored value */
		printf(t == GGUF_VT_FLOAT64 ? "%.17g" : "%.9g", json_real_value(j));
	else if (json_is_integer(j))
		printf("%lld", (long long)json_integer_value(j));
	else if (json_is_boolean(j))
		printf("%s", json_is_true(j) ? "true" : "false");
	else if (json_is_string(j))
		printf("%s", json_string_value(j));
	json_decref(j);
}

static void print_value(const gguf_kv *kv)
{
	if (kv->type == GGUF_VT_STRING)
		return print_str(kv->v.str.data, kv->v.str.len);
	if (kv->type != GGUF_VT_ARRAY)
		return print_scalar(kv->type, &kv->v);
	enum gguf_vtype et = kv->v.arr.type;
	putchar('[');
	for (uint64_t i = 0; i < kv->v.arr.n && i < TEXT_ARR_MAX; i++) {
		if (i)
			printf(", ");
		if (et == GGUF_VT_STRING)
			print_str(kv->v.arr.strs[i].data, kv->v.arr.strs[i].len);
		else
			print_scalar(et, (const uint8_t *)kv->v.arr.data + i * gguf_vtype_size(et));
	}
	printf(kv->v.arr.n > TEXT_ARR_MAX ? ", ...]" : "]");
}

static void print_text(const gguf_file *f)
{
	printf("file:        %s\nversion:     %u\nalignment:   %u\ndata_offset: %llu\n"
	       "file_size:   %llu\n\nmetadata (%lld):\n", gguf_path(f), gguf_version(f),
	       gguf_alignment(f), (unsigned long long)gguf_data_offset(f),
	       (unsigned long long)gguf_file_size(f), (long long)gguf_n_kv(f));
	for (int64_t i = 0; i < gguf_n_kv(f); i++) {
		const gguf_kv *kv = gguf_kv_at(f, i);
		char type[24];

		if (kv->type == GGUF_VT_ARRAY)
			snprintf(type, sizeof(type), "arr[%s,%llu]", gguf_vtype_name(kv->v.arr.type),
				 (unsigned long long)kv->v.arr.n);
		else
			snprintf(type, sizeof(type), "%s", gguf_vtype_name(kv->type));
		printf("  ");
		print_str(kv->key.data, kv->key.len);
		printf(" %s = ", type);
		print_value(kv);
		putchar('\n');
	}
	printf("\ntensors (%lld):\n  %-40s %-8s %-28s %14s %14s\n", (long long)gguf_n_tensors(f),
	       "name", "type", "dims", "offset", "bytes");
	for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
		const gguf_tensor *t = gguf_tensor_at(f, i);
		char dims[96] = "[";
		size_t n = 1;

		for (uint32_t d = 0; d < t->n_dims; d++)
			n += (size_t)snprintf(dims + n, sizeof(dims) - n, "%s%lld", d ? ", " : "",
					      (long long)t->ne[d]);
		snprintf(dims + n, sizeof(dims) - n, "]");
		printf("  %-40s %-8s %-28s %14llu %14llu\n", t->name, infer_type_name(t->type), dims,
		       (unsigned long long)t->offset, (unsigned long long)t->nbytes);
	}
}

int cmd_inspect(int argc, char **argv)
{
	const char *path = NULL;
	int json = 0;
	infer_error err;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--json")) {
			json = 1;
		} else if (argv[i][0] != '-' && !path) {
			path = argv[i];
		} else {
			fprintf(stderr, "error: inspect: unexpected argument '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (!path) {
		usage(stderr);
		return 2;
	}
	gguf_file *f = gguf_open(path, &err);
	if (!f) {
		fprintf(stderr, "error: %s: %s\n", path, err.msg);
		return err.code == INFER_E_IO ? 1 : 2;
	}
	int rc = 0;
	if (json)
		rc = print_json(f);
	else
		print_text(f);
	if (rc || fflush(stdout)) {
		fprintf(stderr, "error: %s: cannot write the output\n", path);
		rc = 1;
	}
	gguf_close(f);
	return rc;
}
