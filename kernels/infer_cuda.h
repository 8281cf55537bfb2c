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

#ifdef __cplusplus
}
#endif

#endif
