/* infer_write_atomic: the content lands whole, with the asked mode; a body
 * that fails (described or plain I/O) and an uncreatable destination leave
 * nothing behind and say what and where. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cunit_table.h"
#include "infer/file.h"

static char dir[64];

static int body_hello(FILE *fp, void *user, infer_error *err)
{
	return fputs(user, fp) < 0 ? -1 : 0;
}

static int body_fails(FILE *fp, void *user, infer_error *err)
{
	fputs("partial", fp);
	return infer_error_set(err, INFER_E_FORMAT, 7, "bad thing at byte 7");
}

static int body_io(FILE *fp, void *user, infer_error *err)
{
	fputs("partial", fp);
	return -1;
}

/* Entries in dir (the temporary files must be gone). */
static int entries(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	if (d)
		closedir(d);
	return n;
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/infer-file-XXXXXX");
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CU_ASSERT_EQUAL(system(cmd), 0);
}

static void test_writes_whole(void)
{
	char path[128], buf[32] = { 0 };
	infer_error err;
	struct stat st;
	FILE *fp;

	setup();
	snprintf(path, sizeof(path), "%s/out.txt", dir);
	CU_ASSERT_EQUAL(infer_write_atomic(path, 0640, body_hello, "hello", &err), 0);
	fp = fopen(path, "rb");
	CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
	CU_ASSERT_EQUAL(fread(buf, 1, sizeof(buf) - 1, fp), 5);
	fclose(fp);
	CU_ASSERT_STRING_EQUAL(buf, "hello");
	CU_ASSERT_EQUAL(stat(path, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0640);
	CU_ASSERT_EQUAL(entries(), 1);
	teardown();
}

static void test_failed_body_leaves_nothing(void)
{
	char path[128];
	infer_error err;

	setup();
	snprintf(path, sizeof(path), "%s/out.txt", dir);
	CU_ASSERT_EQUAL(infer_write_atomic(path, INFER_FILE_UMASK, body_fails, NULL, &err),
			INFER_E_FORMAT);
	CU_ASSERT_STRING_EQUAL(err.msg, "bad thing at byte 7");
	CU_ASSERT_EQUAL(err.offset, 7);
	CU_ASSERT_EQUAL(entries(), 0);
	CU_ASSERT_EQUAL(infer_write_atomic(path, INFER_FILE_UMASK, body_io, NULL, &err), INFER_E_IO);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "write failed"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, path));
	CU_ASSERT_EQUAL(entries(), 0);
	teardown();
}

static void test_uncreatable(void)
{
	infer_error err;

	CU_ASSERT_EQUAL(infer_write_atomic("/nonexistent-dir/x/out.txt", INFER_FILE_UMASK, body_hello,
					   "hello", &err),
			INFER_E_IO);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "/nonexistent-dir/x/out.txt: cannot create"));
}

int main(void)
{
	static const struct cu_case cases[] = {
		{ "content lands whole with the asked mode", test_writes_whole },
		{ "a failing body leaves nothing, error kept or named", test_failed_body_leaves_nothing },
		{ "an uncreatable destination is named", test_uncreatable },
	};

	return cu_run_table("file", cases, sizeof(cases) / sizeof(cases[0])) ? 1 : 0;
}
