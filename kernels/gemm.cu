// Matrix products for many columns (prefill) through cuBLAS with F32
// accumulation: F32 weights with SGEMM (pedantic math, no TF32), F16/BF16
// weights as stored, every other type dequantized to F16 first (dequant.cu).
#include <cuda_bf16.h>

#include <pthread.h>

#include "kernels.cuh"

// The cuBLAS handle is shared by every session; its stream is set per call,
// so setting it and enqueueing the GEMMs happen under one lock (sessions of
// a server may run in several threads).
static pthread_mutex_t g_gemm_lock = PTHREAD_MUTEX_INITIALIZER;

// x split into 16-bit terms whose sum is x to ~22 bits (F16: hi + lo) or
// 24 bits (BF16: hi + mid + lo): with weights that are exact in the 16-bit
// type (F16/BF16 tensors) the products of the terms are exact on the tensor
// cores and the F32 accumulation makes the GEMM as accurate as an F32 one,
// at two or three tensor-core GEMMs instead of one SGEMM.
static __global__ void split_f16_kernel(const float *__restrict__ x, __half *__restrict__ hi,
					__half *__restrict__ lo, int64_t n)
{
	int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n) {
		__half h = __float2half_rn(x[i]);
		hi[i] = h;
		lo[i] = __float2half_rn(__fsub_rn(x[i], __half2float(h)));
	}
}

static __global__ void split_bf16_kernel(const float *__restrict__ x, __nv_bfloat16 *__restrict__ t0,
					 __nv_bfloat16 *__restrict__ t1, __nv_bfloat16 *__restrict__ t2,
					 int64_t n)
{
	int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n) {
		__nv_bfloat16 a = __float2bfloat16_rn(x[i]);
		float r = __fsub_rn(x[i], __bfloat162float(a));
		__nv_bfloat16 b = __float2bfloat16_rn(r);
		t0[i] = a;
		t1[i] = b;
		t2[i] = __float2bfloat16_rn(__fsub_rn(r, __bfloat162float(b)));
	}
}

// Column-major view: W is K x M (lda K), X is K x N, Y = W^T X is M x N.
static int gemm_launch(cublasHandle_t h, cudaDataType_t t, const void *w, const void *x,
		       int64_t K, int64_t M, int64_t N, float *y, int accumulate,
		       infer_error *err)
{
	const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;

	if (t == CUDA_R_32F) {
		CKB(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)M, (int)N, (int)K, &one,
				(const float *)w, (int)K, (const float *)x, (int)K, &beta, y, (int)M));
		return 0;
	}
	CKB(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)M, (int)N, (int)K, &one, w, t, (int)K,
			 x, t, (int)K, &beta, y, CUDA_R_32F, (int)M, CUBLAS_COMPUTE_32F,
			 CUBLAS_GEMM_DEFAULT));
	return 0;
}

static int gemm_locked(uint32_t type, const void *w, int64_t K, int64_t M, const float *x,
		       int64_t N, float *y, int accumulate, void *scratch, void *xscratch,
		       cudaStream_t s, infer_error *err)
{
	cublasHandle_t h;
	void *wbuf = NULL, *xbuf = NULL;
	cudaDataType_t t;
	const void *wp = w;
	int bs, ts, rc = cuda_cublas(&h, err);

	if (rc)
		return rc;
	if (!cuda_type_block(type, &bs, &ts))
		return cu_err(err, INFER_E_UNSUPPORTED, "cuda mul_mat: unsupported weight type id %u (%s)",
			      type, cuda_type_name(type));
	if (K <= 0 || M <= 0 || N <= 0 || K % bs || K > INT32_MAX || M > INT32_MAX || N > INT32_MAX)
		return cu_err(err, INFER_E_ARG, "cuda gemm: bad shape K=%lld M=%lld N=%lld for %s",
			      (long long)K, (long long)M, (long long)N, cuda_type_name(type));
	CKB(cublasSetStream(h, s));
	if (type == 0)
		return gemm_launch(h, CUDA_R_32F, w, x, K, M, N, y, accumulate, err);
	t = type == 30 ? CUDA_R_16BF : CUDA_R_16F;
	xbuf = xscratch;
	if (!xbuf)
		CKG(cudaMallocAsync(&xbuf, (size_t)(N * K) * 2 * GEMM_X_TERMS, s));
	if (type == 1 || type == 30) {
		// Weights exact in 16 bits: split x so the product is F32-accurate.
		int64_t nk = N * K;
		int terms = type == 30 ? 3 : 2;
		if (type == 30)
			split_bf16_kernel<<<(unsigned)cdiv(nk, 256), 256, 0, s>>>(
				x, (__nv_bfloat16 *)xbuf, (__nv_bfloat16 *)xbuf + nk,
				(__nv_bfloat16 *)xbuf + 2 * nk, nk);
		else
			split_f16_kernel<<<(unsigned)cdiv(nk, 256), 256, 0, s>>>(
				x, (__half *)xbuf, (__half *)xbuf + nk, nk);
		g_cuda_launches++;
		CKG(cudaGetLastError());
		for (int i = 0; i < terms && !rc; i++)
			rc = gemm_launch(h, t, w, (uint16_t *)xbuf + i * nk, K, M, N, y,
					 accumulate || i > 0, err);
		goto out;
	}
	if ((rc = cuda_f32_to_f16(x, (__half *)xbuf, N * K, s, err)))
		goto out;
	// Other types: weights rounded to F16 (the dequantized values of most
	// formats need more than 11 bits), activations rounded once.
	wbuf = scratch;
	if (!wbuf)
		CKG(cudaMallocAsync(&wbuf, (size_t)(M * K) * 2, s));
	if ((rc = cuda_dequant_f16(type, w, (__half *)wbuf, M * K, s, err)))
		goto out;
	wp = wbuf;
	rc = gemm_launch(h, t, wp, xbuf, K, M, N, y, accumulate, err);
out:
	if (wbuf && wbuf != scratch)
		cudaFreeAsync(wbuf, s);
	if (xbuf && xbuf != xscratch)
		cudaFreeAsync(xbuf, s);
	return rc;
}

int cuda_gemm(uint32_t type, const void *w, int64_t K, int64_t M, const float *x, int64_t N,
	      float *y, int accumulate, void *scratch, void *xscratch, cudaStream_t s,
	      infer_error *err)
{
	pthread_mutex_lock(&g_gemm_lock);
	int rc = gemm_locked(type, w, K, M, x, N, y, accumulate, scratch, xscratch, s, err);
	pthread_mutex_unlock(&g_gemm_lock);
	return rc;
}
