// The decode step (one token, no taps) as ONE persistent kernel.
//
// Why: the per-op decode graph (forward.cu, layer_decode) is ~150 dependent
// kernels per token, each only a few microseconds of work, so a token costs
// ~150 launch gaps and pipeline drains (kernels/NOTES.md). Here one block
// per SM slot stays resident for the whole token and the stages of a layer
// are separated by grid-wide barriers instead of kernel boundaries:
//
//   embed | per layer: q|k|v (RMSNorm folded in, + bias) | attention (RoPE
//   of q and of the new key, KV store, split keys, last split merges) |
//   output projection + residual | gate, up, SwiGLU (RMSNorm folded in) |
//   down + residual | final RMSNorm + LM head
//
// 5 barriers per layer. Before each stage every block asks L2 for the weight
// rows it will read in the next matrix stage (prefetch.global.L2), so the
// DRAM latency of those rows overlaps the current stage and the barrier.
//
// Arithmetic: the same decoders as the other kernels (qformats.cuh /
// qfast.cuh, bit-exact dequantization), RMSNorm with a double sum of squares
// and explicitly rounded scaling (as matvec1.cu), RoPE through rope_pair and
// attention through attn_core.cuh (as attention.cu); only the order of the
// float partial sums of a dot product differs from the per-op kernels.
//
// Memory model: activations written by other blocks in this launch are read
// with __ldcg (L2, never a stale L1 line) after the barrier, whose release /
// acquire pair (fence + atomic, ld.acquire.gpu) orders them. Weights, norm
// weights and biases are never written and go through the read-only path.
#include <stdarg.h>
#include <stdlib.h>

#include <type_traits>

#include "attn_core.cuh"
#include "kernels.cuh"
#include "qfast.cuh"

#define FD_THREADS 256
#define FD_WARPS (FD_THREADS / 32)
#define FD_MAX_SPLIT 16

/* The weight types this kernel decodes (the decode formats of issue 5); a
 * model with any other type takes the per-op graph. */
#ifdef FD_EXPERIMENT_Q8_ONLY /* measurement build: code size of the kernel */
#define FD_TYPES(CALL) CALL(8, t_q8_0)
#else
#define FD_TYPES(CALL)                                                               \
	CALL(0, t_f32) CALL(1, t_f16) CALL(30, t_bf16) CALL(2, t_q4_0) CALL(3, t_q4_1)   \
	CALL(6, t_q5_0) CALL(7, t_q5_1) CALL(8, t_q8_0) CALL(10, t_q2_K)                 \
	CALL(11, t_q3_K) CALL(12, t_q4_K) CALL(13, t_q5_K) CALL(14, t_q6_K)              \
	CALL(20, t_iq4_nl) CALL(23, t_iq4_xs)
#endif

/* ---- grid barrier --------------------------------------------------------
 * A counter zeroed before the launch (a memset node of the same graph); the
 * k-th barrier waits until it reaches k * gridDim.x. All blocks are resident
 * (cooperative launch), so spinning cannot deadlock. */
static __device__ __forceinline__ uint64_t fd_clock(void)
{
	uint64_t t;
	asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
	return t;
}

/* With p.stamps (INFER_CUDA_TIMING=2, a measurement aid): barrier k records
 * the last block's arrival (stamps[2k]) and block 0's departure
 * (stamps[2k + 1]), so the host can split each stage into work and wait. */
static __device__ __forceinline__ void fd_sync(const fd_params &p, unsigned &target)
{
	__syncthreads();
	target += gridDim.x;
	if (threadIdx.x == 0) {
		unsigned v;
		const unsigned k = target / gridDim.x - 1;
		if (p.stamps)
			atomicMax((unsigned long long *)&p.stamps[2 * k], (unsigned long long)fd_clock());
		__threadfence();
		atomicAdd(p.bar, 1u);
		do {
			asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p.bar) : "memory");
		} while (v < target);
		if (p.stamps && blockIdx.x == 0)
			p.stamps[2 * k + 1] = fd_clock();
	}
	__syncthreads();
}

/* Block 0's checkpoints inside each layer (INFER_CUDA_TIMING=2). */
#define FD_MARK(il, i)                                                               \
	do {                                                                         \
		if (p.stamps && blockIdx.x == 0 && threadIdx.x == 0)                 \
			p.stamps[FD_STAMPS(p.n_layer) + (il) * FD_MARKS + (i)] = fd_clock(); \
	} while (0)

/* ---- 8 consecutive weights -----------------------------------------------
 * Weights are addressed by "virtual blocks": the format's block for the
 * block formats (groups of 8 inside), 8 elements for f32 / f16 / bf16, so
 * one loop serves all types. b points at a virtual block (global or shared
 * memory), g is the group of 8 inside it. */
template <typename T> struct fd8 {
	static constexpr int VB = T::G == 8 ? T::BS : 8, VT = T::G == 8 ? T::TS : 8 * T::TS;
	static __device__ __forceinline__ void deq(const uint8_t *b, int g, float *y, const iq_tabs &t)
	{
		if constexpr (T::G == 8) {
			if constexpr (qfast<T>::on)
				qfast<T>::deq(b, g, y, t);
			else
				T::deq(b, g, y, t);
		} else if constexpr (T::TS == 4) { // f32: two 16-byte loads
			const float4 a = ((const float4 *)b)[0], c = ((const float4 *)b)[1];
			y[0] = a.x, y[1] = a.y, y[2] = a.z, y[3] = a.w;
			y[4] = c.x, y[5] = c.y, y[6] = c.z, y[7] = c.w;
		} else { // f16 / bf16: one 16-byte load
			const uint4 u = *(const uint4 *)b;
			const uint32_t w[4] = { u.x, u.y, u.z, u.w };
			for (int i = 0; i < 4; i++) {
				uint16_t lo = (uint16_t)(w[i] & 0xffff), hi = (uint16_t)(w[i] >> 16);
				if constexpr (std::is_same<T, t_bf16>::value) {
					y[2 * i] = bf2f(lo);
					y[2 * i + 1] = bf2f(hi);
				} else {
					y[2 * i] = h2f(lo);
					y[2 * i + 1] = h2f(hi);
				}
			}
		}
	}
};

static __device__ __forceinline__ float fd_warp_sum(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

/* ---- matrix stages --------------------------------------------------------- */

enum { FD_STORE, FD_BIAS, FD_ACC, FD_SWIGLU };

struct fd_epi {
	int mode;
	float *y;
	const float *bias;
};

static __device__ __forceinline__ void fd_epilogue(const fd_epi &e, int64_t r, float s, float s2)
{
	switch (e.mode) {
	case FD_BIAS:
		__stcg(e.y + r, s + __ldg(e.bias + r));
		break;
	case FD_ACC: // the residual add: only this warp touches y[r] in the stage
		__stcg(e.y + r, __ldcg(e.y + r) + s);
		break;
	case FD_SWIGLU: // silu(gate) * up, as matvec1.cu / swiglu.cu
		__stcg(e.y + r, __fmul_rn(__fdiv_rn(s, __fadd_rn(1.0f, expf(-s))), s2));
		break;
	default:
		__stcg(e.y + r, s);
	}
}

/* A matrix stage: up to three segments (q, k, v share the q|k|v stage) whose
 * tasks are numbered one after the other, so the segments continue round
 * the grid. A task is RW consecutive rows computed by S warps of one block;
 * with S > 1 (RW = 1) each warp takes a contiguous share of the row's
 * virtual blocks. */
struct fd_seg {
	fd_mat m;
	const void *w2; /* the pair form: up beside gate */
	fd_epi e;
};

struct fd_stage {
	fd_seg seg[3];
	int nseg, S;
	int64_t ntask[3], total;
};

template <int RW>
static __device__ __forceinline__ void fd_stage_init(fd_stage &st, int nseg)
{
	const int64_t warps = (int64_t)gridDim.x * FD_WARPS;

	st.nseg = nseg;
	st.total = 0;
	for (int i = 0; i < nseg; i++) {
		st.ntask[i] = (st.seg[i].m.M + RW - 1) / RW;
		st.total += st.ntask[i];
	}
	// Warps per task: as many as keep every warp of the grid busy, so the
	// 896-row projections still spread over all SMs (RW = 1 only).
	st.S = 1;
	while (RW == 1 && st.S < FD_WARPS && st.total * st.S * 2 <= warps)
		st.S *= 2;
}

/* Where task k of this warp lies: segment, first row, rows, block share. */
struct fd_where {
	int seg, nr, b0, b1;
	int64_t r0;
};

template <int RW>
static __device__ __forceinline__ bool fd_locate(const fd_stage &st, int64_t k, fd_where &w)
{
	const int warp = threadIdx.x >> 5, slots = FD_WARPS / st.S;
	int64_t v = (int64_t)blockIdx.x * slots + warp / st.S + k * (int64_t)gridDim.x * slots;

	if (v >= st.total)
		return false;
	w.seg = 0;
	while (v >= st.ntask[w.seg]) {
		v -= st.ntask[w.seg];
		w.seg++;
	}
	const fd_mat &m = st.seg[w.seg].m;
	const int nb = (int)(m.K / m.vb), sub = warp % st.S;
	w.r0 = v * RW;
	w.nr = (int)(m.M - w.r0 < RW ? m.M - w.r0 : RW);
	w.b0 = nb * sub / st.S;
	w.b1 = nb * (sub + 1) / st.S;
	return true;
}

/* Rounds of tasks of this block (uniform over its warps, so the S > 1
 * reduction may use __syncthreads). */
static __device__ __forceinline__ int64_t fd_rounds(const fd_stage &st)
{
	const int slots = FD_WARPS / st.S;
	const int64_t span = (int64_t)gridDim.x * slots, v0 = (int64_t)blockIdx.x * slots;

	return v0 >= st.total ? 0 : (st.total - v0 + span - 1) / span;
}

/* Bytes [lo, hi) of a matrix into buf in 16-byte pieces (the lanes of the
 * warp); returns where byte lo landed. */
static __device__ __forceinline__ const uint8_t *fd_copy(const void *w, int64_t lo, int64_t hi,
							 uint8_t *buf)
{
	const int64_t lo16 = lo & ~(int64_t)15, n = (hi - lo16 + 15) / 16;
	const uint8_t *src = (const uint8_t *)w + lo16;

	for (int64_t c = threadIdx.x & 31; c < n; c += 32)
		cp_async16(buf + c * 16, src + c * 16);
	return buf + (lo - lo16);
}

/* Starts the copy of this warp's task k into buf (one cp.async group, empty
 * when the warp has no task k). The pair's second matrix goes to the upper
 * half of the buffer. */
template <int RW>
static __device__ void fd_issue(const fd_stage &st, int64_t k, uint8_t *buf, int wb)
{
	fd_where w;

	if (fd_locate<RW>(st, k, w)) {
		const fd_seg &sg = st.seg[w.seg];
		const int64_t lo = w.r0 * sg.m.rb + (int64_t)w.b0 * sg.m.vt;
		const int64_t hi = (w.r0 + w.nr - 1) * sg.m.rb + (int64_t)w.b1 * sg.m.vt;
		fd_copy(sg.m.w, lo, hi, buf);
		if (sg.w2)
			fd_copy(sg.w2, lo, hi, buf + wb / 2);
	}
	cp_async_commit();
}

/* The dot products of one task from the staged bytes d (d2: the pair's):
 * lanes take groups of 8 round the warp's share of each row. */
template <typename T, int RW, bool PAIR>
static __device__ __noinline__ void fd_dots(const uint8_t *d, const uint8_t *d2, int64_t rb,
					    const fd_where &w, const float *xs, float *acc,
					    float *acc2, const iq_tabs &t)
{
	constexpr int VB = fd8<T>::VB, VT = fd8<T>::VT, GPB = VB / 8;
	const float4 *xs4 = (const float4 *)xs;
	const int ng = (w.b1 - w.b0) * GPB;

	for (int i = threadIdx.x & 31; i < ng; i += 32) {
		const int b = w.b0 + i / GPB, g = i % GPB, gi = b * GPB + g;
		const float4 x0 = xs4[2 * gi], x1 = xs4[2 * gi + 1];
		const float xp[8] = { x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w };
#pragma unroll
		for (int r = 0; r < RW; r++) {
			if (r >= w.nr)
				break;
			float v[8];
			fd8<T>::deq(d + r * rb + (b - w.b0) * VT, g, v, t);
			for (int e = 0; e < 8; e++)
				acc[r] += v[e] * xp[e];
			if constexpr (PAIR) {
				fd8<T>::deq(d2 + r * rb + (b - w.b0) * VT, g, v, t);
				for (int e = 0; e < 8; e++)
					acc2[r] += v[e] * xp[e];
			}
		}
	}
}

/* Runs a stage: task k + 1 is copied while task k is computed (two buffers
 * of wb bytes per warp); task 0 was issued by the caller (fd_issue), before
 * the barrier, so its bytes arrive while the grid synchronizes. */
template <int RW, bool PAIR>
static __device__ void fd_run(const fd_stage &st, const float *xs, uint8_t *wbuf, int wb,
			      const iq_tabs &t)
{
	__shared__ float red[FD_WARPS][2 * RW];
	const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, S = st.S;
	const int64_t rounds = fd_rounds(st);
	uint8_t *buf[2] = { wbuf + (size_t)warp * 2 * wb, wbuf + ((size_t)warp * 2 + 1) * wb };

	for (int64_t k = 0; k < rounds; k++) {
		fd_where w;
		float acc[RW], acc2[RW];
		const bool ok = fd_locate<RW>(st, k, w);

		fd_issue<RW>(st, k + 1, buf[(k + 1) & 1], wb);
		cp_async_wait<1>();
		__syncwarp();
#pragma unroll
		for (int r = 0; r < RW; r++)
			acc[r] = acc2[r] = 0.0f;
		if (ok) {
			const fd_seg &sg = st.seg[w.seg];
			const int64_t lo = w.r0 * sg.m.rb + (int64_t)w.b0 * sg.m.vt;
			const uint8_t *d = buf[k & 1] + (lo & 15), *d2 = d + wb / 2;
			switch (sg.m.type) {
#define FD_CASE(id, T)                                                                       \
	case id:                                                                             \
		fd_dots<T, RW, PAIR>(d, d2, sg.m.rb, w, xs, acc, acc2, t);                     \
		break;
				FD_TYPES(FD_CASE)
#undef FD_CASE
			default:
				break; // excluded by cuda_fused_plan before any launch
			}
		}
#pragma unroll
		for (int r = 0; r < RW; r++) {
			acc[r] = fd_warp_sum(acc[r]);
			if constexpr (PAIR)
				acc2[r] = fd_warp_sum(acc2[r]);
		}
		__syncwarp(); // buf[k & 1] is refilled by the next round's issue
		if (S == 1) {
			if (ok && lane == 0)
				for (int r = 0; r < w.nr; r++)
					fd_epilogue(st.seg[w.seg].e, w.r0 + r, acc[r], acc2[r]);
			continue;
		}
		if (lane == 0)
			for (int r = 0; r < RW; r++) {
				red[warp][r] = acc[r];
				red[warp][RW + r] = acc2[r];
			}
		__syncthreads();
		if (ok && warp % S == 0 && lane == 0)
			for (int r = 0; r < w.nr; r++) {
				float s = 0.0f, s2 = 0.0f;
				for (int j = 0; j < S; j++) {
					s += red[warp + j][r];
					s2 += red[warp + j][RW + r];
				}
				fd_epilogue(st.seg[w.seg].e, w.r0 + r, s, s2);
			}
		__syncthreads();
	}
}

/* L2 prefetch of the rows this block reads in a stage, after its first task
 * (which fd_issue copies): the next rounds, at most `iters` of them (the LM
 * head is far larger than L2; its first rounds are enough to start). */
template <int RW>
static __device__ void fd_prefetch(const fd_stage &st, int iters)
{
	const int64_t rounds = fd_rounds(st);

	for (int64_t k = 1; k < rounds && k <= iters; k++) {
		fd_where w;
		if (!fd_locate<RW>(st, k, w))
			continue;
		const fd_seg &sg = st.seg[w.seg];
		const int64_t lo = w.r0 * sg.m.rb + (int64_t)w.b0 * sg.m.vt;
		const int64_t hi = (w.r0 + w.nr - 1) * sg.m.rb + (int64_t)w.b1 * sg.m.vt;
		for (int64_t off = (lo & ~(int64_t)127) + (threadIdx.x & 31) * 128; off < hi; off += 32 * 128) {
			asm volatile("prefetch.global.L2 [%0];" ::"l"((const uint8_t *)sg.m.w + off));
			if (sg.w2)
				asm volatile("prefetch.global.L2 [%0];" ::"l"((const uint8_t *)sg.w2 + off));
		}
	}
}

/* ---- vector stages --------------------------------------------------------- */

/* xs = rms_norm(x) * nw over K elements (x from L2: other blocks wrote it). */
static __device__ void fd_stage_norm(const float *x, const float *nw, int K, float eps, float *xs)
{
	__shared__ double red[FD_WARPS];
	double ss = 0.0;

	for (int i = threadIdx.x; i < K; i += FD_THREADS) {
		float v = __ldcg(x + i);
		xs[i] = v;
		ss += (double)v * v;
	}
	const float scale = block_rms_scale<FD_THREADS>(ss, K, eps, red);
	for (int i = threadIdx.x; i < K; i += FD_THREADS)
		xs[i] = __fmul_rn(__fmul_rn(xs[i], scale), __ldg(nw + i));
	__syncthreads();
}

static __device__ void fd_stage_copy(const float *src, int K, float *xs)
{
	for (int i = threadIdx.x; i < K; i += FD_THREADS)
		xs[i] = __ldcg(src + i);
	__syncthreads();
}

/* x = row `tok` of the embedding table, 8 elements per thread of the grid. */
static __device__ void fd_embed(const fd_params &p, int tok, const iq_tabs &t)
{
	const int64_t g = (int64_t)blockIdx.x * FD_THREADS + threadIdx.x;
	float v[8];

	if (g >= p.n_embd / 8)
		return;
	switch (p.embd.type) {
#define FD_CASE(id, T)                                                                       \
	case id:                                                                             \
		fd8<T>::deq((const uint8_t *)p.embd.w + (int64_t)tok * p.embd.rb +              \
				    (g * 8 / fd8<T>::VB) * fd8<T>::VT, (int)(g * 8 % fd8<T>::VB) / 8, v, t); \
		break;
		FD_TYPES(FD_CASE)
#undef FD_CASE
	default:
		return;
	}
	for (int i = 0; i < 8; i++)
		__stcg(p.x + g * 8 + i, v[i]);
}

/* ---- attention -------------------------------------------------------------- */

/* Items (head, split) round the grid (attn_decode_item, attn_core.cuh). */
template <int HDIM>
static __device__ void fd_attention(const fd_params &p, const fd_layer &L, int64_t pos,
				    attn_decode_smem<HDIM, FD_WARPS> &sa)
{
	const attn_decode_args a = { p.qkv, L.kc, L.vc, p.att, p.part, p.att_count, p.rope_cs,
				     p.inv_freq, p.n_head, p.n_head_kv, p.n_rot, p.neox, p.nsplit,
				     p.scale };

	for (int item = blockIdx.x; item < p.n_head * p.nsplit; item += gridDim.x)
		attn_decode_item<HDIM, FD_WARPS>(a, pos, item, sa);
}

/* ---- the kernel --------------------------------------------------------------- */

static __device__ void fd_seg_set(fd_seg &g, const fd_mat &m, const void *w2, int mode, float *y,
				  const float *bias)
{
	g.m = m;
	g.w2 = w2;
	g.e.mode = bias || mode != FD_BIAS ? mode : FD_STORE;
	g.e.y = y;
	g.e.bias = bias;
}

static __device__ void fd_qkv_stage(fd_stage &st, const fd_params &p, const fd_layer &L)
{
	const int64_t q_dim = (int64_t)p.n_head * p.head_dim, kv_dim = (int64_t)p.n_head_kv * p.head_dim;

	fd_seg_set(st.seg[0], L.q, NULL, FD_BIAS, p.qkv, L.bq);
	fd_seg_set(st.seg[1], L.k, NULL, FD_BIAS, p.qkv + q_dim, L.bk);
	fd_seg_set(st.seg[2], L.v, NULL, FD_BIAS, p.qkv + q_dim + kv_dim, L.bv);
	fd_stage_init<1>(st, 3);
}

static __device__ void fd_one_stage(fd_stage &st, const fd_mat &m, const void *w2, int mode,
				    float *y)
{
	fd_seg_set(st.seg[0], m, w2, mode, y, NULL);
	if (mode == FD_STORE) // the LM head: two rows per task
		fd_stage_init<2>(st, 1);
	else
		fd_stage_init<1>(st, 1);
}

/* The next stage's first task is copied (and its later rows prefetched to
 * L2) before the barrier that ends the current stage. */
template <int RW>
static __device__ __forceinline__ void fd_ahead(const fd_stage &st, uint8_t *wbuf, int wb)
{
	fd_issue<RW>(st, 0, wbuf + (size_t)(threadIdx.x >> 5) * 2 * wb, wb);
	fd_prefetch<RW>(st, 2);
}

template <int HDIM>
static __global__ void __launch_bounds__(FD_THREADS, 2) fused_decode_kernel(fd_params p, iq_tabs t)
{
	extern __shared__ float4 fd_dyn[];
	__shared__ attn_decode_smem<HDIM, FD_WARPS> sa;
	float *xs = (float *)fd_dyn;
	uint8_t *wbuf = (uint8_t *)fd_dyn + p.xs_bytes;
	const int wb = p.wb;
	unsigned target = 0;
	const int64_t pos = p.pos[0];
	const int E = p.n_embd;
	fd_stage st;

	if (p.stamps && blockIdx.x == 0 && threadIdx.x == 0)
		p.stamps[FD_START_STAMP(p.n_layer)] = fd_clock();
	// This token's RoPE cos / sin, once for all layers.
	if (blockIdx.x == 0 && threadIdx.x < p.n_rot / 2) {
		float c, sn;
		rope_cos_sin(pos, p.inv_freq, threadIdx.x, &c, &sn);
		__stcg(p.rope_cs + threadIdx.x, make_float2(c, sn));
	}
	fd_qkv_stage(st, p, p.layers[0]);
	fd_ahead<1>(st, wbuf, wb);
	fd_embed(p, p.tok[0], t);
	fd_sync(p, target);
	for (int il = 0; il < p.n_layer; il++) {
		const fd_layer &L = p.layers[il];

		// q | k | v of the normalized residual stream (st: built and
		// started before the last barrier).
		fd_stage_norm(p.x, L.attn_norm, E, p.eps, xs);
		FD_MARK(il, 0);
		fd_run<1, false>(st, xs, wbuf, wb, t);
		FD_MARK(il, 1);
		fd_one_stage(st, L.o, NULL, FD_ACC, p.x);
		fd_ahead<1>(st, wbuf, wb); // attention leaves the buffers alone
		FD_MARK(il, 2);
		fd_sync(p, target);
		FD_MARK(il, 3);

		fd_attention<HDIM>(p, L, pos, sa);
		FD_MARK(il, 4);
		fd_sync(p, target);
		FD_MARK(il, 5);

		// output projection + residual
		fd_stage_copy(p.att, p.n_head * HDIM, xs);
		FD_MARK(il, 6);
		fd_run<1, false>(st, xs, wbuf, wb, t);
		FD_MARK(il, 7);
		fd_one_stage(st, L.gate, L.up.w, FD_SWIGLU, p.ffn);
		fd_ahead<1>(st, wbuf, wb);
		FD_MARK(il, 8);
		fd_sync(p, target);
		FD_MARK(il, 9);

		// gate, up, SwiGLU
		fd_stage_norm(p.x, L.ffn_norm, E, p.eps, xs);
		FD_MARK(il, 10);
		fd_run<1, true>(st, xs, wbuf, wb, t);
		FD_MARK(il, 11);
		fd_one_stage(st, L.down, NULL, FD_ACC, p.x);
		fd_ahead<1>(st, wbuf, wb);
		FD_MARK(il, 12);
		fd_sync(p, target);
		FD_MARK(il, 13);

		// down + residual
		fd_stage_copy(p.ffn, p.n_ff, xs);
		FD_MARK(il, 14);
		fd_run<1, false>(st, xs, wbuf, wb, t);
		FD_MARK(il, 15);
		if (il + 1 < p.n_layer) {
			fd_qkv_stage(st, p, p.layers[il + 1]);
			fd_ahead<1>(st, wbuf, wb);
			FD_MARK(il, 16);
		} else {
			fd_one_stage(st, p.out, NULL, FD_STORE, p.logits);
			fd_ahead<2>(st, wbuf, wb);
			FD_MARK(il, 17);
		}
		fd_sync(p, target);
		FD_MARK(il, 18);
	}
	fd_stage_norm(p.x, p.out_norm, E, p.eps, xs);
	fd_run<2, false>(st, xs, wbuf, wb, t);
	if (p.stamps && threadIdx.x == 0) { // the end: last block done
		const unsigned k = target / gridDim.x;
		atomicMax((unsigned long long *)&p.stamps[2 * k], (unsigned long long)fd_clock());
	}
}

/* ---- host side -------------------------------------------------------------------- */

static bool fd_type_ok(uint32_t type)
{
	switch (type) {
#define FD_CASE(id, T) case id:
		FD_TYPES(FD_CASE)
#undef FD_CASE
		return true;
	default:
		return false;
	}
}

static int fd_why(char *why, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, n, fmt, ap);
	va_end(ap);
	return 1;
}

// A matrix the kernel can read: a decodable type, 8-element groups (K % 8),
// and the 16-byte alignment the wide loads need.
static int fd_mat_ok(const fd_mat &m, const char *what, char *why, size_t n)
{
	if (!fd_type_ok(m.type))
		return fd_why(why, n, "%s has type id %u (%s), which the fused decode kernel does not decode",
			      what, m.type, cuda_type_name(m.type));
	if (m.K % 8 || m.K % m.vb || (uintptr_t)m.w % 16 || m.rb % 2)
		return fd_why(why, n, "%s: row length %lld or alignment unsuited to 8-weight groups",
			      what, (long long)m.K);
	return 0;
}

template <int HDIM> static const void *fd_kernel(void)
{
	return (const void *)fused_decode_kernel<HDIM>;
}

/* The host's copy of the device's task geometry (fd_stage_init): warps per
 * task, then the bytes one warp's task stages (+32: 16-byte alignment). */
static int fd_host_split(int64_t tasks, int RW, int grid)
{
	int S = 1;

	while (RW == 1 && S < FD_WARPS && tasks * S * 2 <= (int64_t)grid * FD_WARPS)
		S *= 2;
	return S;
}

static int64_t fd_task_bytes(const fd_mat &m, int RW, int S)
{
	const int64_t nb = m.K / m.vb;

	return (S == 1 ? RW * m.rb : (nb + S - 1) / S * m.vt) + 32;
}

// The per-warp buffer: the largest task of any stage (both matrices of the
// gate/up pair), 16-byte multiple.
static int64_t fd_buffer_bytes(const fd_layer *hl, const fd_params *p, int grid)
{
	int64_t wb = 0;

	for (int il = 0; il < p->n_layer; il++) {
		const fd_layer &L = hl[il];
		const int Sq = fd_host_split(L.q.M + L.k.M + L.v.M, 1, grid);
		const int64_t b[] = {
			fd_task_bytes(L.q, 1, Sq), fd_task_bytes(L.k, 1, Sq), fd_task_bytes(L.v, 1, Sq),
			fd_task_bytes(L.o, 1, fd_host_split(L.o.M, 1, grid)),
			2 * fd_task_bytes(L.gate, 1, fd_host_split(L.gate.M, 1, grid)),
			fd_task_bytes(L.down, 1, fd_host_split(L.down.M, 1, grid)),
		};
		for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++)
			wb = b[i] > wb ? b[i] : wb;
	}
	const int64_t out = fd_task_bytes(p->out, 2, 1);
	wb = out > wb ? out : wb;
	return (wb + 31) & ~(int64_t)31; // halves stay 16-byte aligned (cp.async)
}

int cuda_fused_plan(const fd_layer *host_layers, fd_params *p, char *why, size_t why_n)
{
	int dev = 0, sms = 0, per_sm = 0, optin = 0;
	const int E = p->n_embd, hd = p->head_dim;
	int64_t xs = E > p->n_ff ? E : p->n_ff;

	if (hd != 64 && hd != 128)
		return fd_why(why, why_n, "head_dim %d (the fused kernel takes 64 or 128)", hd);
	if ((int64_t)p->n_head * hd > xs)
		xs = (int64_t)p->n_head * hd;
	if (E % 8 || p->n_ff % 8 || p->n_head % p->n_head_kv || p->n_rot > hd || p->n_rot % 2)
		return fd_why(why, why_n, "shape unsuited (n_embd %d, n_ff %d, heads %d/%d, n_rot %d)", E,
			      p->n_ff, p->n_head, p->n_head_kv, p->n_rot);
	for (int il = 0; il < p->n_layer; il++) {
		const fd_layer &L = host_layers[il];
		const fd_mat *m[] = { &L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down };
		const char *nm[] = { "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up",
				     "ffn_down" };
		for (int i = 0; i < 7; i++)
			if (fd_mat_ok(*m[i], nm[i], why, why_n))
				return 1;
		if (L.gate.type != L.up.type)
			return fd_why(why, why_n, "ffn_gate and ffn_up differ in type (layer %d)", il);
	}
	if (fd_mat_ok(p->embd, "token_embd", why, why_n) || fd_mat_ok(p->out, "output", why, why_n))
		return 1;
	if (cudaGetDevice(&dev) != cudaSuccess ||
	    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
	    cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess)
		return fd_why(why, why_n, "the device attribute query failed");
	const void *k = hd == 64 ? fd_kernel<64>() : fd_kernel<128>();
	// Two blocks per SM when their buffers fit, else one (the buffer size
	// depends on the grid through the warps per task).
	for (int want = 2; want >= 1; want--) {
		if (want == 2 && getenv("INFER_FD_BLOCKS_PER_SM") && atoi(getenv("INFER_FD_BLOCKS_PER_SM")) == 1)
			continue; // measurement knob
		const int64_t wb = fd_buffer_bytes(host_layers, p, want * sms);
		const int64_t smem = xs * 4 + (int64_t)FD_WARPS * 2 * wb;
		if (smem > optin)
			continue;
		if (cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem) != cudaSuccess ||
		    cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, k, FD_THREADS, (size_t)smem) != cudaSuccess)
			return fd_why(why, why_n, "the occupancy query failed");
		if (per_sm < want)
			continue;
		p->grid = want * sms;
		p->xs_bytes = (int)(xs * 4);
		p->wb = (int)wb;
		p->smem = (int)smem;
		break;
	}
	if (!p->grid)
		return fd_why(why, why_n, "the weight buffers do not fit in %d bytes of shared memory", optin);
	if (p->grid < p->n_head)
		return fd_why(why, why_n, "only %d resident blocks for %d heads", p->grid, p->n_head);
	p->nsplit = p->grid / p->n_head > FD_MAX_SPLIT ? FD_MAX_SPLIT : p->grid / p->n_head;
	return 0;
}

int cuda_fused_decode(const fd_params *p, cudaStream_t s, infer_error *err)
{
	cudaLaunchConfig_t c = {};
	cudaLaunchAttribute at[1];
	cudaError_t e;

	CK(cudaMemsetAsync(p->bar, 0, sizeof(unsigned), s));
	if (p->stamps)
		CK(cudaMemsetAsync(p->stamps, 0, FD_STAMPS_ALL(p->n_layer) * sizeof(uint64_t), s));
	// Cooperative: the runtime guarantees every block is resident at once
	// (or refuses the launch), which the grid barrier relies on.
	at[0].id = cudaLaunchAttributeCooperative;
	at[0].val.cooperative = 1;
	c.gridDim = dim3((unsigned)p->grid);
	c.blockDim = dim3(FD_THREADS);
	c.dynamicSmemBytes = (size_t)p->smem;
	c.stream = s;
	c.attrs = at;
	c.numAttrs = 1;
	if (p->head_dim == 64)
		e = cudaLaunchKernelEx(&c, fused_decode_kernel<64>, *p, cuda_tabs());
	else
		e = cudaLaunchKernelEx(&c, fused_decode_kernel<128>, *p, cuda_tabs());
	if (e != cudaSuccess)
		return cu_err(err, INFER_E_DEVICE,
			      "cuda fused decode: launch of %d blocks x %d threads failed: %s (%s:%d)",
			      p->grid, FD_THREADS, cudaGetErrorString(e), __FILE__, __LINE__);
	g_cuda_launches++;
	return 0;
}
