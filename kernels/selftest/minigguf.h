/* A minimal GGUF reader for the CUDA self-test: it reads the trusted golden
 * files of ../shared/conformance (whole file in memory, no validation beyond
 * bounds), so the self-test depends on nothing but the kernels and the CPU
 * reference ops. The project's validating reader is runtime/src/gguf.c. */
#ifndef MINIGGUF_H
#define MINIGGUF_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mg_tensor {
	char name[64];
	uint32_t type;
	int64_t ne[4];
	int64_t nel;
	const uint8_t *data;
};

struct mg_kv {
	char key[96];
	uint32_t vt;
	double num;             /* scalar numeric value */
	const uint8_t *arr;     /* array payload */
	uint32_t arr_vt;
	uint64_t arr_n;
};

struct mg_file {
	uint8_t *buf;
	size_t size;
	int n_t, n_kv;
	mg_tensor t[64];
	mg_kv kv[64];
};

static size_t mg_vsize(uint32_t vt)
{
	static const size_t s[] = { 1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8 };
	return vt < 13 ? s[vt] : 0;
}

static double mg_num(uint32_t vt, const uint8_t *p)
{
	switch (vt) {
	case 0: return *p;
	case 1: return (int8_t)*p;
	case 2: { uint16_t v; memcpy(&v, p, 2); return v; }
	case 3: { int16_t v; memcpy(&v, p, 2); return v; }
	case 4: { uint32_t v; memcpy(&v, p, 4); return v; }
	case 5: { int32_t v; memcpy(&v, p, 4); return v; }
	case 6: { float v; memcpy(&v, p, 4); return v; }
	case 7: return *p;
	case 10: { uint64_t v; memcpy(&v, p, 8); return (double)v; }
	case 11: { int64_t v; memcpy(&v, p, 8); return (double)v; }
	case 12: { double v; memcpy(&v, p, 8); return v; }
	}
	return 0;
}

static void mg_close(mg_file *f)
{
	if (f) {
		free(f->buf);
		free(f);
	}
}

/* NULL when the file is missing or not a GGUF this reader understands. */
static mg_file *mg_open(const char *path)
{
	FILE *fp = fopen(path, "rb");
	mg_file *f;
	uint64_t nt, nkv, off = 0, align = 32;

	if (!fp)
		return NULL;
	f = (mg_file *)calloc(1, sizeof(*f));
	fseek(fp, 0, SEEK_END);
	f->size = (size_t)ftell(fp);
	fseek(fp, 0, SEEK_SET);
	f->buf = (uint8_t *)malloc(f->size);
	if (fread(f->buf, 1, f->size, fp) != f->size || memcmp(f->buf, "GGUF", 4)) {
		fclose(fp);
		mg_close(f);
		return NULL;
	}
	fclose(fp);
	const uint8_t *p = f->buf + 8;
	memcpy(&nt, p, 8);
	memcpy(&nkv, p + 8, 8);
	p += 16;
	if (nt > 64 || nkv > 64) {
		mg_close(f);
		return NULL;
	}
	for (uint64_t i = 0; i < nkv; i++) {
		mg_kv *kv = &f->kv[f->n_kv++];
		uint64_t kl, n;
		memcpy(&kl, p, 8);
		snprintf(kv->key, sizeof(kv->key), "%.*s", (int)kl, (const char *)p + 8);
		p += 8 + kl;
		memcpy(&kv->vt, p, 4);
		p += 4;
		if (kv->vt == 8) {
			memcpy(&n, p, 8);
			p += 8 + n;
		} else if (kv->vt == 9) {
			memcpy(&kv->arr_vt, p, 4);
			memcpy(&kv->arr_n, p + 4, 8);
			p += 12;
			kv->arr = p;
			for (uint64_t j = 0; j < kv->arr_n; j++) {
				if (kv->arr_vt == 8) {
					memcpy(&n, p, 8);
					p += 8 + n;
				} else {
					p += mg_vsize(kv->arr_vt);
				}
			}
		} else {
			kv->num = mg_num(kv->vt, p);
			if (!strcmp(kv->key, "general.alignment"))
				align = (uint64_t)kv->num;
			p += mg_vsize(kv->vt);
		}
	}
	uint64_t offs[64];
	for (uint64_t i = 0; i < nt; i++) {
		mg_tensor *t = &f->t[f->n_t++];
		uint64_t nl;
		uint32_t nd;
		memcpy(&nl, p, 8);
		snprintf(t->name, sizeof(t->name), "%.*s", (int)nl, (const char *)p + 8);
		p += 8 + nl;
		memcpy(&nd, p, 4);
		p += 4;
		t->nel = 1;
		for (int d = 0; d < 4; d++) {
			t->ne[d] = 1;
			if ((uint32_t)d < nd) {
				memcpy(&t->ne[d], p, 8);
				p += 8;
			}
			t->nel *= t->ne[d];
		}
		memcpy(&t->type, p, 4);
		memcpy(&offs[i], p + 4, 8);
		p += 12;
	}
	off = (uint64_t)(p - f->buf);
	off = (off + align - 1) / align * align;
	for (uint64_t i = 0; i < nt; i++)
		f->t[i].data = f->buf + off + offs[i];
	return f;
}

static const mg_tensor *mg_tensor_get(const mg_file *f, const char *name)
{
	for (int i = 0; i < f->n_t; i++)
		if (!strcmp(f->t[i].name, name))
			return &f->t[i];
	return NULL;
}

static const mg_kv *mg_kv_get(const mg_file *f, const char *key)
{
	for (int i = 0; i < f->n_kv; i++)
		if (!strcmp(f->kv[i].key, key))
			return &f->kv[i];
	return NULL;
}

static double mg_kv_num(const mg_file *f, const char *key, double dflt)
{
	const mg_kv *kv = mg_kv_get(f, key);
	return kv && kv->vt != 8 && kv->vt != 9 ? kv->num : dflt;
}

#endif
