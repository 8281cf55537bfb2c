// Causal grouped-query attention, one block per (query head, token): keys are
// visited in chunks of ATT_CHUNK with an online softmax (running max and sum,
// rescaled per chunk), so any context length runs in fixed shared memory and
// the scores never go to global memory. Query t sits at first_query_pos + t
// and sees keys 0..first_query_pos + t; q head h reads kv head h / group.
#include <math.h>
#include <stdlib.h>

#include "attn_core.cuh"
#include "kernels.cuh"

#define ATT_THREADS 128
#define ATT_CHUNK 128
#define ATT_MAX_HD 256

// Block max / sum for the prefill attention kernel; sh is reused at once.
static __device__ float att_block_max(float v, float *sh)
{
	v = block_allreduce<ATT_THREADS>(v, sh, [](float a, float b) { return fmaxf(a, b); });
	__syncthreads();
	return v;
}

static __device__ float att_block_sum(float v, float *sh)
{
	v = block_allreduce<ATT_THREADS>(v, sh, [](float a, float b) { return a + b; });
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
 * The core (attn_core.cuh): lanes own keys for the scores and dimensions for
 * the values, 4 warps per block, the keys of one query further split over
 * `nsplit` blocks (flash-decoding) whose partials the last split block (with
 * counters) or a second kernel merges. The split count is fixed when a graph
 * is captured; each block derives its key range from the position read on
 * the device. */
#define AS_WARPS 4

template <int HDIM>
static __global__ void __launch_bounds__(AS_WARPS * 32)
	attn_split_kernel(const float *__restrict__ q, const float *__restrict__ kc,
			  const float *__restrict__ vc, float *__restrict__ out,
			  float *__restrict__ part, int n_head, int n_head_kv,
			  const int32_t *__restrict__ dpos, float scale, unsigned *counters)
{
	constexpr int R = HDIM / 32;
	__shared__ float4 qs4[HDIM / 4];
	__shared__ attn_smem<HDIM, AS_WARPS> sh;
	const int h = blockIdx.x, sp = blockIdx.z, nsplit = gridDim.z;
	const int64_t t = blockIdx.y;
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
	const int hk = h / (n_head / n_head_kv);
	const int64_t kv_stride = (int64_t)n_head_kv * HDIM;
	const int64_t n_vis = (int64_t)dpos[0] + t + 1;
	const int64_t per = (n_vis + nsplit - 1) / nsplit;
	const int64_t j0 = sp * per, j1 = j0 + per < n_vis ? j0 + per : n_vis;
	const float *qh = q + (t * n_head + h) * HDIM;
	float acc[R], m = -INFINITY, l = 0.0f;

	for (int i = threadIdx.x; i < HDIM / 4; i += blockDim.x)
		qs4[i] = ((const float4 *)qh)[i];
	for (int r = 0; r < R; r++)
		acc[r] = 0.0f;
	__syncthreads();
	attn_warp_keys<HDIM, false>(qs4, kc + (int64_t)hk * HDIM, vc + (int64_t)hk * HDIM, kv_stride,
				    j0, j1, scale, warp, AS_WARPS, lane, -1, NULL, NULL, m, l, acc);
	attn_finish<HDIM, AS_WARPS>(sh, m, l, acc, warp, lane, sp, nsplit,
				    part ? part + (t * n_head + h) * nsplit * (HDIM + 2) : NULL,
				    counters ? counters + t * n_head + h : NULL,
				    out + (t * n_head + h) * HDIM);
}

// Separate merge (used when no counters are given).
template <int HDIM>
static __global__ void attn_merge_kernel(const float *__restrict__ part, float *__restrict__ out,
					 int nsplit)
{
	attn_merge_splits<HDIM>(part + (int64_t)blockIdx.x * nsplit * (HDIM + 2),
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

/* ---- the decode step: RoPE + KV store + attention in one launch ---------- */
template <int HDIM, bool CLUSTER>
static __global__ void __launch_bounds__(AS_WARPS * 32)
	attn_decode_kernel(attn_decode_args a, const int32_t *__restrict__ dpos)
{
	__shared__ attn_decode_smem<HDIM, AS_WARPS> sa;
	__shared__ float2 cs[HDIM / 2];
	// The position comes from a copy before the graph, not from the
	// predecessor; cache rows below it were written by earlier steps. So
	// this split's key and value rows can be asked into L2 before the wait.
	const int64_t pos = dpos[0], n_vis = pos + 1, per = (n_vis + a.nsplit - 1) / a.nsplit;
	const int h = blockIdx.x / a.nsplit, sp = blockIdx.x % a.nsplit;
	const int64_t hk = h / (a.n_head / a.n_head_kv), kv_stride = (int64_t)a.n_head_kv * HDIM;
	const int64_t j0 = sp * per, j1 = j0 + per < pos ? j0 + per : pos;
	constexpr int LINES = HDIM * 4 / 128;

	pdl_launch_dependents();
	// This token's RoPE cos / sin (double-precision trig) also before the
	// wait: they depend on the position only.
	for (int j = threadIdx.x; j < a.n_rot / 2; j += AS_WARPS * 32) {
		float c, sn;
		rope_cos_sin(pos, a.inv_freq, j, &c, &sn);
		cs[j] = make_float2(c, sn);
	}
	for (int64_t i = threadIdx.x; i < (j1 - j0) * LINES; i += AS_WARPS * 32) {
		const int64_t off = (j0 + i / LINES) * kv_stride + hk * HDIM + (i % LINES) * 32;
		asm volatile("prefetch.global.L2 [%0];" ::"l"(a.kc + off));
		asm volatile("prefetch.global.L2 [%0];" ::"l"(a.vc + off));
	}
	pdl_wait();
	attn_decode_args b = a;
	b.cs = cs; // the item's first __syncthreads orders these writes
	attn_decode_item<HDIM, AS_WARPS, CLUSTER, HDIM <= 64 ? 32 : 16>(b, pos, blockIdx.x, sa);
}

/* The largest cluster the decode attention may form: 16 blocks (a
 * non-portable size, sm_90) when the device takes it for this kernel, else
 * the portable 8. More splits shorten each block's chain of key loads
 * (H200, Q4_K_M decode step: 4 splits 0.745 ms, 6 0.697, 8 0.677). */
template <int HDIM> static int attn_cluster_max(void)
{
	static int m;
	cudaLaunchConfig_t c = {};
	cudaLaunchAttribute at[1];
	int n = 0;

	if (m)
		return m;
	m = 8;
	at[0].id = cudaLaunchAttributeClusterDimension;
	at[0].val.clusterDim.x = 16;
	at[0].val.clusterDim.y = 1;
	at[0].val.clusterDim.z = 1;
	c.gridDim = dim3(16);
	c.blockDim = dim3(AS_WARPS * 32);
	c.attrs = at;
	c.numAttrs = 1;
	if (cudaFuncSetAttribute(attn_decode_kernel<HDIM, true>,
				 cudaFuncAttributeNonPortableClusterSizeAllowed, 1) == cudaSuccess &&
	    cudaOccupancyMaxActiveClusters(&n, attn_decode_kernel<HDIM, true>, &c) == cudaSuccess &&
	    n > 0)
		m = 16;
	cudaGetLastError(); // a refusal above is an answer, not an error
	return m;
}

int cuda_attention_cluster_max(int64_t head_dim)
{
	return head_dim == 128 ? attn_cluster_max<128>() : attn_cluster_max<64>();
}

int cuda_attention_decode(const float *qkv, float *kc, float *vc, float *out, float *part,
			  unsigned *counters, const int32_t *dpos, const double *inv_freq,
			  int64_t head_dim, int64_t n_head, int64_t n_head_kv, int64_t n_rot, int neox,
			  int nsplit, float scale, cudaStream_t s, infer_error *err)
{
	attn_decode_args a = { qkv, kc, vc, out, part, counters, NULL, inv_freq, (int)n_head,
			       (int)n_head_kv, (int)n_rot, neox, nsplit, scale };
	cudaLaunchConfig_t c = {};
	cudaLaunchAttribute at[2];
	cudaError_t e;

	if (head_dim != 64 && head_dim != 128)
		return cu_err(err, INFER_E_UNSUPPORTED, "cuda decode attention: head_dim %lld",
			      (long long)head_dim);
	// The splits of one head form a cluster (merged in distributed shared
	// memory): at most 8 blocks, the portable cluster size.
	const bool cluster = !getenv("INFER_ATTN_CLUSTER") || atoi(getenv("INFER_ATTN_CLUSTER"));
	if (cluster) {
		const int cm = head_dim == 64 ? attn_cluster_max<64>() : attn_cluster_max<128>();
		nsplit = nsplit > cm ? cm : nsplit;
	}
	a.nsplit = nsplit;
	if (n_head_kv <= 0 || n_head % n_head_kv || n_rot <= 0 || n_rot > head_dim || n_rot % 2 ||
	    nsplit < 1 || nsplit > 32 || (nsplit > 1 && (!part || !counters)))
		return cu_err(err, INFER_E_ARG, "cuda decode attention: heads %lld/%lld, n_rot %lld, %d splits",
			      (long long)n_head, (long long)n_head_kv, (long long)n_rot, nsplit);
	at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
	at[0].val.programmaticStreamSerializationAllowed = 1;
	at[1].id = cudaLaunchAttributeClusterDimension;
	at[1].val.clusterDim.x = (unsigned)nsplit;
	at[1].val.clusterDim.y = 1;
	at[1].val.clusterDim.z = 1;
	c.gridDim = dim3((unsigned)(n_head * nsplit));
	c.blockDim = dim3(AS_WARPS * 32);
	c.stream = s;
	c.attrs = at;
	c.numAttrs = cluster ? 2 : 1;
	if (head_dim == 64)
		e = cudaLaunchKernelEx(&c, cluster ? attn_decode_kernel<64, true> : attn_decode_kernel<64, false>, a, dpos);
	else
		e = cudaLaunchKernelEx(&c, cluster ? attn_decode_kernel<128, true> : attn_decode_kernel<128, false>, a, dpos);
	if (e != cudaSuccess)
		return cu_err(err, INFER_E_DEVICE, "cuda decode attention: launch failed: %s (%s:%d)",
			      cudaGetErrorString(e), __FILE__, __LINE__);
	g_cuda_launches++;
	return 0;
}
