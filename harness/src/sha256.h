/* SHA-256 (FIPS 180-4), for manifest fields that record a digest. */
#ifndef HARNESS_SHA256_H
#define HARNESS_SHA256_H

#include <stddef.h>

/* Lower-case hex digest of data into out (65 bytes with the NUL). */
void sha256_hex(const void *data, size_t len, char out[65]);

#endif
