/* infer dequant FILE.gguf --tensor NAME --out OUT.f32: the tensor's values
 * as raw little-endian float32 in GGUF element order (ne[0] fastest).
 *
 * The tensor is converted in chunks of whole blocks, so a large tensor never
 * needs its float copy in memory, and written to a temporary file that is
 * renamed at the end: a failure leaves no output file behind. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "infer/file.h"
#include "infer/gguf.h"
#include "infer/quant.h"

#define CHUNK_ELEMS (1 << 16)

static void usage(FILE *out)
{
	fprintf(out,
		"usage: infer dequant FILE.gguf --tensor NAME --out OUT.f32\n"
		"  Writes tensor NAME dequantized to float32 (raw little-endian, GGUF element\n"
		"  order: ne[0] varies fastest), n_elements * 4 bytes.\n"
		"exit: 0 ok, 1 the type has no dequantizer or the output cannot be written,\n"
		"      2 usage error, unknown tensor or malformed GGUF\n"
		"      (one line on stderr: error: FILE: WHAT at byte OFFSET); no partial output\n");
}

/* Dequantizes t into fp, CHUNK_ELEMS-ish elements (whole blocks) at a time. */
static int write_floats(const gguf_tensor *t, FILE *fp, infer_error *err)
{
	const infer_type_traits *tt = infer_type_traits_get(t->type);
	uint64_t blocks_per_chunk = CHUNK_ELEMS / tt->block_size ? CHUNK_ELEMS / tt->block_size : 1;
	uint64_t n_blocks = (uint64_t)t->n_elements / tt->block_size;
	float *buf = malloc(blocks_per_chunk * tt->block_size * sizeof(float));
	int rc = 0;

	if (!buf)
		return infer_error_set(err, INFER_E_NOMEM, -1, "out of memory");
	for (uint64_t b = 0; b < n_blocks && !rc; b += blocks_per_chunk) {
		uint64_t nb = n_blocks - b < blocks_per_chunk ? n_blocks - b : blocks_per_chunk;
		int64_t n = (int64_t)(nb * tt->block_size);
		const uint8_t *src = (const uint8_t *)t->data + b * tt->type_size;

		rc = infer_dequantize(t->type, src, buf, n, t->name, err);
		if (!rc && fwrite(buf, sizeof(float), (size_t)n, fp) != (size_t)n)
			rc = infer_error_set(err, INFER_E_IO, -1, "write failed: %s", strerror(errno));
	}
	free(buf);
	return rc;
}

static int write_floats_body(FILE *fp, void *user, infer_error *err)
{
	return write_floats(user, fp, err);
}

int cmd_dequant(int argc, char **argv)
{
	const char *path = NULL, *name = NULL, *out = NULL;
	infer_error err;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--tensor") && i + 1 < argc) {
			name = argv[++i];
		} else if (!strcmp(argv[i], "--out") && i + 1 < argc) {
			out = argv[++i];
		} else if (argv[i][0] != '-' && !path) {
			path = argv[i];
		} else {
			fprintf(stderr, "error: dequant: unexpected or incomplete argument '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (!path || !name || !out) {
		usage(stderr);
		return 2;
	}
	gguf_file *f = gguf_open(path, &err);
	if (!f) {
		fprintf(stderr, "error: %s: %s\n", path, err.msg);
		return err.code == INFER_E_IO ? 1 : 2;
	}
	const gguf_tensor *t = gguf_find_tensor(f, name);
	int rc = 0;
	if (!t) {
		fprintf(stderr, "error: %s: no tensor named '%s' (%lld tensors)\n", path, name,
			(long long)gguf_n_tensors(f));
		rc = 2;
	} else if (infer_write_atomic(out, INFER_FILE_UMASK, write_floats_body, (void *)t, &err)) {
		fprintf(stderr, "error: %s: %s\n", path, err.msg);
		rc = 1;
	}
	gguf_close(f);
	return rc;
}
