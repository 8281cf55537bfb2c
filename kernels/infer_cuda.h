/* The CUDA backend's only door: plain C declarations the runtime calls.
 * Built only when nvcc is found (INFER_HAVE_CUDA). */
#ifndef INFER_CUDA_H
#define INFER_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "infer/backend.h"
#include "infer/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#include "infer/sampler.h" /* has no C++ guard of its own */

/* 1 when a usable CUDA device exists; otherwise 0 and the reason in err. */
int infer_cuda_available(infer_error *err);
/* Device name, e.g. "NVIDIA H100 80GB HBM3"; "" when none. */
const char *infer_cuda_device_name(void);
/* The CUDA kernel-level op table (backend.h contract), NULL + err when unavailable. */
const infer_ops *infer_cuda_ops(infer_error *err);

/* For `infer bench`: the device-memory bandwidth measured here (bytes read
 * plus bytes written per second by a 1 GiB device-to-device copy, median of
 * 5 after a warm-up), 0 + err on failure; and device memory in use / total. */
double infer_cuda_peak_bandwidth(infer_error *err);
int infer_cuda_mem_info(uint64_t *used, uint64_t *total, infer_error *err);

/* Sampling on the device (sample.cu): the chain of infer_sampler_sample on
 * n_vocab logits already on the device (d_logits; stream: a cudaStream_t or
 * NULL). The host keeps the PRNG: u is infer_sampler_next_unit()'s draw,
 * needed (and to be drawn) only when p->temperature > 0; pen_ids are the
 * distinct ids infer_sampler_penalty_ids() lists for the history. The pick
 * equals the CPU sampler's except when top_p or u * mass lies within
 * ~1e-16 relative of a cumulative-mass boundary (sample.cu: tie rule).
 * logprob_raw / logprob_final as infer_sampler_sample (either may be NULL). */
typedef struct infer_cuda_sampler infer_cuda_sampler;
infer_cuda_sampler *infer_cuda_sampler_new(int32_t n_vocab, infer_error *err);
void infer_cuda_sampler_free(infer_cuda_sampler *cs);
int infer_cuda_sample(infer_cuda_sampler *cs, const float *d_logits, int32_t n_vocab,
		      const infer_sampler_params *p, double u, const int32_t *pen_ids,
		      int32_t n_pen, void *stream, int32_t *id, float *logprob_raw,
		      float *logprob_final, infer_error *err);
/* infer_cuda_sample in two halves, so work can be queued behind the pick
 * before the host waits for it: enqueue puts the pick and its copy to the
 * host on the stream; finish waits for that copy only (an event), not for
 * what was queued after it. One enqueue, then one finish, per pick. */
int infer_cuda_sample_enqueue(infer_cuda_sampler *cs, const float *d_logits, int32_t n_vocab,
			      const infer_sampler_params *p, double u, const int32_t *pen_ids,
			      int32_t n_pen, void *stream, infer_error *err);
int infer_cuda_sample_finish(infer_cuda_sampler *cs, int32_t *id, float *logprob_raw,
			     float *logprob_final, infer_error *err);
/* Device address of the picked id: valid on the enqueue's stream after the
 * enqueue, until the next enqueue (a kernel there may read it). */
const int32_t *infer_cuda_sample_id_device(const infer_cuda_sampler *cs);

#ifdef __cplusplus
}
#endif

#endif
