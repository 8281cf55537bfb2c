/* "This check can fail": every check kind of this file (gguf_parse, dequant,
 * kernel) passes on its golden and FAILS (or errors, for a golden that lost
 * a tensor) once the data is perturbed: one flipped bit, one value moved by
 * one ulp where exact is required, one tensor dropped. Perturbed copies are
 * written to a temporary directory at test time.
 *
 * gguf and dequant goldens are embedded (golden/conformance); the kernel
 * goldens are read from ../shared and the kernel tests report
 * "skipped: reference set not found" where it is absent. */
#include <CUnit/Basic.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "infer/gguf.h"
#include "yaml_json.h"

static char src_dir[1024], shared_dir[1100], tmp_dir[256] = "/tmp/conform-checks-XXXXXX";
static const char *cur_case = ""; /* named in failure messages */
static char *tmp_files[128];
static int n_tmp;

/* ---- file helpers ------------------------------------------------------- */

static int copy_file(const char *src, const char *dst)
{
	FILE *in = fopen(src, "rb"), *out = in ? fopen(dst, "wb") : NULL;
	char buf[65536];
	size_t n;
	int rc = 0;

	if (!in || !out)
		rc = -1;
	while (!rc && (n = fread(buf, 1, sizeof(buf), in)) > 0)
		if (fwrite(buf, 1, n, out) != n)
			rc = -1;
	if (in)
		fclose(in);
	if (out && fclose(out))
		rc = -1;
	return rc;
}

/* A fresh path in the temp dir, named after what the test does to it. */
static void tmp_path(char *out, size_t n, const char *what)
{
	snprintf(out, n, "%s/%02d-%s.gguf", tmp_dir, n_tmp, what);
	if (n_tmp < 128)
		tmp_files[n_tmp++] = strdup(out);
}

static int patch_bytes(const char *path, long off, const void *bytes, size_t n)
{
	FILE *f = fopen(path, "r+b");
	int rc = -1;

	if (f && fseek(f, off, SEEK_SET) == 0 && fwrite(bytes, 1, n, f) == n)
		rc = 0;
	if (f && fclose(f))
		rc = -1;
	return rc;
}

static int read_bytes(const char *path, long off, void *bytes, size_t n)
{
	FILE *f = fopen(path, "rb");
	int rc = -1;

	if (f && fseek(f, off, SEEK_SET) == 0 && fread(bytes, 1, n, f) == n)
		rc = 0;
	if (f)
		fclose(f);
	return rc;
}

static int flip_bit(const char *path, long off, int bit)
{
	unsigned char b;

	if (read_bytes(path, off, &b, 1))
		return -1;
	b ^= (unsigned char)(1u << bit);
	return patch_bytes(path, off, &b, 1);
}

/* Absolute file offset of a tensor's data; -1 when absent. */
static long tensor_offset(const char *path, const char *name, int64_t *n_elements)
{
	gguf_file *f = gguf_open(path, NULL);
	const gguf_tensor *t = f ? gguf_find_tensor(f, name) : NULL;
	long off = t ? (long)(gguf_data_offset(f) + t->offset) : -1;

	if (t && n_elements)
		*n_elements = t->n_elements;
	gguf_close(f);
	return off;
}

/* Copies src to dst through the GGUF writer, leaving out one tensor. */
static int drop_tensor(const char *src, const char *dst, const char *drop)
{
	gguf_file *f = gguf_open(src, NULL);
	gguf_writer *w;
	int64_t i;
	int rc = 0;

	if (!f)
		return -1;
	w = gguf_writer_new(gguf_alignment(f));
	for (i = 0; !rc && i < gguf_n_kv(f); i++) {
		const gguf_kv *kv = gguf_kv_at(f, i);
		char *key = strndup(kv->key.data, kv->key.len);

		if (kv->type == GGUF_VT_STRING) {
			char *v = strndup(kv->v.str.data, kv->v.str.len);

			rc = gguf_writer_add_str(w, key, v);
			free(v);
		} else if (kv->type == GGUF_VT_ARRAY && kv->v.arr.type == GGUF_VT_STRING) {
			char **v = calloc(kv->v.arr.n + 1, sizeof(*v));
			uint64_t j;

			for (j = 0; j < kv->v.arr.n; j++)
				v[j] = strndup(kv->v.arr.strs[j].data, kv->v.arr.strs[j].len);
			rc = gguf_writer_add_str_arr(w, key, (const char *const *)v, kv->v.arr.n);
			for (j = 0; j < kv->v.arr.n; j++)
				free(v[j]);
			free(v);
		} else if (kv->type == GGUF_VT_ARRAY) {
			rc = gguf_writer_add_arr(w, key, kv->v.arr.type, kv->v.arr.data, kv->v.arr.n);
		} else {
			rc = gguf_writer_add_scalar(w, key, kv->type, &kv->v);
		}
		free(key);
	}
	for (i = 0; !rc && i < gguf_n_tensors(f); i++) {
		const gguf_tensor *t = gguf_tensor_at(f, i);

		if (strcmp(t->name, drop))
			rc = gguf_writer_add_tensor(w, t->name, t->type, t->n_dims ? t->n_dims : 1, t->ne, t->data,
						    t->nbytes);
	}
	if (!rc)
		rc = gguf_writer_write(w, dst, NULL);
	gguf_writer_free(w);
	gguf_close(f);
	return rc;
}

/* ---- running one check --------------------------------------------------- */

static enum check_status run_check(const char *kind, json_t *params, const char *tol_json, char *msg, size_t n)
{
	json_error_t je;
	struct check c = { .id = "test", .suite = "test", .kind = (char *)kind, .spec_file = "test_checks.c",
			   .spec_dir = ".", .params = params };
	const struct check_kind *k = check_kind_find(kind);
	struct check_result r;
	infer_error e = { 0 };

	c.tolerance = tol_json ? json_loads(tol_json, 0, &je) : NULL;
	c.tags = json_array();
	c.backends = json_pack("[s]", "cpu");
	memset(&r, 0, sizeof(r));
	r.status = CHECK_ERROR;
	CU_ASSERT_PTR_NOT_NULL_FATAL(k);
	/* What the spec loader would reject must not reach run(). */
	CU_ASSERT_EQUAL(k->validate ? k->validate(params, c.tolerance, &e) : 0, 0);
	k->run(&c, "cpu", &r);
	snprintf(msg, n, "%s", r.message);
	json_decref(r.details);
	json_decref(c.tolerance);
	json_decref(c.tags);
	json_decref(c.backends);
	return r.status;
}

#define EXPECT_STATUS(got, want, msg)                                                                 \
	do {                                                                                          \
		if ((got) != (want))                                                                  \
			fprintf(stderr, "\n  line %d (%s): status %s, want %s: %s\n", __LINE__,       \
				cur_case, check_status_name(got), check_status_name(want), msg);      \
		CU_ASSERT_EQUAL(got, want);                                                           \
	} while (0)

/* ---- gguf_parse --------------------------------------------------------- */

static json_t *gguf_manifest;

static json_t *gguf_params(const char *path, const char *file, int verify)
{
	json_t *files = json_object_get(gguf_manifest, "files"), *e;
	size_t i;

	json_array_foreach(files, i, e)
		if (!strcmp(json_string_value(json_object_get(e, "file")), file))
			return json_pack("{s:s, s:O, s:b}", "golden", path, "entry", e, "verify_sha256", verify);
	return NULL;
}

static void gguf_case(const char *what, const char *path, int verify, enum check_status want, const char *needle)
{
	char msg[1024];
	json_t *p = gguf_params(path, "valid_crafted_base.gguf", verify);
	enum check_status st;

	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	st = run_check("gguf_parse", p, NULL, msg, sizeof(msg));
	if (st != want)
		fprintf(stderr, "\n  gguf_parse %s: ", what);
	EXPECT_STATUS(st, want, msg);
	if (needle && !strstr(msg, needle)) {
		fprintf(stderr, "\n  gguf_parse %s: message '%s' lacks '%s'\n", what, msg, needle);
		CU_FAIL("message");
	}
	json_decref(p);
}

static void test_gguf_parse(void)
{
	char golden[PATH_MAX], mpath[PATH_MAX], p[PATH_MAX], msg[1024];
	infer_error err = { 0 };
	const gguf_kv *kv;
	gguf_file *f;
	long voff, noff;
	json_t *params;

	snprintf(golden, sizeof(golden), "%s/golden/conformance/gguf/valid_crafted_base.gguf", src_dir);
	snprintf(mpath, sizeof(mpath), "%s/golden/conformance/gguf/manifest.yaml", src_dir);
	gguf_manifest = yaml_load_json(mpath, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(gguf_manifest);
	f = gguf_open(golden, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	kv = gguf_find_kv(f, "llama.block_count");
	CU_ASSERT_PTR_NOT_NULL_FATAL(kv);
	voff = (long)(kv->offset + 8 + kv->key.len + 4); /* key length, key, type, then the value */
	noff = (long)(gguf_tensor_at(f, 1)->info_offset + 8);
	gguf_close(f);

	gguf_case("unmodified", golden, 1, CHECK_PASS, "match");

	/* One bit of a u32 value: the digest catches it first ... */
	tmp_path(p, sizeof(p), "gguf-kv-bit");
	CU_ASSERT_FATAL(copy_file(golden, p) == 0 && flip_bit(p, voff, 0) == 0);
	gguf_case("kv bit, digest on", p, 1, CHECK_ERROR, "sha256");
	/* ... and without it the table comparison does. */
	gguf_case("kv bit, digest off", p, 0, CHECK_FAIL, "llama.block_count");

	tmp_path(p, sizeof(p), "gguf-name-bit");
	CU_ASSERT_FATAL(copy_file(golden, p) == 0 && flip_bit(p, noff, 1) == 0);
	gguf_case("tensor name bit", p, 0, CHECK_FAIL, "name differs");

	tmp_path(p, sizeof(p), "gguf-drop");
	CU_ASSERT_FATAL(drop_tensor(golden, p, "output.weight") == 0);
	gguf_case("dropped tensor", p, 0, CHECK_FAIL, "n_tensors");

	/* A file the manifest says must be rejected but the reader accepts. */
	params = gguf_params(golden, "valid_crafted_base.gguf", 1);
	json_object_set_new(json_object_get(params, "entry"), "recommended", json_string("reject"));
	EXPECT_STATUS(run_check("gguf_parse", params, NULL, msg, sizeof(msg)), CHECK_FAIL, msg);
	json_decref(params);

	/* A rejected file whose verdict is reject passes; claimed accept fails. */
	snprintf(p, sizeof(p), "%s/golden/conformance/gguf/invalid_duplicate_key.gguf", src_dir);
	params = gguf_params(p, "invalid_duplicate_key.gguf", 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(params);
	EXPECT_STATUS(run_check("gguf_parse", params, NULL, msg, sizeof(msg)), CHECK_PASS, msg);
	json_object_set_new(json_object_get(params, "entry"), "recommended", json_string("accept"));
	EXPECT_STATUS(run_check("gguf_parse", params, NULL, msg, sizeof(msg)), CHECK_FAIL, msg);
	json_decref(params);
	json_decref(gguf_manifest);
}

/* Every file ggml accepts (recommended: accept): one flipped bit in its first
 * key must turn the pass into a fail, whatever the file. */
static void test_gguf_parse_corpus_bitflips(void)
{
	char mpath[PATH_MAX], golden[PATH_MAX], p[PATH_MAX], msg[1024];
	infer_error err = { 0 };
	json_t *files, *e, *params;
	size_t i, n = 0;

	snprintf(mpath, sizeof(mpath), "%s/golden/conformance/gguf/manifest.yaml", src_dir);
	gguf_manifest = yaml_load_json(mpath, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(gguf_manifest);
	files = json_object_get(gguf_manifest, "files");
	json_array_foreach(files, i, e) {
		const char *file = json_string_value(json_object_get(e, "file"));
		const gguf_kv *kv;
		gguf_file *f;
		long off;

		if (strcmp(json_string_value(json_object_get(e, "recommended")), "accept"))
			continue;
		snprintf(golden, sizeof(golden), "%s/golden/conformance/gguf/%s", src_dir, file);
		cur_case = file;
		params = json_pack("{s:s, s:O}", "golden", golden, "entry", e);
		EXPECT_STATUS(run_check("gguf_parse", params, NULL, msg, sizeof(msg)), CHECK_PASS, msg);
		json_decref(params);
		f = gguf_open(golden, NULL);
		kv = f && gguf_n_kv(f) > 0 ? gguf_kv_at(f, 0) : NULL;
		off = kv && kv->key.len ? (long)(kv->offset + 8 + kv->key.len - 1) : -1;
		gguf_close(f);
		if (off < 0)
			continue;
		tmp_path(p, sizeof(p), "gguf-corpus-key-bit");
		CU_ASSERT_FATAL(copy_file(golden, p) == 0 && flip_bit(p, off, 0) == 0);
		params = json_pack("{s:s, s:O, s:b}", "golden", p, "entry", e, "verify_sha256", 0);
		EXPECT_STATUS(run_check("gguf_parse", params, NULL, msg, sizeof(msg)), CHECK_FAIL, msg);
		json_decref(params);
		n++;
	}
	CU_ASSERT(n >= 10); /* the public corpus has 13 valid + a few accepted edge files */
	json_decref(gguf_manifest);
}

/* ---- dequant ------------------------------------------------------------ */

static enum check_status dequant_run(const char *path, char *msg, size_t n)
{
	json_t *p = json_pack("{s:s}", "golden", path);
	enum check_status st = run_check("dequant", p, "{\"exact\": true}", msg, n);

	json_decref(p);
	return st;
}

static void test_dequant(void)
{
	char golden[PATH_MAX], zeros[PATH_MAX], p[PATH_MAX], msg[1024];
	int64_t n = 0, i;
	long off;
	uint32_t bits;

	snprintf(golden, sizeof(golden), "%s/golden/conformance/dequant/q4_K.gauss.gguf", src_dir);
	snprintf(zeros, sizeof(zeros), "%s/golden/conformance/dequant/q4_0.zeros.gguf", src_dir);
	EXPECT_STATUS(dequant_run(golden, msg, sizeof(msg)), CHECK_PASS, msg);

	/* expected[100] moved by one ulp */
	off = tensor_offset(golden, "expected", &n);
	CU_ASSERT_FATAL(off > 0 && n > 100);
	tmp_path(p, sizeof(p), "dequant-ulp");
	CU_ASSERT_FATAL(copy_file(golden, p) == 0 && read_bytes(p, off + 400, &bits, 4) == 0);
	bits += 1;
	CU_ASSERT_FATAL(patch_bytes(p, off + 400, &bits, 4) == 0);
	EXPECT_STATUS(dequant_run(p, msg, sizeof(msg)), CHECK_FAIL, msg);

	/* one bit of the first block's fp16 scale */
	off = tensor_offset(golden, "blocks", NULL);
	tmp_path(p, sizeof(p), "dequant-block-bit");
	CU_ASSERT_FATAL(copy_file(golden, p) == 0 && flip_bit(p, off, 3) == 0);
	EXPECT_STATUS(dequant_run(p, msg, sizeof(msg)), CHECK_FAIL, msg);

	/* +0.0 turned into -0.0: exact means bitwise */
	off = tensor_offset(zeros, "expected", &n);
	CU_ASSERT_FATAL(off > 0);
	for (i = 0; i < n; i++)
		if (read_bytes(zeros, off + 4 * i, &bits, 4) == 0 && bits == 0)
			break;
	CU_ASSERT_FATAL(i < n);
	tmp_path(p, sizeof(p), "dequant-signed-zero");
	bits = 0x80000000u;
	CU_ASSERT_FATAL(copy_file(zeros, p) == 0 && patch_bytes(p, off + 4 * i, &bits, 4) == 0);
	EXPECT_STATUS(dequant_run(p, msg, sizeof(msg)), CHECK_FAIL, msg);

	/* a golden without its expected tensor is an error, never a pass */
	tmp_path(p, sizeof(p), "dequant-drop");
	CU_ASSERT_FATAL(drop_tensor(golden, p, "expected") == 0);
	EXPECT_STATUS(dequant_run(p, msg, sizeof(msg)), CHECK_ERROR, msg);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "'expected'"));
}

/* Every embedded dequant golden (each type x distribution): passes as is,
 * fails once expected[n/2] moves by one ulp. */
static void test_dequant_every_golden_ulp(void)
{
	char mpath[PATH_MAX], golden[PATH_MAX], p[PATH_MAX], msg[1024];
	infer_error err = { 0 };
	json_t *man, *e;
	size_t i, n = 0;

	snprintf(mpath, sizeof(mpath), "%s/golden/conformance/dequant/manifest.yaml", src_dir);
	man = yaml_load_json(mpath, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(man);
	tmp_path(p, sizeof(p), "dequant-every-ulp"); /* reused for every file */
	json_array_foreach(json_object_get(man, "files"), i, e) {
		const char *file = json_string_value(json_object_get(e, "file"));
		int64_t ne = 0;
		long off;
		uint32_t bits;

		snprintf(golden, sizeof(golden), "%s/golden/conformance/dequant/%s", src_dir, file);
		cur_case = file;
		EXPECT_STATUS(dequant_run(golden, msg, sizeof(msg)), CHECK_PASS, msg);
		off = tensor_offset(golden, "expected", &ne);
		CU_ASSERT_FATAL(off > 0 && ne > 0);
		off += 4 * (ne / 2);
		CU_ASSERT_FATAL(copy_file(golden, p) == 0 && read_bytes(p, off, &bits, 4) == 0);
		bits += 1; /* next float away from zero: one ulp */
		CU_ASSERT_FATAL(patch_bytes(p, off, &bits, 4) == 0);
		EXPECT_STATUS(dequant_run(p, msg, sizeof(msg)), CHECK_FAIL, msg);
		n++;
	}
	CU_ASSERT_EQUAL(n, 224);
	json_decref(man);
}

/* ---- kernel ------------------------------------------------------------- */

static enum check_status kernel_run(const char *path, const char *tol, char *msg, size_t n)
{
	json_t *p = json_pack("{s:s}", "golden", path);
	enum check_status st = run_check("kernel", p, tol, msg, n);

	json_decref(p);
	return st;
}

/* Multiplies the largest-magnitude element of an F32 tensor by factor. */
static int scale_largest(const char *path, const char *name, float factor)
{
	int64_t n = 0, i, best = 0;
	long off = tensor_offset(path, name, &n);
	float v, top = -1;

	if (off < 0)
		return -1;
	for (i = 0; i < n; i++)
		if (read_bytes(path, off + 4 * i, &v, 4) == 0 && fabsf(v) > top) {
			top = fabsf(v);
			best = i;
		}
	if (read_bytes(path, off + 4 * best, &v, 4))
		return -1;
	v *= factor;
	return patch_bytes(path, off + 4 * best, &v, 4);
}

static int nudge_largest(const char *path, const char *name)
{
	return scale_largest(path, name, 1.01f);
}

/* Adds 1.0 to element 0 of an F32 tensor (softmax: the largest logit is in
 * a row that is one-hot already, so nudging it changes nothing). */
static int bump_first(const char *path, const char *name)
{
	long off = tensor_offset(path, name, NULL);
	float v;

	if (off < 0 || read_bytes(path, off, &v, 4))
		return -1;
	v += 1.0f;
	return patch_bytes(path, off, &v, 4);
}

enum perturb { NUDGE_LARGEST, BUMP_FIRST, QUANT_SCALE_BIT };

static void kernel_case(const char *file, const char *input, enum perturb how, const char *tol)
{
	char golden[PATH_MAX], p[PATH_MAX], msg[1024];

	snprintf(golden, sizeof(golden), "%s/conformance/kernels/%s", shared_dir, file);
	cur_case = file;
	EXPECT_STATUS(kernel_run(golden, tol, msg, sizeof(msg)), CHECK_PASS, msg);

	tmp_path(p, sizeof(p), "kernel-out");
	CU_ASSERT_FATAL(copy_file(golden, p) == 0 && nudge_largest(p, "out") == 0);
	EXPECT_STATUS(kernel_run(p, tol, msg, sizeof(msg)), CHECK_FAIL, msg);

	tmp_path(p, sizeof(p), "kernel-in");
	CU_ASSERT_FATAL(copy_file(golden, p) == 0);
	if (how == NUDGE_LARGEST)
		CU_ASSERT_FATAL(nudge_largest(p, input) == 0)
	else if (how == BUMP_FIRST)
		CU_ASSERT_FATAL(bump_first(p, input) == 0)
	else /* a quantized weight: bit 6 of the first block's fp16 scale (an exponent bit) */
		CU_ASSERT_FATAL(flip_bit(p, tensor_offset(p, input, NULL) + 1, 6) == 0);
	EXPECT_STATUS(kernel_run(p, tol, msg, sizeof(msg)), CHECK_FAIL, msg);

	tmp_path(p, sizeof(p), "kernel-drop");
	CU_ASSERT_FATAL(drop_tensor(golden, p, "out") == 0);
	EXPECT_STATUS(kernel_run(p, tol, msg, sizeof(msg)), CHECK_ERROR, msg);
}

/* The tolerance specs/kernels.yaml gives a golden's op. */
static const char *kernel_tolerance(const char *file)
{
	if (!strncmp(file, "rope_neox.", 10))
		return strstr(file, "huge") || strstr(file, "sparse") ? "{\"nmse\": 1e-3}" : "{\"nmse\": 1e-7}";
	if (!strncmp(file, "mul_mat.", 8) || !strncmp(file, "attn_gqa.", 9))
		return "{\"nmse\": 1e-10}";
	return "{\"nmse\": 1e-12}";
}

/* Every kernel golden passes with its spec tolerance, and fails once the
 * reference's largest element moves by 1 % (for long-position rope, whose
 * 1e-3 limit accepts ggml's float-theta error of 2 % of max|out| by design:
 * once it flips sign). */
static void test_kernel_every_golden(void)
{
	char mpath[PATH_MAX], golden[PATH_MAX], p[PATH_MAX], msg[1024];
	infer_error err = { 0 };
	json_t *man, *e;
	size_t i, n = 0;
	struct stat st;

	snprintf(mpath, sizeof(mpath), "%s/conformance/kernels/manifest.yaml", shared_dir);
	if (stat(mpath, &st) != 0) {
		printf("skipped: reference set not found (%s)\n", mpath);
		return;
	}
	man = yaml_load_json(mpath, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(man);
	tmp_path(p, sizeof(p), "kernel-every-out"); /* reused for every file */
	json_array_foreach(json_object_get(man, "files"), i, e) {
		const char *file = json_string_value(json_object_get(e, "file"));

		snprintf(golden, sizeof(golden), "%s/conformance/kernels/%s", shared_dir, file);
		cur_case = file;
		EXPECT_STATUS(kernel_run(golden, kernel_tolerance(file), msg, sizeof(msg)), CHECK_PASS, msg);
		CU_ASSERT_FATAL(copy_file(golden, p) == 0);
		CU_ASSERT_FATAL(scale_largest(p, "out", strstr(kernel_tolerance(file), "1e-3") ? -1.0f : 1.01f) == 0);
		EXPECT_STATUS(kernel_run(p, kernel_tolerance(file), msg, sizeof(msg)), CHECK_FAIL, msg);
		n++;
	}
	CU_ASSERT_EQUAL(n, 65);
	json_decref(man);
}

static void test_kernel(void)
{
	char probe[PATH_MAX];
	struct stat st;

	snprintf(probe, sizeof(probe), "%s/conformance/kernels/manifest.yaml", shared_dir);
	if (stat(probe, &st) != 0) {
		printf("skipped: reference set not found (%s)\n", probe);
		return;
	}
	/* The tolerances of specs/kernels.yaml. */
	kernel_case("rms_norm_mul.d896_t7.gguf", "in.x", NUDGE_LARGEST, "{\"nmse\": 1e-12}");
	kernel_case("rope_neox.hd64_nh14_pos0-7.gguf", "in.x", NUDGE_LARGEST, "{\"nmse\": 1e-7}");
	kernel_case("softmax.l128_r4.gguf", "in.x", BUMP_FIRST, "{\"nmse\": 1e-12}");
	kernel_case("swiglu.f896_t7.gguf", "in.up", NUDGE_LARGEST, "{\"nmse\": 1e-12}");
	kernel_case("mul_mat.q4_K.k1536_m24.gguf", "in.w", QUANT_SCALE_BIT, "{\"nmse\": 1e-10}");
	kernel_case("mul_mat.f32.k896_m64.gguf", "in.x", NUDGE_LARGEST, "{\"nmse\": 1e-10}");
	kernel_case("attn_gqa.hd64_hq14_hkv2_t4_kv20.gguf", "in.v", NUDGE_LARGEST, "{\"nmse\": 1e-10}");
}

static void cleanup(void)
{
	int i;

	for (i = 0; i < n_tmp; i++) {
		unlink(tmp_files[i]);
		free(tmp_files[i]);
	}
	if (rmdir(tmp_dir))
		perror(tmp_dir);
}

int main(void)
{
	const char *src = getenv("INFER_SOURCE_DIR"), *shared = getenv("INFER_SHARED_DIR");
	CU_pSuite s;
	unsigned fails;

	snprintf(src_dir, sizeof(src_dir), "%s", src ? src : ".");
	if (shared)
		snprintf(shared_dir, sizeof(shared_dir), "%s", shared);
	else
		snprintf(shared_dir, sizeof(shared_dir), "%s/../shared", src_dir);
	if (!mkdtemp(tmp_dir)) {
		perror("mkdtemp");
		return 1;
	}
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("checks can fail", NULL, NULL);
	CU_add_test(s, "gguf_parse: pass, then fail on flipped bits and a dropped tensor", test_gguf_parse);
	CU_add_test(s, "gguf_parse: every accepted corpus file fails with one key bit flipped",
		    test_gguf_parse_corpus_bitflips);
	CU_add_test(s, "dequant: pass, then fail on 1 ulp, a block bit, -0.0, a dropped tensor", test_dequant);
	CU_add_test(s, "dequant: all 224 goldens pass, and fail with one ulp moved", test_dequant_every_golden_ulp);
	CU_add_test(s, "kernel: pass, then fail on perturbed output/input, error on dropped out", test_kernel);
	CU_add_test(s, "kernel: all 65 goldens pass, and fail with the largest output moved",
		    test_kernel_every_golden);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	cleanup();
	return fails ? 1 : 0;
}
