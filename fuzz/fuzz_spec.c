/* libFuzzer target for the spec loader (harness/src/spec.c): any bytes as a
 * spec file must either load into well-formed checks or be refused with an
 * error that names file:line:col. spec_load reads files by path, so each
 * input is written to a private sandbox:
 *
 *   SANDBOX/specs/fuzz.yaml   the input
 *   SANDBOX/specs/NAME.yaml   links to specs/ and harness/tests/fixtures/
 *                             (includes of the seeds resolve)
 *   SANDBOX/specs/data        link to the fixtures' data/
 *   SANDBOX/golden            link to the repository's golden/ (globs and
 *                             manifests of the real specs expand)
 *
 * Run from the repository root (ci/fuzz.sh does) or set INFER_SOURCE_DIR.
 * Invariants: success gives checks with non-empty id/suite/kind, a params
 * object and a non-empty backend list, ids unique; failure gives
 * INFER_E_FORMAT/IO/NOMEM with a one-line message, and a format error names
 * "file:line:col: ". ASan's leak check at exit covers "nothing left
 * allocated" on either path. */
#include <dirent.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spec.h"

#define REQUIRE(cond)                                                                   \
	do {                                                                             \
		if (!(cond)) {                                                           \
			fprintf(stderr, "fuzz_spec: invariant failed: %s (%s:%d)\n", #cond, \
				__FILE__, __LINE__);                                     \
			abort();                                                         \
		}                                                                        \
	} while (0)

static char spec_path[PATH_MAX];

static void die(const char *what, const char *path)
{
	fprintf(stderr, "fuzz_spec: %s: %s\n", what, path);
	exit(1);
}

static void link_or_die(const char *target, const char *dir, const char *name)
{
	char at[PATH_MAX];

	snprintf(at, sizeof(at), "%s/%s", dir, name);
	if (symlink(target, at))
		die("cannot create link", at);
}

/* Links every REPO/SUB/NAME.yaml into the sandbox's specs/. */
static void link_specs(const char *repo, const char *sub, const char *dir)
{
	char src[PATH_MAX], target[PATH_MAX];
	struct dirent *e;
	DIR *d;

	snprintf(src, sizeof(src), "%s/%s", repo, sub);
	d = opendir(src);
	if (!d)
		die("cannot open", src);
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name);

		if (n < 6 || strcmp(e->d_name + n - 5, ".yaml"))
			continue;
		snprintf(target, sizeof(target), "%s/%s", src, e->d_name);
		link_or_die(target, dir, e->d_name);
	}
	closedir(d);
}

static char sandbox[PATH_MAX];

static void remove_sandbox(void)
{
	char cmd[PATH_MAX + 16];

	/* Links only (and the input): rm -r does not follow them. */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", sandbox);
	if (system(cmd))
		fprintf(stderr, "fuzz_spec: could not remove %s\n", sandbox);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *env = getenv("INFER_SOURCE_DIR");
	char repo[PATH_MAX], specs[PATH_MAX], golden[PATH_MAX];

	(void)argc;
	(void)argv;
	if (!realpath(env ? env : ".", repo))
		die("cannot resolve the repository root", env ? env : ".");
	snprintf(golden, sizeof(golden), "%s/golden", repo);
	if (access(golden, R_OK))
		die("not the repository root (run from it or set INFER_SOURCE_DIR)", repo);
	snprintf(sandbox, sizeof(sandbox), "%s/fuzz_spec.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(sandbox))
		die("cannot create a sandbox", sandbox);
	atexit(remove_sandbox);
	link_or_die(golden, sandbox, "golden");
	snprintf(specs, sizeof(specs), "%s/specs", sandbox);
	if (mkdir(specs, 0700))
		die("cannot create", specs);
	link_specs(repo, "specs", specs);
	link_specs(repo, "harness/tests/fixtures", specs);
	snprintf(golden, sizeof(golden), "%s/harness/tests/fixtures/data", repo);
	link_or_die(golden, specs, "data");
	snprintf(spec_path, sizeof(spec_path), "%s/fuzz.yaml", specs);
	return 0;
}

static int write_input(const uint8_t *data, size_t size)
{
	FILE *f = fopen(spec_path, "wb");

	if (!f)
		return -1;
	if (size && fwrite(data, 1, size, f) != size) {
		fclose(f);
		return -1;
	}
	return fclose(f);
}

/* "path:line:col: what" with line, col >= 1, somewhere after a path. */
static int names_location(const char *msg)
{
	const char *p;

	for (p = strchr(msg, ':'); p; p = strchr(p + 1, ':')) {
		int line, col, n = 0;

		if (sscanf(p, ":%d:%d: %n", &line, &col, &n) == 2 && n > 0 && line >= 1 && col >= 1)
			return 1;
	}
	return 0;
}

static void check_loaded(const struct spec *s)
{
	json_t *ids = json_object();

	REQUIRE(ids);
	REQUIRE(json_is_array(s->files) && json_array_size(s->files) >= 1);
	REQUIRE(json_is_object(s->suites));
	for (size_t i = 0; i < s->n_checks; i++) {
		const struct check *c = &s->checks[i];

		REQUIRE(c->id && c->id[0] && c->suite && c->suite[0] && c->kind && c->kind[0]);
		REQUIRE(c->spec_file && c->spec_dir);
		REQUIRE(json_is_object(c->params));
		REQUIRE(!c->tolerance || json_is_object(c->tolerance));
		REQUIRE(json_is_array(c->tags));
		REQUIRE(json_is_array(c->backends) && json_array_size(c->backends) >= 1);
		REQUIRE(json_object_get(s->suites, c->suite));
		REQUIRE(!json_object_get(ids, c->id));
		json_object_set_new(ids, c->id, json_true());
	}
	json_decref(ids);
}

static void check_refused(int rc, const infer_error *err)
{
	REQUIRE(rc == INFER_E_FORMAT || rc == INFER_E_IO || rc == INFER_E_NOMEM);
	REQUIRE(err->code == rc);
	REQUIRE(err->msg[0] && !strchr(err->msg, '\n'));
	if (rc == INFER_E_FORMAT && !names_location(err->msg)) {
		fprintf(stderr, "fuzz_spec: format error without file:line:col: %s\n", err->msg);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *paths[1] = { spec_path };
	struct spec s;
	infer_error err = { 0 };
	int rc;

	if (write_input(data, size))
		die("cannot write", spec_path);
	rc = spec_load(&s, paths, 1, NULL, &err);
	if (rc) {
		check_refused(rc, &err);
		return 0;
	}
	check_loaded(&s);
	spec_free(&s);
	return 0;
}
