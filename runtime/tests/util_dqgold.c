/* See util_dqgold.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "infer/quant.h"
#include "util_dqgold.h"

static int has_manifest(const char *dir)
{
	char p[600];

	snprintf(p, sizeof(p), "%s/manifest.yaml", dir);
	return access(p, R_OK) == 0;
}

/* ../shared first (the reference set), then the copy bundled in the repo. */
static int find_dir(char *out, size_t size)
{
	const char *sh = getenv("INFER_SHARED_DIR");
	const char *src = getenv("INFER_SOURCE_DIR");

	snprintf(out, size, "%s/conformance/dequant", sh ? sh : "../shared");
	if (has_manifest(out))
		return 1;
	snprintf(out, size, "%s/golden/conformance/dequant", src ? src : ".");
	return has_manifest(out);
}

static const char *scalar(yaml_document_t *d, yaml_node_t *n)
{
	(void)d;
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static yaml_node_t *map_get(yaml_document_t *d, yaml_node_t *map, const char *key)
{
	yaml_node_pair_t *p;

	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		const char *k = scalar(d, yaml_document_get_node(d, p->key));

		if (k && !strcmp(k, key))
			return yaml_document_get_node(d, p->value);
	}
	return NULL;
}

static int get_u64(yaml_document_t *d, yaml_node_t *map, const char *key, uint64_t *v)
{
	const char *s = scalar(d, map_get(d, map, key));
	char *end;

	if (!s)
		return -1;
	*v = strtoull(s, &end, 10);
	return *end ? -1 : 0;
}

static int get_str(yaml_document_t *d, yaml_node_t *map, const char *key, char *out, size_t n)
{
	const char *s = scalar(d, map_get(d, map, key));

	if (!s || strlen(s) >= n)
		return -1;
	strcpy(out, s);
	return 0;
}

static int parse_entry(yaml_document_t *d, yaml_node_t *m, dqg_entry *e)
{
	uint64_t id, bs, ts, ns, sub;
	char hi[8];

	if (get_str(d, m, "file", e->file, sizeof(e->file)) ||
	    get_str(d, m, "type", e->type, sizeof(e->type)) ||
	    get_u64(d, m, "type_id", &id) || get_u64(d, m, "block_size", &bs) ||
	    get_u64(d, m, "type_size", &ts) || get_u64(d, m, "n_blocks", &e->n_blocks) ||
	    get_u64(d, m, "row_len", &e->row_len) || get_u64(d, m, "n_rows", &e->n_rows) ||
	    get_u64(d, m, "expected_negative_zeros", &ns) ||
	    get_u64(d, m, "expected_subnormals", &sub) ||
	    get_str(d, m, "has_input", hi, sizeof(hi)))
		return -1;
	e->type_id = (uint32_t)id;
	e->block_size = (uint32_t)bs;
	e->type_size = (uint32_t)ts;
	e->neg_zeros = (int64_t)ns;
	e->subnormals = (int64_t)sub;
	e->has_input = !strcmp(hi, "true");
	return 0;
}

static int parse_doc(yaml_document_t *d, dqg_set *s)
{
	yaml_node_t *root = yaml_document_get_root_node(d);
	yaml_node_t *files = map_get(d, root, "files");
	uint64_t nf;
	yaml_node_item_t *it;

	if (!files || files->type != YAML_SEQUENCE_NODE || get_u64(d, root, "n_files", &nf))
		return -1;
	s->n_files = (int)nf;
	s->n = (int)(files->data.sequence.items.top - files->data.sequence.items.start);
	s->e = calloc((size_t)s->n + 1, sizeof(*s->e));
	if (!s->e)
		return -1;
	for (it = files->data.sequence.items.start; it < files->data.sequence.items.top; it++) {
		if (parse_entry(d, yaml_document_get_node(d, *it),
				&s->e[it - files->data.sequence.items.start])) {
			fprintf(stderr, "manifest: entry %d incomplete\n",
				(int)(it - files->data.sequence.items.start));
			return -1;
		}
	}
	return 0;
}

int dqg_load(dqg_set *s)
{
	char path[600];
	yaml_parser_t p;
	yaml_document_t d;
	FILE *fp;
	int rc = -1;

	memset(s, 0, sizeof(*s));
	if (!find_dir(s->dir, sizeof(s->dir)))
		return 0;
	snprintf(path, sizeof(path), "%s/manifest.yaml", s->dir);
	fp = fopen(path, "rb");
	if (!fp)
		return -1;
	yaml_parser_initialize(&p);
	yaml_parser_set_input_file(&p, fp);
	if (yaml_parser_load(&p, &d)) {
		rc = parse_doc(&d, s) ? -1 : 1;
		yaml_document_delete(&d);
	} else {
		fprintf(stderr, "%s: YAML error at line %zu: %s\n", path,
			p.problem_mark.line + 1, p.problem ? p.problem : "?");
	}
	yaml_parser_delete(&p);
	fclose(fp);
	if (rc < 0)
		dqg_free(s);
	return rc;
}

void dqg_free(dqg_set *s)
{
	free(s->e);
	s->e = NULL;
	s->n = 0;
}

static int check_shape(const dqg_entry *e, const gguf_tensor *t, uint32_t type, const char *name)
{
	if (!t) {
		fprintf(stderr, "%s: tensor %s missing\n", e->file, name);
		return -1;
	}
	if (t->type != type || t->ne[0] != (int64_t)e->row_len || t->ne[1] != (int64_t)e->n_rows ||
	    !t->data) {
		fprintf(stderr, "%s: tensor %s: type %u shape %lldx%lld, manifest says %u %llux%llu\n",
			e->file, name, t->type, (long long)t->ne[0], (long long)t->ne[1], type,
			(unsigned long long)e->row_len, (unsigned long long)e->n_rows);
		return -1;
	}
	return 0;
}

int dqg_open(const dqg_set *s, const dqg_entry *e, dqg_file *f)
{
	char path[700];
	infer_error err;

	memset(f, 0, sizeof(*f));
	snprintf(path, sizeof(path), "%s/%s", s->dir, e->file);
	f->g = gguf_open(path, &err);
	if (!f->g) {
		fprintf(stderr, "%s: %s\n", path, err.msg);
		return -1;
	}
	f->input = gguf_find_tensor(f->g, "input");
	f->blocks = gguf_find_tensor(f->g, "blocks");
	f->expected = gguf_find_tensor(f->g, "expected");
	if (check_shape(e, f->blocks, e->type_id, "blocks") ||
	    check_shape(e, f->expected, INFER_TYPE_F32, "expected") ||
	    (e->has_input && check_shape(e, f->input, INFER_TYPE_F32, "input")) ||
	    f->blocks->nbytes != e->n_blocks * e->type_size) {
		dqg_close(f);
		return -1;
	}
	return 0;
}

void dqg_close(dqg_file *f)
{
	gguf_close(f->g);
	memset(f, 0, sizeof(*f));
}
