/* Access to the dequantization golden set (conformance/dequant): locates it
 * (../shared, else the bundled golden/ copy), reads its manifest with libyaml
 * and opens one file's tensors. Shared by test_dequant.c and test_quant.c. */
#ifndef UTIL_DQGOLD_H
#define UTIL_DQGOLD_H

#include <stdint.h>

#include "infer/gguf.h"

typedef struct dqg_entry {
	char file[96];
	char type[16];
	uint32_t type_id, block_size, type_size;
	uint64_t n_blocks, row_len, n_rows;
	int has_input;
	int64_t neg_zeros;  /* expected_negative_zeros */
	int64_t subnormals; /* expected_subnormals */
} dqg_entry;

typedef struct dqg_set {
	char dir[512];
	dqg_entry *e;
	int n;
	int n_files; /* the manifest's own n_files */
} dqg_set;

/* 1: loaded; 0: no golden set present (caller skips); -1: present but the
 * manifest is unreadable (caller fails). */
int dqg_load(dqg_set *s);
void dqg_free(dqg_set *s);

typedef struct dqg_file {
	gguf_file *g;
	const gguf_tensor *input;    /* NULL for raw files */
	const gguf_tensor *blocks;
	const gguf_tensor *expected;
} dqg_file;

/* Opens e->file and checks its tensors against the manifest entry; on
 * failure prints why and returns -1. */
int dqg_open(const dqg_set *s, const dqg_entry *e, dqg_file *f);
void dqg_close(dqg_file *f);

#endif
