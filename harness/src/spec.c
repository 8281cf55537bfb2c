/* Spec loader (see spec.h and specs/README.md for the schema).
 *
 * Every error names file:line:col of the offending key or value. Loading is
 * all or nothing: on the first error everything built so far is freed. */
#include <errno.h>
#include <fnmatch.h>
#include <glob.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "compare.h"
#include "infer/gguf.h"
#include "infer/quant.h"
#include "spec.h"
#include "yaml_json.h"

#define EACH_PREFIX "each."

struct loader {
	struct spec *spec;
	const json_t *set;
	json_t *stack; /* realpaths being loaded: include cycles */
	json_t *seen;  /* realpaths already loaded: a diamond include loads once */
	json_t *ids;   /* check id -> "file:line:col" where it was defined */
	size_t cap;
	infer_error *err;
};

struct file_ctx {
	struct loader *L;
	const char *path; /* as shown in messages */
	char *dir;        /* absolute directory of the file */
	json_t *vars;     /* effective variables (inherited win over own) */
	json_t *inherited;
	struct ymarks marks;
};

static const char *const top_keys[] = { "suite", "description", "include", "vars", "backends",
					"checks", NULL };
static const char *const check_keys[] = { "id", "kind", "description", "tags", "backends", "inputs",
					  "params", "tolerance", "expand", "requires", NULL };
static const char *const expand_keys[] = { "glob", "manifest", "tensors", "list", "file_key", "match", NULL };

static int in_list(const char *const *list, const char *s)
{
	for (; *list; list++)
		if (strcmp(*list, s) == 0)
			return 1;
	return 0;
}

__attribute__((format(printf, 3, 4)))
static int fail_at(struct file_ctx *fc, struct ymark m, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (m.line <= 0)
		m = (struct ymark){ 1, 1 };
	return infer_error_set(fc->L->err, INFER_E_FORMAT, -1, "%s:%d:%d: %s", fc->path, m.line, m.col, msg);
}

static int file_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* Removes "." and "dir/.." components of an absolute path in place, so
 * that messages show /work/shared rather than /work/main/specs/../../shared.
 * Lexical only: the path may not exist (a missing reference set). */
static void path_tidy(char *p)
{
	char *out = p, *seg = p;

	if (*p != '/')
		return;
	while (*seg) {
		char *end;
		size_t len;

		while (*seg == '/')
			seg++;
		end = strchr(seg, '/');
		len = end ? (size_t)(end - seg) : strlen(seg);
		if (len == 0)
			break;
		if (len == 1 && seg[0] == '.') {
			/* skip */
		} else if (len == 2 && seg[0] == '.' && seg[1] == '.') {
			while (out > p && *--out != '/')
				;
		} else {
			*out++ = '/';
			memmove(out, seg, len);
			out += len;
		}
		seg += len;
	}
	if (out == p)
		*out++ = '/';
	*out = 0;
}

/* Joins dir and a relative path; an absolute path is returned as is. */
static char *path_join(const char *dir, const char *rel)
{
	size_t n;
	char *s;

	if (rel[0] == '/' || !dir || !*dir) {
		s = strdup(rel);
	} else {
		n = strlen(dir) + strlen(rel) + 2;
		s = malloc(n);
		if (s)
			snprintf(s, n, "%s/%s", dir, rel);
	}
	if (s)
		path_tidy(s);
	return s;
}

static char *dir_of(const char *path)
{
	char *tmp = strdup(path), *d;

	if (!tmp)
		return NULL;
	d = strdup(dirname(tmp));
	free(tmp);
	return d;
}

/* ---- variables ----------------------------------------------------------- */

static const char *var_lookup(struct file_ctx *fc, const char *name)
{
	const json_t *v = fc->L->set ? json_object_get(fc->L->set, name) : NULL;

	if (json_is_string(v))
		return json_string_value(v);
	v = json_object_get(fc->vars, name);
	if (json_is_string(v))
		return json_string_value(v);
	if (strcmp(name, "SPEC_DIR") == 0)
		return fc->dir;
	return NULL;
}

struct sbuf {
	char *s;
	size_t n, cap;
};

static int sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		size_t cap = (b->n + n + 1) * 2;
		char *p = realloc(b->s, cap);

		if (!p)
			return -1;
		b->s = p;
		b->cap = cap;
	}
	memcpy(b->s + b->n, s, n);
	b->n += n;
	b->s[b->n] = 0;
	return 0;
}

/* ${NAME} -> value; $$ -> $; ${each.*} is left for expansion. */
static char *subst_vars(void *ctx, const char *text, struct ymark where, infer_error *err)
{
	struct file_ctx *fc = ctx;
	struct sbuf b = { 0 };
	const char *p = text;

	if (sb_add(&b, "", 0))
		return NULL;
	while (*p) {
		const char *q = strchr(p, '$'), *end;
		char name[128];
		const char *val;
		size_t len;

		if (!q) {
			if (sb_add(&b, p, strlen(p)))
				goto nomem;
			break;
		}
		if (sb_add(&b, p, (size_t)(q - p)))
			goto nomem;
		if (q[1] == '$') {
			if (sb_add(&b, "$", 1))
				goto nomem;
			p = q + 2;
			continue;
		}
		if (q[1] != '{') {
			if (sb_add(&b, "$", 1))
				goto nomem;
			p = q + 1;
			continue;
		}
		end = strchr(q + 2, '}');
		len = end ? (size_t)(end - q - 2) : 0;
		if (!end || len == 0 || len >= sizeof(name)) {
			fail_at(fc, where, "bad variable reference in '%s' (write ${NAME}, or $$ for $)", text);
			goto fail;
		}
		memcpy(name, q + 2, len);
		name[len] = 0;
		if (strncmp(name, EACH_PREFIX, strlen(EACH_PREFIX)) == 0) {
			if (sb_add(&b, q, len + 3))
				goto nomem;
		} else {
			val = var_lookup(fc, name);
			if (!val) {
				fail_at(fc, where, "undefined variable ${%s} (define it under vars: or pass --set %s=...)",
					name, name);
				goto fail;
			}
			if (sb_add(&b, val, strlen(val)))
				goto nomem;
		}
		p = end + 1;
	}
	return b.s;
nomem:
	infer_error_set(err, INFER_E_NOMEM, -1, "out of memory");
fail:
	free(b.s);
	return NULL;
}

static char *scalar_string(const json_t *v)
{
	char buf[64];

	if (json_is_string(v))
		return strdup(json_string_value(v));
	if (json_is_integer(v))
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (json_is_real(v))
		snprintf(buf, sizeof(buf), "%.17g", json_real_value(v));
	else if (json_is_boolean(v))
		snprintf(buf, sizeof(buf), "%s", json_is_true(v) ? "true" : "false");
	else
		return NULL;
	return strdup(buf);
}

/* vars: evaluated in order, each may use the ones before it; a value the
 * including file (or --set) already gave wins. */
static int load_vars(struct file_ctx *fc, struct ydoc *d, yaml_node_t *node)
{
	yaml_node_pair_t *p;

	if (node->type != YAML_MAPPING_NODE)
		return fail_at(fc, ynode_mark(node), "'vars' must be a mapping of NAME: value");
	for (p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(&d->doc, p->key);
		yaml_node_t *vn = yaml_document_get_node(&d->doc, p->value);
		struct yconv cv = { .file = fc->path, .subst = subst_vars, .ctx = fc };
		const char *name = k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "";
		json_t *v;
		char *s;

		if (!*name || strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") !=
				      strlen(name) || (name[0] >= '0' && name[0] <= '9'))
			return fail_at(fc, ynode_mark(k), "bad variable name (letters, digits, _)");
		if (vn->type != YAML_SCALAR_NODE)
			return fail_at(fc, ynode_mark(vn), "variable '%s' must be a scalar", name);
		v = ynode_to_json(d, vn, &cv, fc->L->err);
		if (!v)
			return fc->L->err->code;
		s = scalar_string(v);
		json_decref(v);
		if (!s)
			return fail_at(fc, ynode_mark(vn), "variable '%s' must be a string or number", name);
		if (!json_object_get(fc->inherited, name))
			json_object_set_new(fc->vars, name, json_string(s));
		free(s);
	}
	return 0;
}

/* ---- typed access with positions ------------------------------------------ */

static int want(struct file_ctx *fc, const json_t *obj, const char *key, int ok, const char *what)
{
	if (ok)
		return 0;
	return fail_at(fc, ymarks_val(&fc->marks, obj, key), "'%s' must be %s", key, what);
}

static int check_keys_known(struct file_ctx *fc, const json_t *obj, const char *const *keys,
			    const char *where)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)obj, k, v) {
		if (!in_list(keys, k))
			return fail_at(fc, ymarks_key(&fc->marks, obj, k), "unknown key '%s' in %s", k, where);
	}
	return 0;
}

/* Does an error message name this key? Kinds write "key: ...", compare.c
 * "tolerance.key: ..." or "... 'key' ...". */
static int names_key(const char *msg, const char *key)
{
	char a[160], b[160];
	size_t n = strlen(key);

	if (!strncmp(msg, key, n) && msg[n] == ':')
		return 1;
	snprintf(a, sizeof(a), "tolerance.%s:", key);
	snprintf(b, sizeof(b), "'%s'", key);
	return strstr(msg, a) || strstr(msg, b);
}

static int is_str_array(const json_t *a)
{
	size_t i;
	json_t *v;

	if (!json_is_array(a))
		return 0;
	json_array_foreach(a, i, v)
		if (!json_is_string(v))
			return 0;
	return 1;
}

static int check_backends(struct file_ctx *fc, const json_t *obj)
{
	const json_t *b = json_object_get(obj, "backends");
	size_t i;
	json_t *v;

	if (!b)
		return 0;
	if (want(fc, obj, "backends", is_str_array(b) && json_array_size(b) > 0,
		 "a non-empty list of backends (cpu, cuda)"))
		return fc->L->err->code;
	json_array_foreach(b, i, v) {
		const char *s = json_string_value(v);

		if (strcmp(s, "cpu") && strcmp(s, "cuda"))
			return fail_at(fc, ymarks_item(&fc->marks, b, i), "unknown backend '%s' (cpu, cuda)", s);
	}
	return 0;
}

/* ---- expansion ------------------------------------------------------------ */

static char *stem_of(const char *file)
{
	char *s = strdup(file), *dot;

	if (s && (dot = strrchr(s, '.')) && dot != s)
		*dot = 0;
	return s;
}

static json_t *each_for_path(const char *path)
{
	const char *base = strrchr(path, '/');
	char *stem;
	json_t *e;

	base = base ? base + 1 : path;
	stem = stem_of(base);
	e = json_pack("{s:s, s:s, s:s}", "path", path, "file", base, "stem", stem ? stem : base);
	free(stem);
	return e;
}

/* Replaces ${each.X} in s. When each is a string (or null: "*") every
 * ${each.X} becomes that string: the stand-in of an expansion that could not
 * happen. Unknown X: returns NULL with bad = X. */
static char *subst_each(const char *s, const json_t *each, char *bad, size_t badn)
{
	struct sbuf b = { 0 };
	const char *p = s, *q;

	if (sb_add(&b, "", 0))
		return NULL;
	while ((q = strstr(p, "${" EACH_PREFIX))) {
		const char *name = q + 2 + strlen(EACH_PREFIX), *end = strchr(name, '}');
		char key[128];
		const json_t *v;
		char *val;
		size_t len = end ? (size_t)(end - name) : 0;

		if (!end || len >= sizeof(key))
			break;
		memcpy(key, name, len);
		key[len] = 0;
		v = json_is_object(each) ? json_object_get(each, key) : NULL;
		if (json_is_string(each))
			val = strdup(json_string_value(each));
		else
			val = json_is_null(each) ? strdup("*") : v ? scalar_string(v) : NULL;
		if (!val) {
			snprintf(bad, badn, "%s", key);
			free(b.s);
			return NULL;
		}
		if (sb_add(&b, p, (size_t)(q - p)) || sb_add(&b, val, strlen(val))) {
			free(val);
			free(b.s);
			return NULL;
		}
		free(val);
		p = end + 1;
	}
	if (sb_add(&b, p, strlen(p))) {
		free(b.s);
		return NULL;
	}
	return b.s;
}

/* Deep copy of v with ${each.*} substituted in every string. */
static json_t *each_copy(const json_t *v, const json_t *each, char *bad, size_t badn)
{
	json_t *out, *c;
	const char *k;
	json_t *x;
	size_t i;

	if (json_is_string(v)) {
		char *s = subst_each(json_string_value(v), each, bad, badn);

		if (!s)
			return NULL;
		out = json_string(s);
		free(s);
		return out;
	}
	if (json_is_object(v)) {
		out = json_object();
		json_object_foreach((json_t *)v, k, x) {
			c = each_copy(x, each, bad, badn);
			if (!c || json_object_set_new(out, k, c)) {
				json_decref(out);
				return NULL;
			}
		}
		return out;
	}
	if (json_is_array(v)) {
		out = json_array();
		json_array_foreach(v, i, x) {
			c = each_copy(x, each, bad, badn);
			if (!c || json_array_append_new(out, c)) {
				json_decref(out);
				return NULL;
			}
		}
		return out;
	}
	return json_deep_copy(v);
}

/* One "each" per tensor of a GGUF file (names matching match):
 * ${each.tensor}, ${each.type}, ${each.n_elements}, plus path/file/stem. */
static int expand_tensors(struct file_ctx *fc, const json_t *ex, const json_t *t, const char *match,
			  json_t *out)
{
	char *path = path_join(fc->dir, json_string_value(t));
	infer_error e = { 0 };
	gguf_file *f;
	int64_t i;

	if (!path)
		return infer_error_set(fc->L->err, INFER_E_NOMEM, -1, "out of memory");
	f = gguf_open(path, &e);
	if (!f) {
		fail_at(fc, ymarks_val(&fc->marks, ex, "tensors"), "cannot read %s: %s", path, e.msg);
		free(path);
		return fc->L->err->code;
	}
	for (i = 0; i < gguf_n_tensors(f); i++) {
		const gguf_tensor *gt = gguf_tensor_at(f, i);
		json_t *each;

		if (match && fnmatch(match, gt->name, 0))
			continue;
		each = each_for_path(path);
		json_object_set_new(each, "tensor", json_string(gt->name));
		json_object_set_new(each, "type", json_string(infer_type_name(gt->type)));
		json_object_set_new(each, "n_elements", json_integer(gt->n_elements));
		json_array_append_new(out, each);
	}
	gguf_close(f);
	free(path);
	return 0;
}

/* Builds the list of "each" objects for a check's expand: block. */
/* One "each" per file of a glob, sorted (glob's order). */
static int expand_glob(struct file_ctx *fc, const json_t *ex, const char *match, json_t *out)
{
	const char *g = json_string_value(json_object_get(ex, "glob"));
	char *pat = path_join(fc->dir, g);
	glob_t gl;
	size_t i;
	int rc = pat ? glob(pat, 0, NULL, &gl) : GLOB_NOSPACE;

	free(pat);
	if (rc == GLOB_NOMATCH || (rc == 0 && gl.gl_pathc == 0)) {
		if (rc == 0)
			globfree(&gl);
		return fail_at(fc, ymarks_val(&fc->marks, ex, "glob"), "glob '%s' matches no file", g);
	}
	if (rc)
		return fail_at(fc, ymarks_val(&fc->marks, ex, "glob"), "glob '%s' failed", g);
	for (i = 0; i < gl.gl_pathc; i++) {
		json_t *e = each_for_path(gl.gl_pathv[i]);

		if (match && fnmatch(match, json_string_value(json_object_get(e, "file")), 0))
			json_decref(e);
		else
			json_array_append_new(out, e);
	}
	globfree(&gl);
	return 0;
}

/* The "each" of one manifest entry: the file's path/file/stem, every scalar
 * field as ${each.<field>}, and the whole entry for the kind. */
static json_t *each_for_entry(const char *mdir, const char *file, json_t *ent)
{
	char *p = path_join(mdir, file);
	const char *k;
	json_t *v, *e;

	if (!p)
		return NULL;
	e = each_for_path(p);
	free(p);
	json_object_foreach(ent, k, v)
		if (!json_is_object(v) && !json_is_array(v) && !json_object_get(e, k))
			json_object_set(e, k, v);
	json_object_set(e, "entry", ent);
	return e;
}

/* One "each" per entry of a manifest's list (default "files"). */
static int expand_manifest(struct file_ctx *fc, const json_t *ex, const char *match, json_t *out)
{
	const char *list = json_string_value(json_object_get(ex, "list"));
	const char *fkey = json_string_value(json_object_get(ex, "file_key"));
	struct ymark m = ymarks_val(&fc->marks, ex, "manifest");
	char *mpath = path_join(fc->dir, json_string_value(json_object_get(ex, "manifest")));
	char *mdir = mpath ? dir_of(mpath) : NULL;
	json_t *doc = NULL, *arr = NULL, *ent;
	size_t i;
	int rc = 0;

	if (!list)
		list = "files";
	if (!fkey)
		fkey = "file";
	if (!mpath || !mdir)
		rc = infer_error_set(fc->L->err, INFER_E_NOMEM, -1, "out of memory");
	else if (!file_exists(mpath))
		rc = fail_at(fc, m, "manifest not found: %s", mpath);
	else if (!(doc = yaml_load_json(mpath, fc->L->err)))
		rc = fc->L->err->code;
	else if (!json_is_array(arr = json_object_get(doc, list)))
		rc = fail_at(fc, m, "manifest %s has no list '%s'", mpath, list);
	json_array_foreach(rc ? NULL : arr, i, ent) {
		const char *file = json_string_value(json_object_get(ent, fkey));

		if (!json_is_object(ent) || !file) {
			rc = fail_at(fc, m, "manifest %s: entry %zu has no '%s' string", mpath, i, fkey);
			break;
		}
		if (!match || !fnmatch(match, file, 0))
			json_array_append_new(out, each_for_entry(mdir, file, ent));
	}
	json_decref(doc);
	free(mpath);
	free(mdir);
	return rc;
}

/* Builds the list of "each" objects for a check's expand: block (exactly
 * one source: validate_template checked). */
static int expand_list(struct file_ctx *fc, const json_t *ex, json_t **items)
{
	const char *match = json_string_value(json_object_get(ex, "match"));
	const json_t *t = json_object_get(ex, "tensors");

	*items = json_array();
	if (json_object_get(ex, "glob"))
		return expand_glob(fc, ex, match, *items);
	if (json_object_get(ex, "manifest"))
		return expand_manifest(fc, ex, match, *items);
	if (t)
		return expand_tensors(fc, ex, t, match, *items);
	return fail_at(fc, ymarks_node(&fc->marks, ex), "'expand' needs 'glob', 'manifest' or 'tensors'");
}

/* ---- one check ----------------------------------------------------------- */

static int validate_template(struct file_ctx *fc, const json_t *c)
{
	const json_t *v;
	const struct check_kind *kind;

	if (!json_is_object(c))
		return fail_at(fc, ymarks_node(&fc->marks, c), "a check must be a mapping");
	if (check_keys_known(fc, c, check_keys, "check"))
		return fc->L->err->code;
	if (!json_is_string(json_object_get(c, "id")))
		return fail_at(fc, json_object_get(c, "id") ? ymarks_val(&fc->marks, c, "id") :
							      ymarks_node(&fc->marks, c),
			       "check needs an 'id' string");
	v = json_object_get(c, "kind");
	if (!json_is_string(v))
		return fail_at(fc, v ? ymarks_val(&fc->marks, c, "kind") : ymarks_node(&fc->marks, c),
			       "check '%s' needs a 'kind' string", json_string_value(json_object_get(c, "id")));
	kind = check_kind_find(json_string_value(v));
	if (!kind)
		return fail_at(fc, ymarks_val(&fc->marks, c, "kind"),
			       "unknown check kind '%s' (gguf_parse, dequant, kernel, activations, tokenizer, haiku)",
			       json_string_value(v));
	if ((v = json_object_get(c, "description")) && want(fc, c, "description", json_is_string(v), "a string"))
		return fc->L->err->code;
	if ((v = json_object_get(c, "tags")) && want(fc, c, "tags", is_str_array(v), "a list of strings"))
		return fc->L->err->code;
	if (check_backends(fc, c))
		return fc->L->err->code;
	if ((v = json_object_get(c, "inputs"))) {
		const char *k;
		json_t *x;

		if (want(fc, c, "inputs", json_is_object(v), "a mapping of name: path"))
			return fc->L->err->code;
		json_object_foreach((json_t *)v, k, x)
			if (!json_is_string(x))
				return fail_at(fc, ymarks_val(&fc->marks, v, k), "input '%s' must be a path string", k);
	}
	if ((v = json_object_get(c, "params")) && want(fc, c, "params", json_is_object(v), "a mapping"))
		return fc->L->err->code;
	if ((v = json_object_get(c, "tolerance"))) {
		cmp_tolerance t;
		infer_error e = { 0 };
		const char *k;
		json_t *x;

		if (want(fc, c, "tolerance", json_is_object(v), "a mapping such as {nmse: 1e-7, max_abs: 1e-4}"))
			return fc->L->err->code;
		if (cmp_tolerance_parse(v, &t, &e)) {
			struct ymark m = ymarks_val(&fc->marks, c, "tolerance");

			/* Point at the key the message names, when it names one. */
			json_object_foreach((json_t *)v, k, x)
				if (names_key(e.msg, k)) {
					m = ymarks_key(&fc->marks, v, k);
					break;
				}
			return fail_at(fc, m, "bad tolerance: %s", e.msg);
		}
	}
	if ((v = json_object_get(c, "requires")) &&
	    want(fc, c, "requires", json_is_string(v) || is_str_array(v), "a path or a list of paths"))
		return fc->L->err->code;
	if ((v = json_object_get(c, "expand"))) {
		size_t i, sources = 0;

		if (want(fc, c, "expand", json_is_object(v), "a mapping with 'glob', 'manifest' or 'tensors'") ||
		    check_keys_known(fc, v, expand_keys, "expand"))
			return fc->L->err->code;
		for (i = 0; expand_keys[i]; i++) {
			const json_t *x = json_object_get(v, expand_keys[i]);

			if (x && want(fc, v, expand_keys[i], json_is_string(x), "a string"))
				return fc->L->err->code;
			/* the first three are the sources: exactly one of them */
			if (x && i < 3 && ++sources > 1)
				return fail_at(fc, ymarks_key(&fc->marks, v, expand_keys[i]),
					       "'expand' takes one of 'glob', 'manifest' or 'tensors', not both");
		}
	}
	return 0;
}

/* First path of `requires` that does not exist, or NULL. */
static char *missing_requirement(struct file_ctx *fc, const json_t *c)
{
	const json_t *r = json_object_get(c, "requires");
	size_t i, n = json_is_array(r) ? json_array_size(r) : (r ? 1 : 0);

	for (i = 0; i < n; i++) {
		const json_t *v = json_is_array(r) ? json_array_get(r, i) : r;
		char *p = path_join(fc->dir, json_string_value(v));

		if (p && !file_exists(p))
			return p;
		free(p);
	}
	return NULL;
}

static int push_check(struct file_ctx *fc, const json_t *tmpl, json_t *inst, const char *suite,
		      const json_t *file_backends)
{
	struct loader *L = fc->L;
	struct spec *s = L->spec;
	struct check *c;
	const char *id = json_string_value(json_object_get(inst, "id"));
	struct ymark m = ymarks_val(&fc->marks, tmpl, "id");
	const json_t *prev = json_object_get(L->ids, id);
	const json_t *b;
	char where[600];

	/* Stand-ins of skipped expansions may share an id ("layers/ *"): number
	 * them, since they only carry the skip reason. A real duplicate is an error. */
	if (prev && json_object_get(json_object_get(inst, "params"), SPEC_SKIP_KEY)) {
		char alt[512];
		int k;

		for (k = 2; prev; k++) {
			snprintf(alt, sizeof(alt), "%s#%d", json_string_value(json_object_get(inst, "id")), k);
			prev = json_object_get(L->ids, alt);
		}
		json_object_set_new(inst, "id", json_string(alt));
		id = json_string_value(json_object_get(inst, "id"));
	}
	if (prev)
		return fail_at(fc, m, "duplicate check id '%s' (first defined at %s)", id, json_string_value(prev));
	snprintf(where, sizeof(where), "%s:%d:%d", fc->path, m.line, m.col);
	json_object_set_new(L->ids, id, json_string(where));
	if (s->n_checks == L->cap) {
		size_t cap = L->cap ? L->cap * 2 : 64;
		struct check *v = realloc(s->checks, cap * sizeof(*v));

		if (!v)
			return infer_error_set(L->err, INFER_E_NOMEM, -1, "out of memory");
		s->checks = v;
		L->cap = cap;
	}
	c = &s->checks[s->n_checks];
	memset(c, 0, sizeof(*c));
	c->id = strdup(id);
	c->suite = strdup(suite);
	c->kind = strdup(json_string_value(json_object_get(inst, "kind")));
	c->spec_file = strdup(fc->path);
	c->spec_dir = strdup(fc->dir);
	c->tags = json_incref(json_object_get(inst, "tags"));
	if (!c->tags)
		c->tags = json_array();
	c->params = json_incref(json_object_get(inst, "params"));
	c->tolerance = json_incref(json_object_get(inst, "tolerance"));
	b = json_object_get(inst, "backends");
	if (!b)
		b = file_backends;
	c->backends = b ? json_deep_copy(b) : json_pack("[ss]", "cpu", "cuda");
	s->n_checks++;
	if (!c->id || !c->suite || !c->kind || !c->spec_file || !c->spec_dir || !c->params || !c->backends)
		return infer_error_set(L->err, INFER_E_NOMEM, -1, "out of memory");
	return 0;
}

/* inputs -> params with resolved paths; the files must exist unless skipped. */
static int finish_instance(struct file_ctx *fc, const json_t *tmpl, json_t *inst, const json_t *each,
			   const char *skip)
{
	json_t *params = json_object_get(inst, "params");
	const json_t *inputs = json_object_get(inst, "inputs");
	const struct check_kind *kind = check_kind_find(json_string_value(json_object_get(inst, "kind")));
	const char *k;
	json_t *v;
	infer_error e = { 0 };

	if (!params) {
		params = json_object();
		json_object_set_new(inst, "params", params);
	}
	json_object_foreach((json_t *)inputs, k, v) {
		char *p = path_join(fc->dir, json_string_value(v));
		const json_t *tin = json_object_get(tmpl, "inputs");

		if (!p)
			return infer_error_set(fc->L->err, INFER_E_NOMEM, -1, "out of memory");
		if (json_object_get(params, k)) {
			free(p);
			return fail_at(fc, ymarks_key(&fc->marks, tin, k), "input '%s' also given in params", k);
		}
		if (!skip && !file_exists(p)) {
			fail_at(fc, ymarks_val(&fc->marks, tin, k), "input '%s' not found: %s", k, p);
			free(p);
			return fc->L->err->code;
		}
		json_object_set_new(params, k, json_string(p));
		free(p);
	}
	if (each && json_object_get(each, "entry"))
		json_object_set(params, "entry", json_object_get(each, "entry"));
	if (skip) {
		json_object_set_new(params, SPEC_SKIP_KEY, json_string(skip));
		return 0;
	}
	if (kind->validate && kind->validate(params, json_object_get(inst, "tolerance"), &e)) {
		const json_t *tp = json_object_get(tmpl, "params");
		struct ymark m = json_object_get(tmpl, "params") ? ymarks_val(&fc->marks, tmpl, "params") :
								   ymarks_val(&fc->marks, tmpl, "kind");

		json_object_foreach((json_t *)tp, k, v)
			if (names_key(e.msg, k)) {
				m = ymarks_key(&fc->marks, tp, k);
				break;
			}
		return fail_at(fc, m, "%s check '%s': %s", kind->name,
			       json_string_value(json_object_get(inst, "id")), e.msg);
	}
	return 0;
}

static int instantiate(struct file_ctx *fc, const json_t *tmpl, const json_t *each, const char *skip,
		       const char *suite, const json_t *file_backends)
{
	char bad[128] = "";
	json_t *inst;
	int rc;

	/* Skipped before expansion: ${each.*} become the expansion's match
	 * pattern (or "*"), which keeps the id readable: "kernels/softmax.*". */
	if (skip) {
		const char *match = json_string_value(json_object_get(json_object_get(tmpl, "expand"), "match"));
		json_t *stand_in = match ? json_string(match) : json_null();

		inst = each_copy(tmpl, stand_in, bad, sizeof(bad));
		json_decref(stand_in);
	} else {
		inst = each_copy(tmpl, each, bad, sizeof(bad));
	}
	if (!inst && bad[0])
		return fail_at(fc, ymarks_node(&fc->marks, tmpl),
			       each ? "${each.%s} is not a field of the expansion" :
				      "${each.%s} used in a check without 'expand'", bad);
	if (!inst)
		return infer_error_set(fc->L->err, INFER_E_NOMEM, -1, "out of memory");
	rc = finish_instance(fc, tmpl, inst, each, skip);
	if (!rc)
		rc = push_check(fc, tmpl, inst, suite, file_backends);
	json_decref(inst);
	return rc;
}

static int load_check(struct file_ctx *fc, const json_t *tmpl, const char *suite, const json_t *file_backends)
{
	const json_t *ex = json_object_get(tmpl, "expand");
	char *missing;
	char reason[PATH_MAX + 64];
	json_t *items = NULL, *e;
	size_t i;
	int rc;

	if (validate_template(fc, tmpl))
		return fc->L->err->code;
	missing = missing_requirement(fc, tmpl);
	if (missing) {
		snprintf(reason, sizeof(reason), "skipped: reference set not found (%s)", missing);
		free(missing);
		return instantiate(fc, tmpl, NULL, reason, suite, file_backends);
	}
	if (!ex)
		return instantiate(fc, tmpl, NULL, NULL, suite, file_backends);
	rc = expand_list(fc, ex, &items);
	json_array_foreach(items, i, e) {
		if (rc)
			break;
		rc = instantiate(fc, tmpl, e, NULL, suite, file_backends);
	}
	if (!rc && json_array_size(items) == 0)
		rc = fail_at(fc, ymarks_val(&fc->marks, tmpl, "expand"), "expansion selects no file");
	json_decref(items);
	return rc;
}

/* ---- one file ------------------------------------------------------------ */

static int load_file(struct loader *L, const char *path, const json_t *inherited, struct ymark from,
		     const char *from_file);

static int load_includes(struct file_ctx *fc, const json_t *root)
{
	const json_t *inc = json_object_get(root, "include");
	size_t i, n;

	if (!inc)
		return 0;
	if (want(fc, root, "include", json_is_string(inc) || is_str_array(inc), "a path or a list of paths"))
		return fc->L->err->code;
	n = json_is_array(inc) ? json_array_size(inc) : 1;
	for (i = 0; i < n; i++) {
		const char *rel = json_string_value(json_is_array(inc) ? json_array_get(inc, i) : inc);
		struct ymark m = json_is_array(inc) ? ymarks_item(&fc->marks, inc, i) :
						      ymarks_val(&fc->marks, root, "include");
		char *shown, *d = dir_of(fc->path);
		int rc;

		shown = rel[0] == '/' ? strdup(rel) : path_join(strcmp(d, ".") ? d : NULL, rel);
		free(d);
		if (!shown)
			return infer_error_set(fc->L->err, INFER_E_NOMEM, -1, "out of memory");
		rc = load_file(fc->L, shown, fc->vars, m, fc->path);
		free(shown);
		if (rc)
			return rc;
	}
	return 0;
}

static int load_body(struct file_ctx *fc, struct ydoc *d)
{
	struct yconv cv = { .file = fc->path, .marks = &fc->marks, .subst = subst_vars, .ctx = fc };
	yaml_node_t *rn = ydoc_root(d);
	yaml_node_pair_t *p;
	const json_t *checks, *v;
	const char *suite;
	json_t *root;
	size_t i;
	int rc;

	if (rn->type != YAML_MAPPING_NODE)
		return fail_at(fc, ynode_mark(rn), "a spec file must be a mapping (suite, checks, ...)");
	for (p = rn->data.mapping.pairs.start; p < rn->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(&d->doc, p->key);

		if (k->type == YAML_SCALAR_NODE && !strcmp((const char *)k->data.scalar.value, "vars") &&
		    load_vars(fc, d, yaml_document_get_node(&d->doc, p->value)))
			return fc->L->err->code;
	}
	root = ynode_to_json(d, rn, &cv, fc->L->err);
	if (!root)
		return fc->L->err->code;
	rc = check_keys_known(fc, root, top_keys, "spec file");
	if (!rc && (v = json_object_get(root, "suite")))
		rc = want(fc, root, "suite", json_is_string(v) && json_string_length(v) > 0, "a non-empty string");
	if (!rc && (v = json_object_get(root, "description")))
		rc = want(fc, root, "description", json_is_string(v), "a string");
	if (!rc)
		rc = check_backends(fc, root);
	checks = json_object_get(root, "checks");
	if (!rc && checks)
		rc = want(fc, root, "checks", json_is_array(checks), "a list of checks");
	if (!rc && json_array_size(checks) && !json_object_get(root, "suite"))
		rc = fail_at(fc, ymarks_key(&fc->marks, root, "checks"), "a file with checks needs a 'suite'");
	if (!rc)
		rc = load_includes(fc, root);
	suite = json_string_value(json_object_get(root, "suite"));
	if (!rc && suite && !json_object_get(fc->L->spec->suites, suite))
		json_object_set_new(fc->L->spec->suites, suite,
				    json_pack("{s:s, s:s}", "description",
					      json_string_value(json_object_get(root, "description")) ?
						      json_string_value(json_object_get(root, "description")) : "",
					      "file", fc->path));
	for (i = 0; !rc && i < json_array_size(checks); i++)
		rc = load_check(fc, json_array_get(checks, i), suite, json_object_get(root, "backends"));
	json_decref(root);
	return rc;
}

static int load_file(struct loader *L, const char *path, const json_t *inherited, struct ymark from,
		     const char *from_file)
{
	struct file_ctx fc = { .L = L, .path = path };
	char real[PATH_MAX];
	struct ydoc d;
	size_t i;
	int rc;

	if (!realpath(path, real)) {
		if (from_file)
			return infer_error_set(L->err, INFER_E_FORMAT, -1, "%s:%d:%d: include not found: %s (%s)",
					       from_file, from.line, from.col, path, strerror(errno));
		return infer_error_set(L->err, INFER_E_IO, -1, "%s: cannot open spec: %s", path, strerror(errno));
	}
	for (i = 0; i < json_array_size(L->stack); i++)
		if (!strcmp(json_string_value(json_array_get(L->stack, i)), real))
			return infer_error_set(L->err, INFER_E_FORMAT, -1, "%s:%d:%d: include cycle through %s",
					       from_file ? from_file : path, from.line, from.col, path);
	if (json_object_get(L->seen, real))
		return 0;
	json_object_set_new(L->seen, real, json_true());
	if (ydoc_load(&d, path, L->err))
		return L->err->code == INFER_E_IO ? INFER_E_IO : INFER_E_FORMAT;
	json_array_append_new(L->stack, json_string(real));
	json_array_append_new(L->spec->files, json_string(path));
	fc.dir = dir_of(real);
	fc.inherited = inherited ? json_deep_copy(inherited) : json_object();
	fc.vars = json_deep_copy(fc.inherited);
	ymarks_init(&fc.marks, path);
	rc = (fc.dir && fc.vars && fc.inherited) ? load_body(&fc, &d) :
						   infer_error_set(L->err, INFER_E_NOMEM, -1, "out of memory");
	ymarks_free(&fc.marks);
	json_decref(fc.vars);
	json_decref(fc.inherited);
	free(fc.dir);
	ydoc_free(&d);
	json_array_remove(L->stack, json_array_size(L->stack) - 1);
	return rc;
}

/* ---- public -------------------------------------------------------------- */

void spec_free(struct spec *s)
{
	size_t i;

	for (i = 0; i < s->n_checks; i++) {
		struct check *c = &s->checks[i];

		free(c->id);
		free(c->suite);
		free(c->kind);
		free(c->spec_file);
		free(c->spec_dir);
		json_decref(c->tags);
		json_decref(c->params);
		json_decref(c->tolerance);
		json_decref(c->backends);
	}
	free(s->checks);
	json_decref(s->files);
	json_decref(s->suites);
	json_decref(s->set);
	memset(s, 0, sizeof(*s));
}

int spec_load(struct spec *out, const char *const *paths, int n_paths, const json_t *set, infer_error *err)
{
	struct loader L = { .spec = out, .err = err };
	infer_error dummy;
	int i, rc = 0;

	if (!err)
		L.err = &dummy;
	memset(out, 0, sizeof(*out));
	out->files = json_array();
	out->suites = json_object();
	out->set = set ? json_deep_copy(set) : json_object();
	L.set = out->set;
	L.stack = json_array();
	L.seen = json_object();
	L.ids = json_object();
	if (!out->files || !out->suites || !out->set || !L.stack || !L.seen || !L.ids)
		rc = infer_error_set(L.err, INFER_E_NOMEM, -1, "out of memory");
	for (i = 0; !rc && i < n_paths; i++)
		rc = load_file(&L, paths[i], NULL, (struct ymark){ 0, 0 }, NULL);
	json_decref(L.stack);
	json_decref(L.seen);
	json_decref(L.ids);
	if (rc) {
		char *p;

		spec_free(out);
		/* One line: messages quote spec text, which may hold newlines. */
		for (p = L.err->msg; *p; p++)
			if ((unsigned char)*p < 0x20)
				*p = ' ';
	}
	return rc;
}
