/* GGUF v2/v3 reader (mmap, fully validated) and v3 writer.
 *
 * The reader never trusts a count or length from the file: every one is
 * checked against the bytes that remain before anything is allocated or read.
 * Strings handed out point into the mapping and are NOT NUL-terminated
 * (a GGUF string may contain NUL); tensor names are copied and terminated. */
#ifndef INFER_GGUF_H
#define INFER_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "infer/error.h"

/* Distinct validation codes: every way a file can lie has its own. */
enum gguf_status {
	GGUF_E_MAGIC = -100,
	GGUF_E_VERSION = -101,
	GGUF_E_TRUNCATED = -102,      /* file ends inside a header field */
	GGUF_E_COUNT = -103,          /* n_kv / n_tensors / array length larger than possible */
	GGUF_E_STRING_LEN = -104,     /* string length beyond the file or limit */
	GGUF_E_VALUE_TYPE = -105,     /* unknown metadata value type id */
	GGUF_E_NESTED_ARRAY = -106,   /* array of arrays (ggml rejects them) */
	GGUF_E_DUP_KEY = -107,
	GGUF_E_EMPTY_KEY = -108,
	GGUF_E_ALIGNMENT = -109,      /* general.alignment not a u32 power of two */
	GGUF_E_TENSOR_TYPE = -110,    /* unknown or removed ggml type id */
	GGUF_E_N_DIMS = -111,         /* n_dims > 4 */
	GGUF_E_DIM = -112,            /* negative dimension */
	GGUF_E_OVERFLOW = -113,       /* element count / byte size not representable */
	GGUF_E_BLOCK = -114,          /* ne[0] not a multiple of the type's block size */
	GGUF_E_DUP_TENSOR = -115,
	GGUF_E_NAME_LEN = -116,       /* tensor name >= 64 bytes */
	GGUF_E_OFFSET = -117,         /* offset misaligned, gap, overlap or out of order */
	GGUF_E_DATA_BOUNDS = -118,    /* tensor data or data section beyond end of file */
	GGUF_E_KEY = -119,            /* getter: key missing */
	GGUF_E_TYPE = -120,           /* getter: key present with another type */
};

/* Metadata value types (GGUF spec). */
enum gguf_vtype {
	GGUF_VT_UINT8 = 0, GGUF_VT_INT8 = 1, GGUF_VT_UINT16 = 2, GGUF_VT_INT16 = 3,
	GGUF_VT_UINT32 = 4, GGUF_VT_INT32 = 5, GGUF_VT_FLOAT32 = 6, GGUF_VT_BOOL = 7,
	GGUF_VT_STRING = 8, GGUF_VT_ARRAY = 9, GGUF_VT_UINT64 = 10, GGUF_VT_INT64 = 11,
	GGUF_VT_FLOAT64 = 12,
	GGUF_VT_COUNT = 13,
};

typedef struct gguf_str {
	const char *data; /* into the mapping, not terminated */
	uint64_t len;
} gguf_str;

typedef struct gguf_kv {
	gguf_str key;
	enum gguf_vtype type;
	union {
		uint8_t u8; int8_t i8; uint16_t u16; int16_t i16;
		uint32_t u32; int32_t i32; uint64_t u64; int64_t i64;
		float f32; double f64; uint8_t b; /* bool: raw byte, non-zero = true */
		gguf_str str;
		struct {
			enum gguf_vtype type; /* element type (never ARRAY) */
			uint64_t n;
			const void *data;     /* fixed-size elements: raw little-endian, unaligned */
			const gguf_str *strs; /* STRING elements: n parsed strings */
		} arr;
	} v;
	uint64_t offset; /* byte offset of the KV in the file */
} gguf_kv;

#define GGUF_MAX_DIMS 4
#define GGUF_NAME_MAX 64

typedef struct gguf_tensor {
	char name[GGUF_NAME_MAX];
	uint32_t n_dims;            /* as stored (0..4) */
	int64_t ne[GGUF_MAX_DIMS];  /* padded with 1 */
	uint32_t type;              /* ggml type id, see quant.h */
	uint64_t offset;            /* relative to the data section */
	uint64_t nbytes;
	int64_t n_elements;
	const void *data;           /* into the mapping (files whose tensor data lies outside are rejected) */
	uint64_t info_offset;       /* byte offset of the tensor info in the file */
} gguf_tensor;

typedef struct gguf_file gguf_file;

gguf_file *gguf_open(const char *path, infer_error *err);
/* Parses a caller-owned buffer (fuzzing, tests); the buffer must outlive the handle. */
gguf_file *gguf_open_memory(const void *buf, size_t size, infer_error *err);
void gguf_close(gguf_file *f);

uint32_t gguf_version(const gguf_file *f);
uint32_t gguf_alignment(const gguf_file *f);
uint64_t gguf_data_offset(const gguf_file *f); /* absolute */
uint64_t gguf_file_size(const gguf_file *f);
const char *gguf_path(const gguf_file *f);

int64_t gguf_n_kv(const gguf_file *f);
const gguf_kv *gguf_kv_at(const gguf_file *f, int64_t i);
const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key);
const char *gguf_vtype_name(enum gguf_vtype t);
/* Bytes of one fixed-size value; 0 for STRING, ARRAY and unknown types. */
size_t gguf_vtype_size(enum gguf_vtype t);
/* Short name of a gguf_status / infer_status code ("truncated", "bad magic"). */
const char *gguf_status_name(int code);

/* Typed getters: GGUF_E_KEY when missing, GGUF_E_TYPE when the stored type differs. */
int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, infer_error *err);
int gguf_get_i32(const gguf_file *f, const char *key, int32_t *out, infer_error *err);
int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out, infer_error *err);
int gguf_get_f32(const gguf_file *f, const char *key, float *out, infer_error *err);
int gguf_get_bool(const gguf_file *f, const char *key, int *out, infer_error *err);
/* Any unsigned/signed integer type that fits in int64 (for loose hparams). */
int gguf_get_int(const gguf_file *f, const char *key, int64_t *out, infer_error *err);
int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, infer_error *err);
/* Array of the given element type; *out receives the kv. */
int gguf_get_arr(const gguf_file *f, const char *key, enum gguf_vtype elem,
		 const gguf_kv **out, infer_error *err);

int64_t gguf_n_tensors(const gguf_file *f);
const gguf_tensor *gguf_tensor_at(const gguf_file *f, int64_t i);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

/* ---- writer (GGUF v3) ---------------------------------------------------- */
typedef struct gguf_writer gguf_writer;

/* 0 = default 32. A non-default alignment is written as general.alignment
 * (after the caller's KVs) unless the caller adds that KV itself. */
gguf_writer *gguf_writer_new(uint32_t alignment);
void gguf_writer_free(gguf_writer *w);
int gguf_writer_add_u32(gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_add_i32(gguf_writer *w, const char *key, int32_t v);
int gguf_writer_add_u64(gguf_writer *w, const char *key, uint64_t v);
int gguf_writer_add_f32(gguf_writer *w, const char *key, float v);
int gguf_writer_add_bool(gguf_writer *w, const char *key, int v);
int gguf_writer_add_str(gguf_writer *w, const char *key, const char *v);
/* Any scalar kv from raw bytes (round-trip tests). */
int gguf_writer_add_scalar(gguf_writer *w, const char *key, enum gguf_vtype t, const void *v);
/* Fixed-size element array (copied). */
int gguf_writer_add_arr(gguf_writer *w, const char *key, enum gguf_vtype elem,
			const void *data, uint64_t n);
int gguf_writer_add_str_arr(gguf_writer *w, const char *key, const char *const *v, uint64_t n);
/* Copies a parsed KV of any type (keys and strings may hold NUL bytes):
 * rewrites a file's metadata exactly. */
int gguf_writer_add_kv(gguf_writer *w, const gguf_kv *kv);
/* Copies the data; nbytes must equal the type's row size for ne.
 * n_dims 0..4 (0 = one element); ne may be NULL when n_dims is 0. */
int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type,
			   uint32_t n_dims, const int64_t *ne, const void *data, uint64_t nbytes);
/* Writes to a temporary file next to path and renames it: never a partial file. */
int gguf_writer_write(gguf_writer *w, const char *path, infer_error *err);

#endif
