/* Split-key attention of one query head over keys [j0, j1) of the KV cache,
 * shared by the attention kernel (attention.cu) and the persistent decode
 * kernel (decode_fused.cu), so both compute the same sums in the same order.
 *
 * Lanes own keys for the scores (each lane a whole q.k dot with 16-byte
 * loads) and own dimensions for the values (coalesced rows), so a warp
 * consumes 32 keys per step with an online softmax (running max m, sum l,
 * accumulator acc). The warps of a block are then combined; a query whose
 * keys are split over several blocks (flash-decoding) leaves a partial
 * (max, sum, acc[HDIM]) triple per split, and the last split block to finish
 * merges them (an atomic counter per query, left zeroed again). */
#ifndef INFER_ATTN_CORE_CUH
#define INFER_ATTN_CORE_CUH

#include <math.h>

#include <cooperative_groups.h>

#include "kernels.cuh"

/* Shared memory of the warp combination of one block of NW warps. */
template <int HDIM, int NW> struct attn_smem {
	float wm[NW], wl[NW], wacc[NW][HDIM];
	float part[HDIM + 2]; /* the block's combined (max, sum, acc) (cluster merge) */
};

/* Key loads: the cache is read-only for the attention kernels (__ldg). With
 * CUR, key jcur is not in the cache yet (the fused decode kernel's current
 * token) and comes from kcur / vcur (shared memory) instead. */
template <bool CUR>
static __device__ __forceinline__ float4 attn_ld4(const float4 *p)
{
	if constexpr (CUR)
		return *p;
	else
		return __ldg(p);
}

template <bool CUR> static __device__ __forceinline__ float attn_ld(const float *p)
{
	if constexpr (CUR)
		return *p;
	else
		return __ldg(p);
}

/* One warp's share (warp `warp` of `nw`) of the keys [j0, j1): updates m, l
 * and acc[HDIM / 32] (lane owns dims lane + 32 r). */
template <int HDIM, bool CUR, int VB = 0>
static __device__ __forceinline__ void attn_warp_keys(const float4 *qs4, const float *kb, const float *vb,
						      int64_t kv_stride, int64_t j0, int64_t j1,
						      float scale, int warp, int nw, int lane,
						      int64_t jcur, const float *kcur,
						      const float *vcur, float &m, float &l, float *acc)
{
	constexpr int R = HDIM / 32;

	for (int64_t c = j0 + warp * 32; c < j1; c += nw * 32) {
		int64_t j = c + lane;
		float s = -INFINITY;
		const int nk = j1 - c < 32 ? (int)(j1 - c) : 32;
		const float *vr = vb + c * kv_stride + lane;
		// The first VB value rows are loaded together with the keys (they
		// do not depend on the scores): one memory round trip for both.
		// VB = 0 (prefill: many blocks, registers matter more) skips it.
		float vv[VB > 0 ? VB : 1][R];
#pragma unroll
		for (int u = 0; u < VB; u++) {
			if (u >= nk)
				break;
			const float *row = CUR && c + u == jcur ? vcur + lane : vr + u * kv_stride;
			for (int r = 0; r < R; r++)
				vv[u][r] = attn_ld<CUR>(row + 32 * r);
		}
		if (j < j1) {
			const float4 *kr = (const float4 *)(CUR && j == jcur ? kcur : kb + j * kv_stride);
			float d = 0.0f;
#pragma unroll
			for (int i = 0; i < HDIM / 4; i++) {
				float4 a = attn_ld4<CUR>(kr + i), b = qs4[i];
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
#pragma unroll
		for (int u = 0; u < VB; u++) {
			if (u >= nk)
				break;
			float pj = __shfl_sync(0xffffffffu, p, u);
			for (int r = 0; r < R; r++)
				acc[r] += pj * vv[u][r];
		}
		// The rest in batches of 16 keys: all loads of a batch are issued
		// before its first use; the sums run in key order throughout.
		int jj = VB;
		for (; jj + 16 <= nk; jj += 16) {
			float vv[16][R];
#pragma unroll
			for (int u = 0; u < 16; u++) {
				const float *row = CUR && c + jj + u == jcur ? vcur + lane
									     : vr + (jj + u) * kv_stride;
				for (int r = 0; r < R; r++)
					vv[u][r] = attn_ld<CUR>(row + 32 * r);
			}
#pragma unroll
			for (int u = 0; u < 16; u++) {
				float pj = __shfl_sync(0xffffffffu, p, jj + u);
				for (int r = 0; r < R; r++)
					acc[r] += pj * vv[u][r];
			}
		}
		for (; jj < nk; jj++) {
			float pj = __shfl_sync(0xffffffffu, p, jj);
			const float *row = CUR && c + jj == jcur ? vcur + lane : vr + jj * kv_stride;
			for (int r = 0; r < R; r++)
				acc[r] += pj * attn_ld<CUR>(row + 32 * r);
		}
	}
}

/* Merges nsplit partial (max, sum, acc[HDIM]) triples of one query into out
 * (one warp; lane s reads split s's max and sum, nsplit <= 32, so the loads
 * are issued together). part(sp) points at split sp's triple: in global
 * memory (DSMEM false: L2-coherent loads, other blocks wrote them) or in a
 * cluster peer's shared memory. */
template <bool DSMEM> static __device__ __forceinline__ float attn_part_ld(const float *p)
{
	if constexpr (DSMEM)
		return *p;
	else
		return __ldcg(p);
}

template <int HDIM, bool DSMEM, class Part>
static __device__ void attn_merge(Part part, float *out, int nsplit, int lane)
{
	constexpr int R = HDIM / 32;
	float ms = lane < nsplit ? attn_part_ld<DSMEM>(part(lane)) : -INFINITY;
	float ls = lane < nsplit ? attn_part_ld<DSMEM>(part(lane) + 1) : 0.0f;
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
		const float *pp = part(sp);
		for (int r = 0; r < R; r++)
			o[r] += fs * attn_part_ld<DSMEM>(pp + 2 + lane + 32 * r);
	}
	for (int r = 0; r < R; r++)
		out[lane + 32 * r] = o[r] / L;
}

/* The global-memory form: pp holds the nsplit triples one after another. */
template <int HDIM>
static __device__ void attn_merge_splits(const float *pp, float *out, int nsplit, int lane)
{
	attn_merge<HDIM, false>([pp](int sp) { return pp + sp * (HDIM + 2); }, out, nsplit, lane);
}

/* Writes the NW warps' (m, l, acc) to shared memory and, after one
 * __syncthreads, combines them in warp 0 (the other warps get nothing
 * useful back): *M, *L and o[HDIM / 32] for this lane's dims. */
template <int HDIM, int NW>
static __device__ __forceinline__ void attn_combine_warps(attn_smem<HDIM, NW> &sh, float m, float l,
							  const float *acc, int warp, int lane,
							  float *M, float *L, float *o)
{
	constexpr int R = HDIM / 32;

	if (lane == 0) {
		sh.wm[warp] = m;
		sh.wl[warp] = l;
	}
	for (int r = 0; r < R; r++)
		sh.wacc[warp][lane + 32 * r] = acc[r];
	__syncthreads();
	*M = -INFINITY;
	*L = 0.0f;
	for (int r = 0; r < R; r++)
		o[r] = 0.0f;
	if (warp)
		return;
	for (int w = 0; w < NW; w++)
		*M = fmaxf(*M, sh.wm[w]);
	for (int w = 0; w < NW; w++) {
		if (sh.wm[w] == -INFINITY)
			continue;
		float f = expf(sh.wm[w] - *M);
		*L += sh.wl[w] * f;
		for (int r = 0; r < R; r++)
			o[r] += sh.wacc[w][lane + 32 * r] * f;
	}
}

/* Combines the NW warps of the block (one __syncthreads; warp 0 goes on):
 * with one split the result goes to out; else the partial goes to
 * part[sp] (part: the query's nsplit slots) and, with a counter, the last
 * split block merges all of them into out. Every thread must call it. */
template <int HDIM, int NW>
static __device__ void attn_finish(attn_smem<HDIM, NW> &sh, float m, float l, const float *acc,
				   int warp, int lane, int sp, int nsplit, float *part,
				   unsigned *counter, float *out)
{
	constexpr int R = HDIM / 32;
	float M, L, o[R];

	attn_combine_warps<HDIM, NW>(sh, m, l, acc, warp, lane, &M, &L, o);
	if (warp)
		return;
	if (nsplit == 1) {
		for (int r = 0; r < R; r++)
			out[lane + 32 * r] = o[r] / L;
		return;
	}
	float *pp = part + sp * (HDIM + 2);
	if (lane == 0) {
		pp[0] = M;
		pp[1] = L;
	}
	for (int r = 0; r < R; r++)
		pp[2 + lane + 32 * r] = o[r];
	if (!counter)
		return;
	// Publish the partial, count, and let the last split block read them all.
	__threadfence();
	unsigned prev = 0;
	if (lane == 0)
		prev = atomicAdd(counter, 1u);
	prev = __shfl_sync(0xffffffffu, prev, 0);
	if (prev != (unsigned)nsplit - 1)
		return;
	__threadfence();
	if (lane == 0)
		*counter = 0; // ready for the next step / graph replay
	attn_merge_splits<HDIM>(part, out, nsplit, lane);
}

/* The two elements RoPE pair j (0 <= j < head_dim / 2) rotates: NEOX pairs
 * (j, j + n_rot/2), normal pairs (2j, 2j+1); pairs past n_rot pass through
 * (returns 0 for those). */
static __device__ __forceinline__ int rope_pair_index(int j, int n_rot, int neox, int *a, int *b)
{
	const int half = n_rot / 2;

	if (j >= half) {
		*a = n_rot + 2 * (j - half);
		*b = *a + 1;
		return 0;
	}
	*a = neox ? j : 2 * j;
	*b = neox ? j + half : 2 * j + 1;
	return 1;
}

/* RoPE of pair j of one head in place with the pair's cos / sin (float
 * rotation with explicit roundings: no FMA contraction). Returns the pair's
 * indices in *a, *b. */
static __device__ __forceinline__ void rope_pair_cs(float *x, int j, int n_rot, int neox, float c,
						    float sn, int *a, int *b)
{
	if (!rope_pair_index(j, n_rot, neox, a, b))
		return;
	float x0 = x[*a], x1 = x[*b];
	x[*a] = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, sn));
	x[*b] = __fadd_rn(__fmul_rn(x0, sn), __fmul_rn(x1, c));
}

/* The pair's angle pos * inv_freq[j] is formed in double, as the CPU
 * reference forms it, then rounded to float cos / sin. */
static __device__ __forceinline__ void rope_cos_sin(int64_t pos, const double *inv_freq, int j,
						    float *c, float *sn)
{
	double theta = (double)pos * inv_freq[j];
	*c = (float)cos(theta);
	*sn = (float)sin(theta);
}

static __device__ __forceinline__ void rope_pair(float *x, int j, int n_rot, int64_t pos,
						 const double *inv_freq, int neox, int *a, int *b)
{
	float c = 1.0f, sn = 0.0f;

	if (j < n_rot / 2)
		rope_cos_sin(pos, inv_freq, j, &c, &sn);
	rope_pair_cs(x, j, n_rot, neox, c, sn, a, b);
}

/* The same merge through distributed shared memory when the nsplit blocks
 * of a query form one thread block cluster (rank = split): each block leaves
 * its combined partial in its own shared memory, rank 0 reads them all with
 * the formula of attn_merge_splits, and a second cluster barrier keeps the
 * partials alive until it has. No global memory round trips, no counter. */
template <int HDIM, int NW>
static __device__ void attn_finish_cluster(attn_smem<HDIM, NW> &sh, float m, float l,
					   const float *acc, int warp, int lane, int nsplit, float *out)
{
	constexpr int R = HDIM / 32;
	namespace cg = cooperative_groups;
	cg::cluster_group cl = cg::this_cluster();
	float M, L, o[R];

	attn_combine_warps<HDIM, NW>(sh, m, l, acc, warp, lane, &M, &L, o);
	if (warp == 0) {
		if (lane == 0) {
			sh.part[0] = M;
			sh.part[1] = L;
		}
		for (int r = 0; r < R; r++)
			sh.part[2 + lane + 32 * r] = o[r];
	}
	cl.sync();
	stamp_mark(5);
	if (cl.block_rank() == 0 && warp == 0) {
		if (nsplit == 1)
			for (int r = 0; r < R; r++)
				out[lane + 32 * r] = o[r] / L;
		else
			attn_merge<HDIM, true>([&](int sp) { return (const float *)cl.map_shared_rank(sh.part, sp); },
					       out, nsplit, lane);
	}
	stamp_mark(6);
	cl.sync();
}

/* ---- one decode attention item: RoPE, KV store and split-key attention ----
 * For the one-token decode step: q, k, v of the token arrive unrotated in
 * qkv (q | k | v); item = (head, split) attends over keys [j0, j1) of the
 * cache plus, in the split holding position pos, the token's own key, which
 * is rotated here and read from shared memory (it is not in the cache yet;
 * one block per KV head stores it, and nobody reads cache row pos in the
 * same step). cs: this token's cos / sin table (global memory written before
 * a grid barrier, or shared memory), or NULL to form them from inv_freq
 * (same values). */
struct attn_decode_args {
	const float *qkv;
	float *kc, *vc, *att, *part;
	unsigned *counters;
	const float2 *cs;
	const double *inv_freq;
	int n_head, n_head_kv, n_rot, neox, nsplit;
	float scale;
	int chunk; /* staged decode form: keys per chunk below its buffer size (checks), 0 = full */
};

template <int HDIM, int NW> struct attn_decode_smem {
	float4 q[HDIM / 4];
	float k[HDIM], v[HDIM];
	attn_smem<HDIM, NW> c;
};

template <int HDIM, int NW, bool CLUSTER = false, int VB = 0>
static __device__ void attn_decode_item(const attn_decode_args &p, int64_t pos, int item,
					attn_decode_smem<HDIM, NW> &sa)
{
	constexpr int R = HDIM / 32;
	const int nsplit = p.nsplit, group = p.n_head / p.n_head_kv;
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
	const int64_t q_dim = (int64_t)p.n_head * HDIM, kv_stride = (int64_t)p.n_head_kv * HDIM;
	const int64_t n_vis = pos + 1, per = (n_vis + nsplit - 1) / nsplit;
	const int sp_cur = (int)((n_vis - 1) / per);
	const int h = item / nsplit, sp = item % nsplit, hk = h / group;
	const int64_t j0 = sp * per, j1 = j0 + per < n_vis ? j0 + per : n_vis;
	const bool cur = sp == sp_cur;
	float *qs = (float *)sa.q;
	int a, b;

	for (int i = threadIdx.x; i < HDIM; i += NW * 32) {
		qs[i] = __ldcg(p.qkv + (int64_t)h * HDIM + i);
		if (cur) {
			sa.k[i] = __ldcg(p.qkv + q_dim + (int64_t)hk * HDIM + i);
			sa.v[i] = __ldcg(p.qkv + q_dim + kv_stride + (int64_t)hk * HDIM + i);
		}
	}
	__syncthreads();
	stamp_mark(2);
	for (int i = threadIdx.x; i < HDIM; i += NW * 32) { // q pairs, then the key's
		const int j = i % (HDIM / 2);
		float c = 1.0f, sn = 0.0f;
		if (i >= HDIM / 2 && !cur)
			continue;
		if (j < p.n_rot / 2) {
			if (p.cs) { // written before a barrier / in shared memory
				const float2 t = p.cs[j];
				c = t.x, sn = t.y;
			} else {
				rope_cos_sin(pos, p.inv_freq, j, &c, &sn);
			}
		}
		rope_pair_cs(i < HDIM / 2 ? qs : sa.k, j, p.n_rot, p.neox, c, sn, &a, &b);
	}
	__syncthreads();
	if (cur && h % group == 0)
		for (int i = threadIdx.x; i < HDIM; i += NW * 32) {
			p.kc[pos * kv_stride + (int64_t)hk * HDIM + i] = sa.k[i];
			p.vc[pos * kv_stride + (int64_t)hk * HDIM + i] = sa.v[i];
		}
	float acc[R], m = -INFINITY, l = 0.0f;
	for (int r = 0; r < R; r++)
		acc[r] = 0.0f;
	stamp_mark(3);
	attn_warp_keys<HDIM, true, VB>(sa.q, p.kc + (int64_t)hk * HDIM, p.vc + (int64_t)hk * HDIM,
				       kv_stride, j0, j1, p.scale, warp, NW, lane, cur ? pos : -1,
				       sa.k, sa.v, m, l, acc);
	stamp_mark(4);
	if constexpr (CLUSTER)
		attn_finish_cluster<HDIM, NW>(sa.c, m, l, acc, warp, lane, nsplit,
					      p.att + (int64_t)h * HDIM);
	else
		attn_finish<HDIM, NW>(sa.c, m, l, acc, warp, lane, sp, nsplit,
				      p.part + (int64_t)h * nsplit * (HDIM + 2), p.counters + h,
				      p.att + (int64_t)h * HDIM);
	__syncthreads();
}

#endif
