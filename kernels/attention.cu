// Causal grouped-query attention, one block per (query head, token): keys are
// visited in chunks of ATT_CHUNK with an online softmax (running max and sum,
// rescaled per chunk), so any context length runs in fixed shared memory and
// the scores never go to global memory. Query t sits at first_query_pos + t
// and sees keys 0..first_query_pos + t; q head h reads kv head h / group.
#include <math.h>

#include "kernels.cuh"

#define ATT_THREADS 128
#define ATT_CHUNK 128
#define ATT_MAX_HD 256

static __device__ float att_block_max(float v, float *sh)
{
	for (int o = 16; o > 0; o >>= 1)
		v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
	if ((threadIdx.x & 31) == 0)
		sh[threadIdx.x >> 5] = v;
	__syncthreads();
	v = sh[0];
	for (int i = 1; i < ATT_THREADS / 32; i++)
		v = fmaxf(v, sh[i]);
	__syncthreads();
	return v;
}

static __device__ float att_block_sum(float v, float *sh)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	if ((threadIdx.x & 31) == 0)
		sh[threadIdx.x >> 5] = v;
	__syncthreads();
	v = 0.0f;
	for (int i = 0; i < ATT_THREADS / 32; i++)
		v += sh[i];
	__syncthreads();
	return v;
}

static __global__ void __launch_bounds__(ATT_THREADS)
	attention_kernel(const float *__restrict__ q, const float *__restrict__ k,
			 const float *__restrict__ v, float *__restrict__ out, int hd, int n_head,
			 int n_head_kv, int64_t first_query_pos, const int32_t *__restrict__ dpos,
			 float scale)
{
	if (dpos) // decode in a CUDA graph: the position lives on the device
		first_query_pos = dpos[0];
	__shared__ float qs[ATT_MAX_HD];
	__shared__ float p[ATT_CHUNK];
	__shared__ float red[ATT_THREADS / 32];
	const int h = blockIdx.x, tid = threadIdx.x;
	const int64_t t = blockIdx.y;
	const int hk = h / (n_head / n_head_kv);
	const int64_t kv_stride = (int64_t)n_head_kv * hd;
	const int64_t n_vis = first_query_pos + t + 1;
	const float *qh = q + (t * n_head + h) * hd;
	float acc[ATT_MAX_HD / ATT_THREADS] = { 0.0f, 0.0f };
	float m = -INFINITY, l = 0.0f;

	for (int d = tid; d < hd; d += ATT_THREADS)
		qs[d] = qh[d];
	__syncthreads();
	for (int64_t c0 = 0; c0 < n_vis; c0 += ATT_CHUNK) {
		int64_t j = c0 + tid;
		float sc = -INFINITY;
		if (tid < ATT_CHUNK && j < n_vis) {
			const float *kr = k + j * kv_stride + (int64_t)hk * hd;
			float s = 0.0f;
			for (int d = 0; d < hd; d++)
				s += qs[d] * kr[d];
			sc = s * scale;
		}
		float mnew = fmaxf(m, att_block_max(sc, red));
		float e = sc == -INFINITY ? 0.0f : expf(sc - mnew);
		if (tid < ATT_CHUNK)
			p[tid] = e;
		float corr = m == -INFINITY ? 0.0f : expf(m - mnew);
		l = l * corr + att_block_sum(e, red);
		m = mnew;
		__syncthreads();
		int64_t cn = n_vis - c0 < ATT_CHUNK ? n_vis - c0 : ATT_CHUNK;
		for (int r = 0; r * ATT_THREADS + tid < hd; r++) {
			int d = r * ATT_THREADS + tid;
			float a = acc[r] * corr;
			const float *vr = v + c0 * kv_stride + (int64_t)hk * hd + d;
			for (int64_t jj = 0; jj < cn; jj++)
				a += p[jj] * vr[jj * kv_stride];
			acc[r] = a;
		}
		__syncthreads();
	}
	float *oh = out + (t * n_head + h) * hd;
	for (int r = 0; r * ATT_THREADS + tid < hd; r++)
		oh[r * ATT_THREADS + tid] = acc[r] / l;
}

int cuda_attention(const float *q, const float *k, const float *v, float *out,
		   int64_t head_dim, int64_t n_head, int64_t n_head_kv, int64_t n_tokens,
		   int64_t n_kv, int64_t first_query_pos, float scale, cudaStream_t s,
		   infer_error *err)
{
	if (n_head_kv <= 0 || n_head <= 0 || n_head % n_head_kv)
		return cu_err(err, INFER_E_ARG, "attention: n_head %lld not a multiple of n_head_kv %lld",
			      (long long)n_head, (long long)n_head_kv);
	if (head_dim <= 0 || head_dim > ATT_MAX_HD)
		return cu_err(err, INFER_E_UNSUPPORTED,
			      "cuda attention: head_dim %lld outside 1..%d", (long long)head_dim,
			      ATT_MAX_HD);
	if (first_query_pos < 0 || first_query_pos + n_tokens > n_kv)
		return cu_err(err, INFER_E_ARG,
			      "attention: queries at %lld..%lld need keys beyond n_kv %lld",
			      (long long)first_query_pos, (long long)(first_query_pos + n_tokens - 1),
			      (long long)n_kv);
	if (n_tokens <= 0)
		return 0;
	dim3 grid((unsigned)n_head, (unsigned)n_tokens);
	attention_kernel<<<grid, ATT_THREADS, 0, s>>>(q, k, v, out, (int)head_dim, (int)n_head,
						      (int)n_head_kv, first_query_pos, NULL, scale);
	g_cuda_launches++;
	CK_LAUNCH("attention_kernel");
	return 0;
}

int cuda_attention_cache(const float *q, const float *kc, const float *vc, float *out,
			 int64_t head_dim, int64_t n_head, int64_t n_head_kv, int64_t n_tokens,
			 const int32_t *dpos, float scale, cudaStream_t s, infer_error *err)
{
	if (n_head_kv <= 0 || n_head <= 0 || n_head % n_head_kv || head_dim <= 0 ||
	    head_dim > ATT_MAX_HD)
		return cu_err(err, INFER_E_UNSUPPORTED, "cuda attention: heads %lld/%lld of %lld",
			      (long long)n_head, (long long)n_head_kv, (long long)head_dim);
	dim3 grid((unsigned)n_head, (unsigned)n_tokens);
	attention_kernel<<<grid, ATT_THREADS, 0, s>>>(q, kc, vc, out, (int)head_dim, (int)n_head,
						      (int)n_head_kv, 0, dpos, scale);
	g_cuda_launches++;
	CK_LAUNCH("attention_kernel");
	return 0;
}
