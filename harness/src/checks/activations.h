/* A test seam of the activations check kind (activations.c). */
#ifndef HARNESS_CHECKS_ACTIVATIONS_H
#define HARNESS_CHECKS_ACTIVATIONS_H

#include <stdint.h>

/* Called on each row of logits the decode pass computed ([n_vocab] for one
 * position), after the runtime produced it and before it is compared. NULL
 * (always, outside unit tests): it lets a test corrupt what the untapped
 * product path returned, and nothing else, to prove the decode pass FAILS on
 * its own and that the failure is attributed to it. */
extern void (*activations_decode_hook)(float *logits, int64_t n_vocab, int64_t position);

#endif
