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

/* ---- split-key attention (decode and prefill over the KV cache) -----------
 * Lanes own keys for the scores (each lane a whole q.k dot with 16-byte
 * loads) and own dimensions for the values (coalesced rows), so a warp
 * consumes 32 keys per step; 4 warps per block; the keys of one query are
 * further split over `nsplit` blocks (flash-decoding) whose partial (max,
 * sum, accumulator) triples a second kernel merges. The split count is fixed
 * when a graph is captured; each block derives its key range from the
 * position read on the device. */
#define AS_WARPS 4

// Merges nsplit partial (max, sum, acc[HDIM]) triples of one query into out
// (one warp; lane s reads split s's max and sum, nsplit <= 32, so the loads
// are issued together; L2-coherent loads, since other blocks wrote them).
template <int HDIM>
static __device__ void merge_splits(const float *pp, float *out, int nsplit, int lane)
{
	constexpr int R = HDIM / 32;
	float ms = lane < nsplit ? __ldcg(pp + lane * (HDIM + 2)) : -INFINITY;
	float ls = lane < nsplit ? __ldcg(pp + lane * (HDIM + 2) + 1) : 0.0f;
	float M = ms;
	for (int o = 16; o > 0; o >>= 1)
		M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, o));
	float f = ms == -INFINITY ? 0.0f : expf(ms - M), L = ls * f;
	for (int o = 16; o > 0; o >>= 1)
		L += __shfl_xor_sync(0xffffffffu, L, o);
	float o[R];
	for (int r = 0; r < R; r++)
		o[r] = 0.0f;
	for (int sp = 0; sp < nsplit; sp++) {
		float fs = __shfl_sync(0xffffffffu, f, sp);
		for (int r = 0; r < R; r++)
			o[r] += fs * __ldcg(pp + sp * (HDIM + 2) + 2 + lane + 32 * r);
	}
	for (int r = 0; r < R; r++)
		out[lane + 32 * r] = o[r] / L;
}

template <int HDIM>
static __global__ void __launch_bounds__(AS_WARPS * 32)
	attn_split_kernel(const float *__restrict__ q, const float *__restrict__ kc,
			  const float *__restrict__ vc, float *__restrict__ out,
			  float *__restrict__ part, int n_head, int n_head_kv,
			  const int32_t *__restrict__ dpos, float scale, unsigned *counters)
{
	constexpr int R = HDIM / 32;
	__shared__ float4 qs4[HDIM / 4];
	__shared__ float wm[AS_WARPS], wl[AS_WARPS], wacc[AS_WARPS][HDIM];
	const int h = blockIdx.x, sp = blockIdx.z, nsplit = gridDim.z;
	const int64_t t = blockIdx.y;
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
	const int hk = h / (n_head / n_head_kv);
	const int64_t kv_stride = (int64_t)n_head_kv * HDIM;
	const int64_t n_vis = (int64_t)dpos[0] + t + 1;
	const int64_t per = (n_vis + nsplit - 1) / nsplit;
	const int64_t j0 = sp * per, j1 = j0 + per < n_vis ? j0 + per : n_vis;
	const float *qh = q + (t * n_head + h) * HDIM;
	const float *kb = kc + (int64_t)hk * HDIM, *vb = vc + (int64_t)hk * HDIM;
	float acc[R], m = -INFINITY, l = 0.0f;

	for (int i = threadIdx.x; i < HDIM / 4; i += blockDim.x)
		qs4[i] = ((const float4 *)qh)[i];
	for (int r = 0; r < R; r++)
		acc[r] = 0.0f;
	__syncthreads();
	for (int64_t c = j0 + warp * 32; c < j1; c += AS_WARPS * 32) {
		int64_t j = c + lane;
		float s = -INFINITY;
		if (j < j1) {
			const float4 *kr = (const float4 *)(kb + j * kv_stride);
			float d = 0.0f;
#pragma unroll
			for (int i = 0; i < HDIM / 4; i++) {
				float4 a = __ldg(kr + i), b = qs4[i];
				d += a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
			}
			s = d * scale;
		}
		float cm = s;
		for (int o = 16; o > 0; o >>= 1)
			cm = fmaxf(cm, __shfl_xor_sync(0xffffffffu, cm, o));
		float mnew = fmaxf(m, cm);
		float p = j < j1 ? expf(s - mnew) : 0.0f;
		float corr = m == -INFINITY ? 0.0f : expf(m - mnew);
		float ps = p;
		for (int o = 16; o > 0; o >>= 1)
			ps += __shfl_xor_sync(0xffffffffu, ps, o);
		l = l * corr + ps;
		m = mnew;
		for (int r = 0; r < R; r++)
			acc[r] *= corr;
		int nk = j1 - c < 32 ? (int)(j1 - c) : 32;
		const float *vr = vb + c * kv_stride + lane;
#pragma unroll 8
		for (int jj = 0; jj < nk; jj++) {
			float pj = __shfl_sync(0xffffffffu, p, jj);
			for (int r = 0; r < R; r++)
				acc[r] += pj * __ldg(vr + jj * kv_stride + 32 * r);
		}
	}
	if (lane == 0) {
		wm[warp] = m;
		wl[warp] = l;
	}
	for (int r = 0; r < R; r++)
		wacc[warp][lane + 32 * r] = acc[r];
	__syncthreads();
	if (warp)
		return;
	float M = -INFINITY, L = 0.0f;
	for (int w = 0; w < AS_WARPS; w++)
		M = fmaxf(M, wm[w]);
	float o[R];
	for (int r = 0; r < R; r++)
		o[r] = 0.0f;
	for (int w = 0; w < AS_WARPS; w++) {
		if (wm[w] == -INFINITY)
			continue;
		float f = expf(wm[w] - M);
		L += wl[w] * f;
		for (int r = 0; r < R; r++)
			o[r] += wacc[w][lane + 32 * r] * f;
	}
	if (nsplit == 1) {
		float *oh = out + (t * n_head + h) * HDIM;
		for (int r = 0; r < R; r++)
			oh[lane + 32 * r] = o[r] / L;
		return;
	}
	float *pp = part + ((t * n_head + h) * nsplit + sp) * (HDIM + 2);
	if (lane == 0) {
		pp[0] = M;
		pp[1] = L;
	}
	for (int r = 0; r < R; r++)
		pp[2 + lane + 32 * r] = o[r];
	if (!counters)
		return;
	// The last split block of this query merges all of them (no second
	// launch): publish the partials, count, and let the last one read them.
	__threadfence();
	unsigned prev = 0;
	if (lane == 0)
		prev = atomicAdd(&counters[t * n_head + h], 1u);
	prev = __shfl_sync(0xffffffffu, prev, 0);
	if (prev != (unsigned)nsplit - 1)
		return;
	__threadfence();
	if (lane == 0)
		counters[t * n_head + h] = 0; // ready for the next step / graph replay
	merge_splits<HDIM>(part + (t * n_head + h) * nsplit * (HDIM + 2),
			   out + (t * n_head + h) * HDIM, nsplit, lane);
}

// Separate merge (used when no counters are given).
template <int HDIM>
static __global__ void attn_merge_kernel(const float *__restrict__ part, float *__restrict__ out,
					 int nsplit)
{
	merge_splits<HDIM>(part + (int64_t)blockIdx.x * nsplit * (HDIM + 2),
			   out + (int64_t)blockIdx.x * HDIM, nsplit, threadIdx.x);
}

int cuda_attention_split(const float *q, const float *kc, const float *vc, float *out,
			 float *part, int64_t head_dim, int64_t n_head, int64_t n_head_kv,
			 int64_t n_tokens, int nsplit, const int32_t *dpos, float scale,
			 unsigned *counters, cudaStream_t s, infer_error *err)
{
	if (head_dim != 64 && head_dim != 128)
		return cuda_attention_cache(q, kc, vc, out, head_dim, n_head, n_head_kv, n_tokens, dpos,
					    scale, s, err);
	if (nsplit < 1 || nsplit > 32 || (nsplit > 1 && !part))
		return cu_err(err, INFER_E_ARG, "cuda attention: bad split count %d", nsplit);
	dim3 grid((unsigned)n_head, (unsigned)n_tokens, (unsigned)nsplit);
	if (head_dim == 64)
		attn_split_kernel<64><<<grid, AS_WARPS * 32, 0, s>>>(q, kc, vc, out, part, (int)n_head,
								      (int)n_head_kv, dpos, scale, counters);
	else
		attn_split_kernel<128><<<grid, AS_WARPS * 32, 0, s>>>(q, kc, vc, out, part, (int)n_head,
								       (int)n_head_kv, dpos, scale, counters);
	g_cuda_launches++;
	CK_LAUNCH("attn_split_kernel");
	if (nsplit == 1 || counters)
		return 0;
	unsigned rows = (unsigned)(n_tokens * n_head);
	if (head_dim == 64)
		attn_merge_kernel<64><<<rows, 32, 0, s>>>(part, out, nsplit);
	else
		attn_merge_kernel<128><<<rows, 32, 0, s>>>(part, out, nsplit);
	g_cuda_launches++;
	CK_LAUNCH("attn_merge_kernel");
	return 0;
}
