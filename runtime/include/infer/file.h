/* Writing a whole file so that readers only ever see the old one or the new
 * one: the body goes to a temporary file beside the destination, which is
 * flushed to disk and renamed into place; on any failure it is removed and
 * no partial output is left behind. */
#ifndef INFER_FILE_H
#define INFER_FILE_H

#include <stdio.h>
#include <sys/types.h>

#include "infer/error.h"

/* Writes the file's content to fp; returns 0, or non-zero on failure (with
 * *err filled, or left untouched for a plain I/O error: then the caller
 * reports "PATH: write failed: <errno text>"). */
typedef int (*infer_file_body)(FILE *fp, void *user, infer_error *err);

/* mode: the file's permission bits, or INFER_FILE_UMASK for 0666 minus the
 * process umask (what fopen would give). */
#define INFER_FILE_UMASK ((mode_t)-1)

int infer_write_atomic(const char *path, mode_t mode, infer_file_body body, void *user,
		       infer_error *err);

#endif
