/* conform: run conformance specs against the runtime and write reports.
 *
 *   conform run SPEC... [--backend cpu|cuda|all] [--filter GLOB] [--set K=V]
 *                       [--report-dir DIR] [--no-skip] [--shard K/N]
 *   conform list SPEC... [--filter GLOB] [--set K=V] [--shard K/N]
 *   conform merge DIR... --report-dir OUT
 *   conform --help
 *
 * Exit: 0 everything passed (skips allowed unless --no-skip), 1 a check
 * failed or errored (or reports could not be written), 2 usage or spec error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "merge.h"
#include "report/report.h"
#include "run.h"
#include "spec.h"

#define EXIT_USAGE 2

static const char usage[] =
	"usage: conform run SPEC... [--backend cpu|cuda|all] [--filter GLOB] [--set K=V]\n"
	"                           [--report-dir DIR] [--no-skip] [--shard K/N]\n"
	"       conform list SPEC... [--filter GLOB] [--set K=V] [--shard K/N]\n"
	"       conform merge DIR... --report-dir OUT\n"
	"       conform --help\n"
	"\n"
	"run     load the YAML specs (schema: specs/README.md), run every selected check on\n"
	"        every selected backend and print one line per result (a progress line on a TTY)\n"
	"list    print the checks the specs define (after includes, variables and expansion)\n"
	"merge   merge the report.json of several runs (shards, GPUs) into one set of reports\n"
	"\n"
	"  --backend B      cpu, cuda or all (default all; an unavailable backend's checks are skipped)\n"
	"  --filter GLOB    only checks whose id matches GLOB (tag:GLOB matches a tag)\n"
	"  --set K=V        override spec variable K (repeatable)\n"
	"  --report-dir DIR write junit.xml, report.json, report.html and summary.md into DIR\n"
	"  --no-skip        a skipped check makes the run fail\n"
	"  --shard K/N      run the K-th of N deterministic slices of the checks (1 <= K <= N)\n"
	"\n"
	"exit status: 0 all passed, 1 a check failed or errored, 2 usage or spec error\n";

struct cli {
	const char **pos; /* positional arguments */
	int n_pos;
	const char *backend;
	const char *filter;
	const char *report_dir;
	json_t *set;
	int no_skip;
	int shard_k, shard_n;
};

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "conform: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n(conform --help for usage)\n");
	return EXIT_USAGE;
}

static int parse_shard(const char *s, int *k, int *n)
{
	char extra;

	if (sscanf(s, "%d/%d%c", k, n, &extra) != 2 || *n < 1 || *k < 1 || *k > *n)
		return -1;
	return 0;
}

/* Option value: "--opt=value" or "--opt value". */
static const char *opt_value(int argc, char **argv, int *i, const char *name)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n) == 0 && argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (strcmp(argv[*i], name) == 0 && *i + 1 < argc)
		return argv[++*i];
	return NULL;
}

static int is_opt(const char *arg, const char *name)
{
	size_t n = strlen(name);

	return strncmp(arg, name, n) == 0 && (arg[n] == 0 || arg[n] == '=');
}

/* --set VAR=value into set. */
static int parse_set(const char *v, json_t *set)
{
	const char *eq = v ? strchr(v, '=') : NULL;
	char name[128];
	size_t len = eq ? (size_t)(eq - v) : 0;

	if (!eq || len == 0)
		return usage_error("--set takes VAR=value (got '%s')", v ? v : "");
	if (len >= sizeof(name))
		return usage_error("--set variable name too long: %s", v);
	memcpy(name, v, len);
	name[len] = 0;
	return json_object_set_new(set, name, json_string(eq + 1)) ? EXIT_USAGE : 0;
}

/* allowed: which options the verb takes ("bfsrnh" letters). */
static int parse_args(int argc, char **argv, const char *allowed, struct cli *c)
{
	int i;

	c->pos = calloc((size_t)argc, sizeof(*c->pos));
	c->set = json_object();
	if (!c->pos || !c->set)
		return usage_error("%s", "out of memory");
	for (i = 2; i < argc; i++) {
		const char *a = argv[i], *v;

		if (a[0] != '-' || !a[1]) {
			c->pos[c->n_pos++] = a;
			continue;
		}
		if (is_opt(a, "--backend") && strchr(allowed, 'b')) {
			v = opt_value(argc, argv, &i, "--backend");
			if (!v || (strcmp(v, "cpu") && strcmp(v, "cuda") && strcmp(v, "all")))
				return usage_error("--backend takes cpu, cuda or all (got '%s')", v ? v : "");
			c->backend = v;
		} else if (is_opt(a, "--filter") && strchr(allowed, 'f')) {
			if (!(c->filter = opt_value(argc, argv, &i, "--filter")))
				return usage_error("%s needs a GLOB", a);
		} else if (is_opt(a, "--set") && strchr(allowed, 's')) {
			if (parse_set(opt_value(argc, argv, &i, "--set"), c->set))
				return EXIT_USAGE;
		} else if (is_opt(a, "--report-dir") && strchr(allowed, 'r')) {
			if (!(c->report_dir = opt_value(argc, argv, &i, "--report-dir")))
				return usage_error("%s needs a DIR", a);
		} else if (!strcmp(a, "--no-skip") && strchr(allowed, 'n')) {
			c->no_skip = 1;
		} else if (is_opt(a, "--shard") && strchr(allowed, 'h')) {
			v = opt_value(argc, argv, &i, "--shard");
			if (!v || parse_shard(v, &c->shard_k, &c->shard_n))
				return usage_error("--shard takes K/N with 1 <= K <= N (got '%s')", v ? v : "");
		} else {
			return usage_error("unknown or misplaced option '%s'", a);
		}
	}
	return 0;
}

static void cli_free(struct cli *c)
{
	free(c->pos);
	json_decref(c->set);
}

static int load(struct cli *c, struct spec *s)
{
	infer_error err = { 0 };

	if (c->n_pos == 0)
		return usage_error("%s", "no SPEC given");
	if (spec_load(s, c->pos, c->n_pos, c->set, &err)) {
		fprintf(stderr, "conform: spec error: %s\n", err.msg);
		return EXIT_USAGE;
	}
	return 0;
}

static int write_reports(const json_t *doc, const char *dir)
{
	infer_error err = { 0 };

	if (!dir)
		return 0;
	if (report_write_all(doc, dir, &err)) {
		fprintf(stderr, "conform: cannot write reports to %s: %s\n", dir, err.msg);
		return 1;
	}
	printf("reports: %s/{junit.xml,report.json,report.html,summary.md}\n", dir);
	return 0;
}

static void print_summary(const json_t *doc)
{
	const json_t *n = json_object_get(doc, "counts");

	printf("conform: %lld results: %lld pass, %lld fail, %lld skip, %lld error -> %s\n",
	       (long long)json_integer_value(json_object_get(n, "total")),
	       (long long)json_integer_value(json_object_get(n, "pass")),
	       (long long)json_integer_value(json_object_get(n, "fail")),
	       (long long)json_integer_value(json_object_get(n, "skip")),
	       (long long)json_integer_value(json_object_get(n, "error")),
	       json_string_value(json_object_get(doc, "verdict")));
}

static int cmd_run(int argc, char **argv)
{
	struct cli c = { 0 };
	struct spec s;
	struct run_options o = { 0 };
	json_t *doc;
	int rc;

	if ((rc = parse_args(argc, argv, "bfsrnh", &c)) || (rc = load(&c, &s))) {
		cli_free(&c);
		return rc;
	}
	o.backend = c.backend ? c.backend : "all";
	o.filter = c.filter;
	o.shard_k = c.shard_k;
	o.shard_n = c.shard_n;
	o.no_skip = c.no_skip;
	o.progress = isatty(STDERR_FILENO) && isatty(STDOUT_FILENO);
	o.log = stdout;
	o.argc = argc;
	o.argv = argv;
	doc = run_checks(&s, &o);
	if (!doc) {
		fprintf(stderr, "conform: out of memory\n");
		spec_free(&s);
		cli_free(&c);
		return 1;
	}
	if (json_array_size(json_object_get(doc, "results")) == 0)
		fprintf(stderr, "conform: no check selected (filter/shard/backend): that is not a pass\n");
	print_summary(doc);
	rc = strcmp(json_string_value(json_object_get(doc, "verdict")), "pass") ? 1 : 0;
	if (write_reports(doc, c.report_dir))
		rc = 1;
	json_decref(doc);
	spec_free(&s);
	cli_free(&c);
	return rc;
}

static int cmd_list(int argc, char **argv)
{
	struct cli c = { 0 };
	struct run_options o = { .backend = "all" };
	struct spec s;
	size_t i, n = 0;
	int rc;

	if ((rc = parse_args(argc, argv, "fsh", &c)) || (rc = load(&c, &s))) {
		cli_free(&c);
		return rc;
	}
	o.filter = c.filter;
	o.shard_k = c.shard_k;
	o.shard_n = c.shard_n;
	for (i = 0; i < s.n_checks; i++) {
		const struct check *k = &s.checks[i];
		char *b = json_dumps(k->backends, JSON_COMPACT);
		const char *skip = check_param_str(k, SPEC_SKIP_KEY, NULL);

		if (!run_selects(k, &o)) {
			free(b);
			continue;
		}
		printf("%-48s %-12s %-12s %s%s%s\n", k->id, k->kind, k->suite, b ? b : "",
		       skip ? "  " : "", skip ? skip : "");
		free(b);
		n++;
	}
	printf("%zu checks\n", n);
	spec_free(&s);
	cli_free(&c);
	return 0;
}

static int cmd_merge(int argc, char **argv)
{
	struct cli c = { 0 };
	infer_error err = { 0 };
	json_t *doc;
	int rc;

	if ((rc = parse_args(argc, argv, "r", &c))) {
		cli_free(&c);
		return rc;
	}
	if (c.n_pos == 0 || !c.report_dir) {
		cli_free(&c);
		return usage_error("%s", "merge needs DIR... and --report-dir OUT");
	}
	doc = merge_reports(c.pos, c.n_pos, &err);
	if (!doc) {
		fprintf(stderr, "conform: merge: %s\n", err.msg);
		cli_free(&c);
		return EXIT_USAGE;
	}
	print_summary(doc);
	rc = strcmp(json_string_value(json_object_get(doc, "verdict")), "pass") ? 1 : 0;
	if (write_reports(doc, c.report_dir))
		rc = 1;
	json_decref(doc);
	cli_free(&c);
	return rc;
}

int main(int argc, char **argv)
{
	int i;

	if (argc < 2)
		return usage_error("%s", "missing command (run, list, merge)");
	/* --help anywhere ("conform run --help") prints the usage. */
	for (i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") || (i == 1 && !strcmp(argv[i], "help"))) {
			fputs(usage, stdout);
			return 0;
		}
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc, argv);
	if (!strcmp(argv[1], "list"))
		return cmd_list(argc, argv);
	if (!strcmp(argv[1], "merge"))
		return cmd_merge(argc, argv);
	return usage_error("unknown command '%s' (run, list, merge, --help)", argv[1]);
}
