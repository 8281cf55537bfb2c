/* Atomic whole-file writes (infer/file.h): temporary file, fsync, rename. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "infer/file.h"

static mode_t umask_mode(void)
{
	mode_t mask = umask(0);

	umask(mask);
	return 0666 & ~mask;
}

/* Runs the body on the open temporary file and closes it; an I/O failure
 * the body did not describe is described here. */
static int fill(FILE *fp, const char *path, infer_file_body body, void *user, infer_error *err)
{
	infer_error e = { INFER_OK, -1, "" };
	int rc;

	errno = 0;
	rc = body(fp, user, &e);
	if (!rc && (fflush(fp) || ferror(fp) || fsync(fileno(fp))))
		rc = INFER_E_IO;
	if (fclose(fp) && !rc)
		rc = INFER_E_IO;
	if (!rc)
		return 0;
	if (e.code != INFER_OK) {
		if (err)
			*err = e;
		return e.code;
	}
	return infer_error_set(err, INFER_E_IO, -1, "%s: write failed: %s", path,
			       strerror(errno ? errno : EIO));
}

int infer_write_atomic(const char *path, mode_t mode, infer_file_body body, void *user,
		       infer_error *err)
{
	char *tmp;
	FILE *fp;
	int fd, rc;

	if (asprintf(&tmp, "%s.tmp-XXXXXX", path) < 0)
		return infer_error_set(err, INFER_E_NOMEM, -1, "out of memory");
	fd = mkstemp(tmp);
	if (fd < 0) {
		rc = infer_error_set(err, INFER_E_IO, -1, "%s: cannot create: %s", path,
				     strerror(errno));
		free(tmp);
		return rc;
	}
	/* mkstemp creates 0600 */
	fp = fchmod(fd, mode == INFER_FILE_UMASK ? umask_mode() : mode) ? NULL : fdopen(fd, "wb");
	if (!fp) {
		rc = infer_error_set(err, INFER_E_IO, -1, "%s: %s", path, strerror(errno));
		close(fd);
	} else {
		rc = fill(fp, path, body, user, err);
	}
	if (!rc && rename(tmp, path))
		rc = infer_error_set(err, INFER_E_IO, -1, "%s: cannot rename into place: %s", path,
				     strerror(errno));
	if (rc)
		unlink(tmp);
	free(tmp);
	return rc;
}
