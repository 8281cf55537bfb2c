// Row softmax of x*scale with the causal mask of backend.h: entries past
// query_pos[r] get probability exactly 0. One block per row; the max is exact,
// the sum of exponentials is accumulated in double (as the CPU reference).
#include <math.h>

#include "kernels.cuh"

#define SM_THREADS 256

static __device__ float block_max_f(float v, float *sh)
{
	for (int o = 16; o > 0; o >>= 1)
		v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
	if ((threadIdx.x & 31) == 0)
		sh[threadIdx.x >> 5] = v;
	__syncthreads();
	if (threadIdx.x < 32) {
		v = threadIdx.x < blockDim.x / 32 ? sh[threadIdx.x] : -INFINITY;
		for (int o = 16; o > 0; o >>= 1)
			v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
		if (threadIdx.x == 0)
			sh[0] = v;
	}
	__syncthreads();
	v = sh[0];
	__syncthreads();
	return v;
}

static __device__ double block_sum_d2(double v, double *sh)
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

static __global__ void __launch_bounds__(SM_THREADS)
	softmax_kernel(const float *__restrict__ x, float *__restrict__ y, int64_t n, float scale,
		       const int32_t *__restrict__ query_pos)
{
	__shared__ float shf[32];
	__shared__ double shd[32];
	const int64_t r = blockIdx.x;
	const float *xr = x + r * n;
	float *yr = y + r * n;
	int64_t vis = query_pos ? (int64_t)query_pos[r] + 1 : n;

	if (vis > n)
		vis = n;
	float mx = -INFINITY;
	for (int64_t i = threadIdx.x; i < vis; i += blockDim.x)
		mx = fmaxf(mx, __fmul_rn(xr[i], scale));
	mx = block_max_f(mx, shf);
	double sum = 0.0;
	for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
		float e = i < vis ? expf(__fsub_rn(__fmul_rn(xr[i], scale), mx)) : 0.0f;
		yr[i] = e;
		sum += e;
	}
	sum = block_sum_d2(sum, shd);
	for (int64_t i = threadIdx.x; i < vis; i += blockDim.x)
		yr[i] = (float)(yr[i] / sum);
}

// query_pos is a device pointer here; the caller validated that no row is
// fully masked (the CPU reference rejects that as an error).
int cuda_softmax(const float *x, float *y, int64_t n, int64_t rows, float scale,
		 const int32_t *query_pos, cudaStream_t s, infer_error *err)
{
	if (n <= 0 || rows < 0)
		return cu_err(err, INFER_E_ARG, "softmax: bad shape n=%lld rows=%lld", (long long)n,
			      (long long)rows);
	if (rows == 0)
		return 0;
	softmax_kernel<<<(unsigned)rows, SM_THREADS, 0, s>>>(x, y, n, scale, query_pos);
	g_cuda_launches++;
	CK_LAUNCH("softmax_kernel");
	return 0;
}
