/* Shared plumbing of the CUDA backend: checked CUDA/cuBLAS calls, error
 * reporting into infer_error, and the launch counter.
 *
 * Every CUDA and cuBLAS call goes through CK()/CKB(), which put the failing
 * call, file and line into the caller's infer_error and return from the
 * enclosing function (or jump to its cleanup label with CKG()). The kernels
 * library depends on nothing of the runtime library (error filling is done
 * here) so it links in either order. */
#ifndef INFER_CUDA_COMMON_CUH
#define INFER_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include "infer/error.h"

/* printf-style fill of *err (NULL allowed); returns code. */
static inline int cu_err(infer_error *err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;

		err->code = code;
		err->offset = -1;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return code;
}

static inline const char *cublas_status_str(cublasStatus_t s)
{
	switch (s) {
	case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
	case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
	case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
	case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
	case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
	case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
	case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
	case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
	case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
	default: return "CUBLAS_STATUS_?";
	}
}

/* Return from the enclosing int function when a CUDA call fails. */
#define CK(call)                                                                     \
	do {                                                                         \
		cudaError_t ck_e_ = (call);                                          \
		if (ck_e_ != cudaSuccess)                                            \
			return cu_err(err, INFER_E_DEVICE, "%s failed: %s (%s:%d)", #call, \
				      cudaGetErrorString(ck_e_), __FILE__, __LINE__);  \
	} while (0)

/* Same, but set rc and jump to the label `out` so allocations are released. */
#define CKG(call)                                                                    \
	do {                                                                         \
		cudaError_t ck_e_ = (call);                                          \
		if (ck_e_ != cudaSuccess) {                                          \
			rc = cu_err(err, INFER_E_DEVICE, "%s failed: %s (%s:%d)", #call, \
				    cudaGetErrorString(ck_e_), __FILE__, __LINE__);    \
			goto out;                                                    \
		}                                                                    \
	} while (0)

#define CKB(call)                                                                    \
	do {                                                                         \
		cublasStatus_t ck_s_ = (call);                                       \
		if (ck_s_ != CUBLAS_STATUS_SUCCESS)                                  \
			return cu_err(err, INFER_E_DEVICE, "%s failed: %s (%s:%d)", #call, \
				      cublas_status_str(ck_s_), __FILE__, __LINE__);   \
	} while (0)

/* After a kernel launch: launch-configuration errors surface here. */
#define CK_LAUNCH(name) CK(cudaGetLastError())

/* Kernel launches issued by the calling thread (evidence for the anti-cheat
 * check): a session's eval runs in one thread, so the difference around it
 * is that session's count even when other threads run other sessions. */
extern thread_local uint64_t g_cuda_launches;

static inline int64_t cdiv(int64_t a, int64_t b)
{
	return (a + b - 1) / b;
}

/* Process-wide cuBLAS handle (created on first use). */
int cuda_cublas(cublasHandle_t *h, infer_error *err);

#endif
