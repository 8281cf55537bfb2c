/* Error reporting shared by every stage: a code plus a message that names
 * what and where (byte offset, tensor, field). Functions return 0 on success
 * or a negative INFER_E_* / GGUF_E_* code and fill *err when err != NULL. */
#ifndef INFER_ERROR_H
#define INFER_ERROR_H

#include <stdint.h>

enum infer_status {
	INFER_OK = 0,
	INFER_E_IO = -1,          /* open/read/write/mmap failed */
	INFER_E_NOMEM = -2,
	INFER_E_ARG = -3,         /* caller passed something invalid */
	INFER_E_UNSUPPORTED = -4, /* type/op/architecture not supported: never a silent fallback */
	INFER_E_NODEVICE = -5,    /* backend not built or no device present */
	INFER_E_MODEL = -6,       /* missing/mis-shaped tensor or hyper-parameter */
	INFER_E_DEVICE = -7,      /* a CUDA/cuBLAS call failed */
	INFER_E_TOKENIZER = -8,
	INFER_E_FORMAT = -9,      /* malformed input other than GGUF (JSON, text) */
	/* GGUF validation codes live in gguf.h, from -100 down. */
};

typedef struct infer_error {
	int code;        /* enum infer_status or enum gguf_status */
	int64_t offset;  /* byte offset the error refers to, -1 when none */
	char msg[512];   /* one line, no trailing newline */
} infer_error;

/* Fills err (when non-NULL) and returns code, so callers can write
 * `return infer_error_set(err, INFER_E_ARG, -1, "bad n=%d", n);` */
int infer_error_set(infer_error *err, int code, int64_t offset, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

void infer_error_clear(infer_error *err);

#endif
