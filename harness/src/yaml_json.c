/* YAML to JSON with source positions (see yaml_json.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "yaml_json.h"

/* Deeper nesting than any spec or manifest needs; also stops alias cycles. */
#define YAML_MAX_DEPTH 64
/* Far above the largest manifest (~60k nodes); stops alias "billion laughs". */
#define YAML_MAX_NODES 1000000

void ymarks_init(struct ymarks *m, const char *file)
{
	memset(m, 0, sizeof(*m));
	m->file = strdup(file ? file : "?");
}

void ymarks_free(struct ymarks *m)
{
	size_t i;

	for (i = 0; i < m->n; i++)
		free(m->v[i].key);
	free(m->v);
	free(m->file);
	memset(m, 0, sizeof(*m));
}

static int ymarks_add(struct ymarks *m, const json_t *container, const char *key, size_t index,
		      const json_t *value, struct ymark km, struct ymark vm)
{
	struct ymark_entry *e;

	if (!m)
		return 0;
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 64;
		struct ymark_entry *v = realloc(m->v, cap * sizeof(*v));

		if (!v)
			return -1;
		m->v = v;
		m->cap = cap;
	}
	e = &m->v[m->n];
	e->container = container;
	e->key = key ? strdup(key) : NULL;
	if (key && !e->key)
		return -1;
	e->index = index;
	e->value = value;
	e->kmark = km;
	e->vmark = vm;
	m->n++;
	return 0;
}

static const struct ymark_entry *find_key(const struct ymarks *m, const json_t *obj, const char *key)
{
	size_t i;

	if (!m)
		return NULL;
	for (i = 0; i < m->n; i++)
		if (m->v[i].container == obj && m->v[i].key && strcmp(m->v[i].key, key) == 0)
			return &m->v[i];
	return NULL;
}

struct ymark ymarks_key(const struct ymarks *m, const json_t *obj, const char *key)
{
	const struct ymark_entry *e = find_key(m, obj, key);

	return e ? e->kmark : (struct ymark){ 0, 0 };
}

struct ymark ymarks_val(const struct ymarks *m, const json_t *obj, const char *key)
{
	const struct ymark_entry *e = find_key(m, obj, key);

	return e ? e->vmark : (struct ymark){ 0, 0 };
}

struct ymark ymarks_item(const struct ymarks *m, const json_t *arr, size_t idx)
{
	size_t i;

	if (!m)
		return (struct ymark){ 0, 0 };
	for (i = 0; i < m->n; i++)
		if (m->v[i].container == arr && !m->v[i].key && m->v[i].index == idx)
			return m->v[i].vmark;
	return (struct ymark){ 0, 0 };
}

struct ymark ymarks_node(const struct ymarks *m, const json_t *node)
{
	size_t i;

	if (!m || !node)
		return (struct ymark){ 0, 0 };
	for (i = 0; i < m->n; i++)
		if (m->v[i].value == node)
			return m->v[i].vmark;
	return (struct ymark){ 0, 0 };
}

struct ymark ynode_mark(const yaml_node_t *n)
{
	return (struct ymark){ (int)n->start_mark.line + 1, (int)n->start_mark.column + 1 };
}

int ydoc_load(struct ydoc *d, const char *path, infer_error *err)
{
	yaml_parser_t p;
	yaml_document_t extra;
	struct stat st;
	FILE *f;
	int rc = 0;

	memset(d, 0, sizeof(*d));
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return infer_error_set(err, INFER_E_IO, -1, "%s: is a directory, not a YAML file", path);
	f = fopen(path, "rb");
	if (!f)
		return infer_error_set(err, INFER_E_IO, -1, "%s: cannot open: %s", path, strerror(errno));
	if (!yaml_parser_initialize(&p)) {
		fclose(f);
		return infer_error_set(err, INFER_E_NOMEM, -1, "%s: yaml parser init failed", path);
	}
	yaml_parser_set_input_file(&p, f);
	if (!yaml_parser_load(&p, &d->doc)) {
		rc = infer_error_set(err, INFER_E_FORMAT, -1, "%s:%zu:%zu: YAML syntax error: %s%s%s", path,
				     p.problem_mark.line + 1, p.problem_mark.column + 1,
				     p.problem ? p.problem : "?", p.context ? " " : "",
				     p.context ? p.context : "");
		goto out;
	}
	d->loaded = 1;
	if (!yaml_document_get_root_node(&d->doc)) {
		rc = infer_error_set(err, INFER_E_FORMAT, -1, "%s:1:1: empty document", path);
		goto out;
	}
	/* One document per file: a second one would be silently ignored otherwise. */
	if (!yaml_parser_load(&p, &extra)) {
		rc = infer_error_set(err, INFER_E_FORMAT, -1, "%s:%zu:%zu: YAML syntax error: %s", path,
				     p.problem_mark.line + 1, p.problem_mark.column + 1,
				     p.problem ? p.problem : "?");
		goto out;
	}
	if (yaml_document_get_root_node(&extra)) {
		yaml_node_t *r = yaml_document_get_root_node(&extra);

		rc = infer_error_set(err, INFER_E_FORMAT, -1,
				     "%s:%zu:%zu: more than one YAML document in the file", path,
				     r->start_mark.line + 1, r->start_mark.column + 1);
	}
	yaml_document_delete(&extra);
out:
	yaml_parser_delete(&p);
	fclose(f);
	if (rc && d->loaded) {
		yaml_document_delete(&d->doc);
		d->loaded = 0;
	}
	return rc;
}

void ydoc_free(struct ydoc *d)
{
	if (d->loaded)
		yaml_document_delete(&d->doc);
	d->loaded = 0;
}

yaml_node_t *ydoc_root(struct ydoc *d)
{
	return d->loaded ? yaml_document_get_root_node(&d->doc) : NULL;
}

static int is_int_text(const char *s)
{
	if (*s == '-' || *s == '+')
		s++;
	if (!*s)
		return 0;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'o'))
		return s[2] != 0 && strspn(s + 2, s[1] == 'x' ? "0123456789abcdefABCDEF" : "01234567") ==
			strlen(s + 2);
	return strspn(s, "0123456789") == strlen(s);
}

static int is_float_text(const char *s)
{
	const char *p = s;
	int digits = 0;

	if (*p == '-' || *p == '+')
		p++;
	if (!strcmp(p, ".inf") || !strcmp(p, ".Inf") || !strcmp(p, ".INF"))
		return 1;
	if (!strcmp(s, ".nan") || !strcmp(s, ".NaN") || !strcmp(s, ".NAN"))
		return 1;
	for (; *p >= '0' && *p <= '9'; p++)
		digits++;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			digits++;
	if (!digits)
		return 0;
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '-' || *p == '+')
			p++;
		if (!(*p >= '0' && *p <= '9'))
			return 0;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	return *p == 0;
}

/* JSON has no infinity or NaN: those stay strings (".inf"), as do values
 * that overflow a double. */
static json_t *float_value(const char *s)
{
	const char *p = s + (*s == '-' || *s == '+');
	double d = strtod(s, NULL);

	if ((p[0] == '.' && p[1] > '9') || !isfinite(d))
		return json_string(s);
	return json_real(d);
}

/* YAML 1.2 core schema for plain scalars. */
static json_t *resolve_plain(const char *s)
{
	if (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL"))
		return json_null();
	if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
		return json_true();
	if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
		return json_false();
	if (is_int_text(s)) {
		const char *p = s + (*s == '-' || *s == '+');
		int base = p[0] == '0' && p[1] == 'x' ? 16 : p[0] == '0' && p[1] == 'o' ? 8 : 10;
		long long v;
		char *end;

		errno = 0;
		if (base == 10) {
			v = strtoll(s, &end, 10);
		} else {
			v = (long long)strtoll(p + 2, &end, base);
			if (*s == '-')
				v = -v;
		}
		if (errno == ERANGE)
			return json_string(s); /* keep every digit */
		return json_integer(v);
	}
	if (is_float_text(s))
		return float_value(s);
	return json_string(s);
}

static json_t *scalar_to_json(yaml_node_t *n, struct yconv *cv, infer_error *err)
{
	const char *text = (const char *)n->data.scalar.value;
	char *sub = NULL;
	json_t *v;
	int plain = n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	size_t len = strlen(text);

	/* "${TOL}" quoted as a whole (flow mappings need the quotes) takes the
	 * type of the value, as the plain ${TOL} would. */
	if (len > 3 && text[0] == '$' && text[1] == '{' && strchr(text, '}') == text + len - 1)
		plain = 1;
	if (cv && cv->subst) {
		sub = cv->subst(cv->ctx, text, ynode_mark(n), err);
		if (!sub)
			return NULL;
		text = sub;
	}
	/* libyaml's document loader gives every untagged scalar the !!str tag,
	 * so the tag cannot tell "!!str 1" from "1": quote such values. */
	v = plain ? resolve_plain(text) : json_stringn(text, strlen(text));
	if (!v)
		infer_error_set(err, INFER_E_FORMAT, -1, "%s:%d:%d: cannot convert scalar (invalid UTF-8?)",
				cv && cv->file ? cv->file : "?", ynode_mark(n).line, ynode_mark(n).col);
	free(sub);
	return v;
}

static json_t *node_to_json(struct ydoc *d, yaml_node_t *n, struct yconv *cv, int depth,
			    infer_error *err);

static json_t *seq_to_json(struct ydoc *d, yaml_node_t *n, struct yconv *cv, int depth,
			   infer_error *err)
{
	json_t *arr = json_array();
	yaml_node_item_t *it;
	size_t i = 0;

	if (!arr)
		return NULL;
	for (it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++, i++) {
		yaml_node_t *c = yaml_document_get_node(&d->doc, *it);
		json_t *v = node_to_json(d, c, cv, depth + 1, err);

		if (!v || json_array_append_new(arr, v) ||
		    ymarks_add(cv ? cv->marks : NULL, arr, NULL, i, v, ynode_mark(c), ynode_mark(c))) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

static json_t *map_to_json(struct ydoc *d, yaml_node_t *n, struct yconv *cv, int depth,
			   infer_error *err)
{
	const char *file = cv && cv->file ? cv->file : "?";
	json_t *obj = json_object();
	yaml_node_pair_t *p;

	if (!obj)
		return NULL;
	for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(&d->doc, p->key);
		yaml_node_t *vn = yaml_document_get_node(&d->doc, p->value);
		const char *key;
		json_t *v;

		if (k->type != YAML_SCALAR_NODE) {
			infer_error_set(err, INFER_E_FORMAT, -1, "%s:%d:%d: mapping key must be a scalar",
					file, ynode_mark(k).line, ynode_mark(k).col);
			goto fail;
		}
		key = (const char *)k->data.scalar.value;
		if (json_object_get(obj, key)) {
			infer_error_set(err, INFER_E_FORMAT, -1, "%s:%d:%d: duplicate key '%s'", file,
					ynode_mark(k).line, ynode_mark(k).col, key);
			goto fail;
		}
		v = node_to_json(d, vn, cv, depth + 1, err);
		if (!v)
			goto fail;
		if (json_object_set_new(obj, key, v) ||
		    ymarks_add(cv ? cv->marks : NULL, obj, key, 0, v, ynode_mark(k), ynode_mark(vn))) {
			infer_error_set(err, INFER_E_NOMEM, -1, "%s: out of memory", file);
			goto fail;
		}
	}
	return obj;
fail:
	json_decref(obj);
	return NULL;
}

static json_t *node_to_json(struct ydoc *d, yaml_node_t *n, struct yconv *cv, int depth,
			    infer_error *err)
{
	if (cv && ++cv->n_nodes > YAML_MAX_NODES) {
		infer_error_set(err, INFER_E_FORMAT, -1, "%s:%d:%d: more than %d nodes (alias expansion?)",
				cv->file ? cv->file : "?", ynode_mark(n).line, ynode_mark(n).col, YAML_MAX_NODES);
		return NULL;
	}
	if (depth > YAML_MAX_DEPTH) {
		infer_error_set(err, INFER_E_FORMAT, -1, "%s:%d:%d: nesting deeper than %d (alias cycle?)",
				cv && cv->file ? cv->file : "?", ynode_mark(n).line, ynode_mark(n).col,
				YAML_MAX_DEPTH);
		return NULL;
	}
	switch (n->type) {
	case YAML_SCALAR_NODE:
		return scalar_to_json(n, cv, err);
	case YAML_SEQUENCE_NODE:
		return seq_to_json(d, n, cv, depth, err);
	case YAML_MAPPING_NODE:
		return map_to_json(d, n, cv, depth, err);
	default:
		infer_error_set(err, INFER_E_FORMAT, -1, "%s: empty YAML node", cv && cv->file ? cv->file : "?");
		return NULL;
	}
}

json_t *ynode_to_json(struct ydoc *d, yaml_node_t *n, struct yconv *cv, infer_error *err)
{
	return node_to_json(d, n, cv, 0, err);
}

json_t *yaml_load_json(const char *path, infer_error *err)
{
	struct ydoc d;
	struct yconv cv = { .file = path };
	json_t *j;

	if (ydoc_load(&d, path, err))
		return NULL;
	j = ynode_to_json(&d, ydoc_root(&d), &cv, err);
	ydoc_free(&d);
	return j;
}
