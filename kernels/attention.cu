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
	stamp_end(300);
}

/* ---- the decode step, staged form (the default) --------------------------
 * Measured inside the kernels (stamps.cuh, H200, Q4_K_M step): the form
 * above spent 6.4 us per layer after its PDL wait, 3.4 of them in the key
 * loop (key and value rows fetched from L2 / DRAM into registers, 178
 * registers per thread) and 1.5 in rank 0's merge of 16 partials read one
 * after the other from its peers. Here each block
 *  - copies its key and value rows (up to ads_cfg::S of them) into shared memory
 *    with cp.async BEFORE the wait (cache rows below pos are final), so after
 *    the wait the keys cost one q load from L2 and shared-memory reads;
 *  - scores a key with TPK threads (a strided part of the dims each; the row
 *    pitch keeps a phase of 8 lanes on 32 distinct banks), then forms the
 *    probabilities once per key, and sums the values with a thread per
 *    dimension and key subset (NT / HDIM subsets);
 *  - pushes its (max, sum, acc) partial into the shared memory of the rank
 *    that owns each dimension (rank r owns dims [r*HDIM/ns, (r+1)*HDIM/ns)),
 *    so ONE cluster barrier separates the pushes from a merge that every
 *    rank does for its own dims, reading local memory only.
 * Sums run in a fixed order (keys ascending within a chunk, chunks
 * ascending, splits ascending): results do not depend on timing. Contexts
 * with more than ads_cfg::S keys per split take further chunks after the
 * wait. */
template <int HDIM> struct ads_cfg {
	static constexpr int NT = HDIM <= 64 ? 256 : 128; /* threads (static smem < 48 KB) */
	static constexpr int S = HDIM <= 64 ? 64 : 32;	/* key rows per chunk */
	static constexpr int TPK = NT / S;		/* threads per key (scores) */
	static constexpr int PITCH = HDIM + 4 * TPK;	/* floats per staged row */
	static constexpr int SUB = NT / HDIM;		/* key subsets (values) */
	static constexpr int NS = 16;			/* most splits (cluster ranks) */
};

template <int HDIM> struct ads_smem {
	float k[ads_cfg<HDIM>::S * ads_cfg<HDIM>::PITCH];
	float v[ads_cfg<HDIM>::S * ads_cfg<HDIM>::PITCH];
	float4 q[HDIM / 4];
	float kcur[HDIM], vcur[HDIM];	/* this token's rotated key and its value */
	float p[ads_cfg<HDIM>::S];
	float red[ads_cfg<HDIM>::NT / 32], red2[ads_cfg<HDIM>::NT / 32];
	float2 cs[HDIM / 2];
	float acc2[ads_cfg<HDIM>::SUB > 1 ? ads_cfg<HDIM>::SUB - 1 : 1][HDIM];
	float mm[ads_cfg<HDIM>::NS], ml[ads_cfg<HDIM>::NS];
	float mo[ads_cfg<HDIM>::NS][HDIM]; /* pushed partials; this rank's dims only */
};

/* Key and value rows [c0, c1) (c1 - c0 <= S) of one KV head into the chunk
 * buffers, 16 bytes per copy, all in flight at once. */
template <int HDIM>
static __device__ __forceinline__ void ads_stage(ads_smem<HDIM> &sm, const float *kb, const float *vb,
						 int64_t kv_stride, int64_t c0, int64_t c1)
{
	constexpr int Q4 = HDIM / 4;
	const int n = (int)(c1 - c0) * Q4;

	for (int i = threadIdx.x; i < n; i += ads_cfg<HDIM>::NT) {
		const int r = i / Q4, c = i % Q4;
		const int64_t off = (c0 + r) * kv_stride + c * 4;
		cp_async16(sm.k + r * ads_cfg<HDIM>::PITCH + c * 4, kb + off);
		cp_async16(sm.v + r * ads_cfg<HDIM>::PITCH + c * 4, vb + off);
	}
	cp_async_commit();
}

/* RoPE pair j of x (global, unrotated) into y (shared): the pair's two
 * elements copied, then rotated in place by rope_pair_cs. */
static __device__ __forceinline__ void ads_rope(const float *x, float *y, int j, int n_rot, int neox,
						float2 cs)
{
	int a, b;

	rope_pair_index(j, n_rot, neox, &a, &b);
	y[a] = __ldcg(x + a);
	y[b] = __ldcg(x + b);
	rope_pair_cs(y, j, n_rot, neox, cs.x, cs.y, &a, &b);
}

/* One chunk of keys [c0, c0 + n) already in the buffers: scores, then the
 * running max M, sum L and this thread's value sum acc (dim d, keys sub,
 * sub + SUB, ...) updated online. */
template <int HDIM>
static __device__ __forceinline__ void ads_chunk(ads_smem<HDIM> &sm, int n, float scale, float &M,
						 float &L, float &acc)
{
	using C = ads_cfg<HDIM>;
	const int t = threadIdx.x, key = t / C::TPK, part = t % C::TPK;
	const int d = t % HDIM, sub = t / HDIM;
	float s = 0.0f;

	if (key < n) {
		const float4 *kr = (const float4 *)(sm.k + key * C::PITCH);
#pragma unroll
		for (int i = part; i < HDIM / 4; i += C::TPK) {
			const float4 kk = kr[i], qq = sm.q[i];
			s = fmaf(kk.x, qq.x, s);
			s = fmaf(kk.y, qq.y, s);
			s = fmaf(kk.z, qq.z, s);
			s = fmaf(kk.w, qq.w, s);
		}
	}
	for (int o = 1; o < C::TPK; o <<= 1)
		s += __shfl_xor_sync(0xffffffffu, s, o);
	// Block max and sum by warp shuffles and one shared slot per warp (the
	// key's TPK lanes all hold its score; the sum counts part 0 only).
	const int lane = t & 31, warp = t >> 5;
	const float sk = key < n ? s * scale : -INFINITY;
	float wm = sk;
	for (int o = 16; o > 0; o >>= 1)
		wm = fmaxf(wm, __shfl_xor_sync(0xffffffffu, wm, o));
	if (lane == 0)
		sm.red[warp] = wm;
	__syncthreads();
	float cmax = sm.red[0];
	for (int w = 1; w < C::NT / 32; w++)
		cmax = fmaxf(cmax, sm.red[w]);
	const float mn = fmaxf(M, cmax), corr = M == -INFINITY ? 0.0f : expf(M - mn);
	const float p = key < n ? expf(sk - mn) : 0.0f;
	if (key < n && part == 0)
		sm.p[key] = p;
	float ws = part == 0 ? p : 0.0f;
	for (int o = 16; o > 0; o >>= 1)
		ws += __shfl_xor_sync(0xffffffffu, ws, o);
	if (lane == 0)
		sm.red2[warp] = ws;
	__syncthreads();
	float ps = 0.0f;
	for (int w = 0; w < C::NT / 32; w++)
		ps += sm.red2[w];
	// Two chains over this thread's keys (j, j + SUB, ...), then added.
	float a0 = 0.0f, a1 = 0.0f;
	int j = sub;
	for (; j + C::SUB < n; j += 2 * C::SUB) {
		a0 = fmaf(sm.p[j], sm.v[j * C::PITCH + d], a0);
		a1 = fmaf(sm.p[j + C::SUB], sm.v[(j + C::SUB) * C::PITCH + d], a1);
	}
	if (j < n)
		a0 = fmaf(sm.p[j], sm.v[j * C::PITCH + d], a0);
	L = L * corr + ps;
	M = mn;
	acc = acc * corr + (a0 + a1);
}

template <int HDIM>
static __global__ void __launch_bounds__(ads_cfg<HDIM>::NT)
	attn_decode_staged_kernel(attn_decode_args a, const int32_t *__restrict__ dpos)
{
	using C = ads_cfg<HDIM>;
	namespace cg = cooperative_groups;
	__shared__ __align__(16) ads_smem<HDIM> sm;
	cg::cluster_group cl = cg::this_cluster();
	const int t = threadIdx.x, ns = a.nsplit;
	const int64_t pos = dpos[0], n_vis = pos + 1, per = (n_vis + ns - 1) / ns;
	const int h = blockIdx.x / ns, sp = blockIdx.x % ns, hk = h / (a.n_head / a.n_head_kv);
	const int64_t kv_stride = (int64_t)a.n_head_kv * HDIM, q_dim = (int64_t)a.n_head * HDIM;
	const int64_t j0 = sp * per, j1 = j0 + per < n_vis ? j0 + per : n_vis;
	const bool cur = j0 <= pos && pos < j1;
	const float *kb = a.kc + hk * HDIM, *vb = a.vc + hk * HDIM;
	const int ch = a.chunk > 0 && a.chunk < C::S ? a.chunk : C::S; /* keys per chunk */
	const int64_t s1 = j0 + ch < j1 ? j0 + ch : j1; /* end of the first chunk */

	pdl_launch_dependents();
	for (int j = t; j < HDIM / 2; j += C::NT) {
		float c = 1.0f, sn = 0.0f;
		if (j < a.n_rot / 2)
			rope_cos_sin(pos, a.inv_freq, j, &c, &sn);
		sm.cs[j] = make_float2(c, sn);
	}
	if (j0 < j1)
		ads_stage<HDIM>(sm, kb, vb, kv_stride, j0, s1 < pos ? s1 : pos);
	__syncthreads(); /* the cos / sin table */
	pdl_wait();

	// q rotated into shared memory; in the split holding pos, also this
	// token's key (rotated) and value, written where its row is staged.
	for (int i = t; i < 2 * HDIM; i += C::NT) {
		if (i < HDIM / 2) {
			ads_rope(a.qkv + (int64_t)h * HDIM, (float *)sm.q, i, a.n_rot, a.neox, sm.cs[i]);
		} else if (cur && i < HDIM) {
			const int j = i - HDIM / 2;
			ads_rope(a.qkv + q_dim + (int64_t)hk * HDIM, sm.kcur, j, a.n_rot, a.neox, sm.cs[j]);
		} else if (cur && i >= HDIM) {
			sm.vcur[i - HDIM] = __ldcg(a.qkv + q_dim + kv_stride + (int64_t)hk * HDIM + i - HDIM);
		}
	}
	__syncthreads();
	stamp_mark(2);
	if (cur) {
		const int64_t r = pos - j0;
		for (int i = t; i < HDIM; i += C::NT) {
			if (r < ch) {
				sm.k[r * C::PITCH + i] = sm.kcur[i];
				sm.v[r * C::PITCH + i] = sm.vcur[i];
			}
			if (h % (a.n_head / a.n_head_kv) == 0) { // one block per KV head stores
				a.kc[pos * kv_stride + hk * HDIM + i] = sm.kcur[i];
				a.vc[pos * kv_stride + hk * HDIM + i] = sm.vcur[i];
			}
		}
	}
	float M = -INFINITY, L = 0.0f, acc = 0.0f;
	for (int64_t c0 = j0; c0 < j1; c0 += ch) {
		const int64_t c1 = c0 + ch < j1 ? c0 + ch : j1;
		if (c0 != j0) { // a later chunk: the buffers are free again after this barrier
			__syncthreads();
			ads_stage<HDIM>(sm, kb, vb, kv_stride, c0, c1 < pos ? c1 : pos);
			if (cur && pos >= c0 && pos < c1)
				for (int i = t; i < HDIM; i += C::NT) {
					sm.k[(pos - c0) * C::PITCH + i] = sm.kcur[i];
					sm.v[(pos - c0) * C::PITCH + i] = sm.vcur[i];
				}
		}
		cp_async_wait<0>();
		__syncthreads();
		stamp_mark(3);
		ads_chunk<HDIM>(sm, (int)(c1 - c0), a.scale, M, L, acc);
	}
	stamp_mark(4);
	const int d = t % HDIM;
	if constexpr (C::SUB > 1) { // the key subsets combined in subset order
		if (t >= HDIM)
			sm.acc2[t / HDIM - 1][d] = acc;
		__syncthreads();
		for (int u = 0; u < C::SUB - 1; u++)
			acc += sm.acc2[u][d];
	}
	// Push the partial to the ranks owning each dim, one barrier, merge.
	if (t < HDIM)
		*cl.map_shared_rank(&sm.mo[sp][d], d * ns / HDIM) = acc;
	if (t < ns) {
		*cl.map_shared_rank(&sm.mm[sp], t) = M;
		*cl.map_shared_rank(&sm.ml[sp], t) = L;
	}
	stamp_mark(5);
	cl.sync();
	stamp_mark(6);
	const int dm = (sp * HDIM + ns - 1) / ns + t; /* first dim d with d * ns / HDIM == sp */
	if (t < HDIM && dm < HDIM && dm * ns / HDIM == sp) {
		float mx = -INFINITY, lx = 0.0f, o = 0.0f;
		for (int s = 0; s < ns; s++)
			mx = fmaxf(mx, sm.mm[s]);
		for (int s = 0; s < ns; s++) {
			const float f = sm.mm[s] == -INFINITY ? 0.0f : expf(sm.mm[s] - mx);
			lx += sm.ml[s] * f;
			o += f * sm.mo[s][dm];
		}
		a.att[(int64_t)h * HDIM + dm] = o / lx;
	}
	stamp_end(301);
}

/* The largest cluster the decode attention may form: 16 blocks (a
 * non-portable size, sm_90) when the device takes it for this kernel, else
 * the portable 8. More splits shorten each block's chain of key loads
 * (H200, Q4_K_M decode step: 4 splits 0.745 ms, 6 0.697, 8 0.677). */
template <typename K> static int cluster_max_of(K kernel, int threads, int *m)
{
	cudaLaunchConfig_t c = {};
	cudaLaunchAttribute at[1];
	int n = 0;

	if (*m)
		return *m;
	*m = 8;
	at[0].id = cudaLaunchAttributeClusterDimension;
	at[0].val.clusterDim.x = 16;
	at[0].val.clusterDim.y = 1;
	at[0].val.clusterDim.z = 1;
	c.gridDim = dim3(16);
	c.blockDim = dim3(threads);
	c.attrs = at;
	c.numAttrs = 1;
	if (cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1) == cudaSuccess &&
	    cudaOccupancyMaxActiveClusters(&n, kernel, &c) == cudaSuccess && n > 0)
		*m = 16;
	cudaGetLastError(); // a refusal above is an answer, not an error
	return *m;
}

template <int HDIM> static int attn_cluster_max(void)
{
	static int m;
	return cluster_max_of(attn_decode_kernel<HDIM, true>, AS_WARPS * 32, &m);
}

template <int HDIM> static int attn_staged_cluster_max(void)
{
	static int m;
	return cluster_max_of(attn_decode_staged_kernel<HDIM>, ads_cfg<HDIM>::NT, &m);
}

int cuda_attention_cluster_max(int64_t head_dim)
{
	const int staged = head_dim == 128 ? attn_staged_cluster_max<128>() : attn_staged_cluster_max<64>();
	const int regs = head_dim == 128 ? attn_cluster_max<128>() : attn_cluster_max<64>();

	return staged < regs ? staged : regs;
}

int cuda_attention_decode(const float *qkv, float *kc, float *vc, float *out, float *part,
			  unsigned *counters, const int32_t *dpos, const double *inv_freq,
			  int64_t head_dim, int64_t n_head, int64_t n_head_kv, int64_t n_rot, int neox,
			  int nsplit, float scale, cudaStream_t s, infer_error *err)
{
	attn_decode_args a = { qkv, kc, vc, out, part, counters, NULL, inv_freq, (int)n_head,
			       (int)n_head_kv, (int)n_rot, neox, nsplit, scale,
			       getenv("INFER_ATTN_CHUNK") ? atoi(getenv("INFER_ATTN_CHUNK")) : 0 };
	cudaLaunchConfig_t c = {};
	cudaLaunchAttribute at[2];
	cudaError_t e;

	if (head_dim != 64 && head_dim != 128)
		return cu_err(err, INFER_E_UNSUPPORTED, "cuda decode attention: head_dim %lld",
			      (long long)head_dim);
	// The splits of one head form a cluster (merged in distributed shared
	// memory): at most the size the device takes for the kernel (16 or 8).
	const bool cluster = !getenv("INFER_ATTN_CLUSTER") || atoi(getenv("INFER_ATTN_CLUSTER"));
	const bool staged = cluster && (!getenv("INFER_ATTN_STAGED") || atoi(getenv("INFER_ATTN_STAGED")));
	if (staged) {
		const int cm = head_dim == 64 ? attn_staged_cluster_max<64>() : attn_staged_cluster_max<128>();
		nsplit = nsplit > cm ? cm : nsplit;
	} else if (cluster) {
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
	c.blockDim = dim3(!staged ? AS_WARPS * 32 : head_dim == 64 ? ads_cfg<64>::NT : ads_cfg<128>::NT);
	c.stream = s;
	c.attrs = at;
	c.numAttrs = cluster ? 2 : 1;
	if (staged)
		e = head_dim == 64 ? cudaLaunchKernelEx(&c, attn_decode_staged_kernel<64>, a, dpos)
				   : cudaLaunchKernelEx(&c, attn_decode_staged_kernel<128>, a, dpos);
	else if (head_dim == 64)
		e = cudaLaunchKernelEx(&c, cluster ? attn_decode_kernel<64, true> : attn_decode_kernel<64, false>, a, dpos);
	else
		e = cudaLaunchKernelEx(&c, cluster ? attn_decode_kernel<128, true> : attn_decode_kernel<128, false>, a, dpos);
	if (e != cudaSuccess)
		return cu_err(err, INFER_E_DEVICE, "cuda decode attention: launch failed: %s (%s:%d)",
			      cudaGetErrorString(e), __FILE__, __LINE__);
	g_cuda_launches++;
	return 0;
}
