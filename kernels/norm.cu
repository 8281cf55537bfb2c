// RMSNorm times weight: y = x / sqrt(mean(x^2) + eps) * w, one block per row.
// The sum of squares is accumulated in double and the scale formed in double,
// as the CPU reference does, so the two agree to the last bit in most rows.
#include "kernels.cuh"

#define NORM_THREADS 256

static __device__ double block_sum_d(double v, double *sh)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	if ((threadIdx.x & 31) == 0)
		sh[threadIdx.x >> 5] = v;
	__syncthreads();
	if (threadIdx.x < 32) {
		v = threadIdx.x < blockDim.x / 32 ? sh[threadIdx.x] : 0.0;
		for (int o = 16; o > 0; o >>= 1)
			v += __shfl_xor_sync(0xffffffffu, v, o);
		if (threadIdx.x == 0)
			sh[0] = v;
	}
	__syncthreads();
	v = sh[0];
	__syncthreads();
	return v;
}

static __global__ void __launch_bounds__(NORM_THREADS)
	rms_norm_kernel(const float *__restrict__ x, const float *__restrict__ w,
			float *__restrict__ y, int64_t n, float eps)
{
	__shared__ double sh[32];
	const float *xr = x + blockIdx.x * n;
	float *yr = y + blockIdx.x * n;
	double ss = 0.0;

	for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
		ss += (double)xr[i] * xr[i];
	ss = block_sum_d(ss, sh);
	float scale = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
	for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
		yr[i] = __fmul_rn(__fmul_rn(xr[i], scale), w[i]);
}

int cuda_rms_norm_mul(const float *x, const float *w, float *y, int64_t n, int64_t rows,
		      float eps, cudaStream_t s, infer_error *err)
{
	if (n <= 0 || rows < 0)
		return cu_err(err, INFER_E_ARG, "rms_norm: bad shape n=%lld rows=%lld", (long long)n,
			      (long long)rows);
	if (rows == 0)
		return 0;
	rms_norm_kernel<<<(unsigned)rows, NORM_THREADS, 0, s>>>(x, w, y, n, eps);
	g_cuda_launches++;
	CK_LAUNCH("rms_norm_kernel");
	return 0;
}
