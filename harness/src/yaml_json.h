/* YAML (libyaml) to jansson values, remembering where each value was
 * written so that spec errors can name file:line:col.
 *
 * Scalars follow the YAML 1.2 core schema: a plain scalar that reads as
 * null / bool / int / float becomes that JSON type, anything else (and every
 * quoted scalar) a string. An integer outside int64 stays a string so that
 * no digit is lost (GGUF u64 values in manifests). */
#ifndef HARNESS_YAML_JSON_H
#define HARNESS_YAML_JSON_H

#include <jansson.h>
#include <yaml.h>

#include "infer/error.h"

struct ymark {
	int line, col; /* 1-based; 0 when unknown */
};

/* Where every mapping key / value and sequence item came from. Entries are
 * keyed by the container pointer, which stays valid while the json lives. */
struct ymark_entry {
	const json_t *container; /* NULL for the document root */
	char *key;               /* NULL for sequence items */
	size_t index;
	const json_t *value;
	struct ymark kmark, vmark;
};

struct ymarks {
	char *file;
	struct ymark_entry *v;
	size_t n, cap;
};

void ymarks_init(struct ymarks *m, const char *file);
void ymarks_free(struct ymarks *m);
/* Lookups return {0, 0} when nothing was recorded. */
struct ymark ymarks_key(const struct ymarks *m, const json_t *obj, const char *key);
struct ymark ymarks_val(const struct ymarks *m, const json_t *obj, const char *key);
struct ymark ymarks_item(const struct ymarks *m, const json_t *arr, size_t i);
struct ymark ymarks_node(const struct ymarks *m, const json_t *node);

/* Rewrites a scalar before its type is resolved (variable substitution).
 * Returns a malloc'd string, or NULL with err set. */
typedef char *(*yaml_subst_fn)(void *ctx, const char *text, struct ymark where, infer_error *err);

struct yconv {
	const char *file;      /* for messages */
	struct ymarks *marks;  /* may be NULL */
	yaml_subst_fn subst;   /* may be NULL */
	void *ctx;
	size_t n_nodes;        /* converted so far: aliases cannot blow up memory */
};

/* A loaded document: keep it while converting its nodes. */
struct ydoc {
	yaml_document_t doc;
	int loaded;
};

/* Parses exactly one YAML document. Errors name file:line:col. */
int ydoc_load(struct ydoc *d, const char *path, infer_error *err);
void ydoc_free(struct ydoc *d);
yaml_node_t *ydoc_root(struct ydoc *d);
struct ymark ynode_mark(const yaml_node_t *n);

/* Converts one node (recursively). container/key/index say where the value
 * is stored, for the marks table. NULL with err set on failure. */
json_t *ynode_to_json(struct ydoc *d, yaml_node_t *n, struct yconv *cv, infer_error *err);

/* Whole file, no substitution, no marks (manifests). */
json_t *yaml_load_json(const char *path, infer_error *err);

#endif
