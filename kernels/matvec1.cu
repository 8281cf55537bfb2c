// The one-token (decode) mat-vec of the forward pass, with its fusions.
// Kept apart from matvec.cu so the two template-heavy files compile in
// parallel.
#include <stdlib.h>

#include "kernels.cuh"
#include "qfast.cuh"

static __device__ __forceinline__ float warp_sum1(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

/* ---- the one-token (decode) mat-vec with fused prologue/epilogue ----------
 * x is staged once per block in shared memory; optionally normalized there
 * (RMSNorm times weight, same arithmetic as norm.cu, so the values equal the
 * unfused path's), optionally two matrices at once (gate and up, epilogue
 * silu(g) * u as swiglu.cu computes it), optional bias, optional accumulation
 * into y (the residual add). */
struct mv1_args {
	const uint8_t *w, *w2;
	int64_t K, M;
	const float *x, *nw, *bias;
	float eps;
	float *y;
	int accumulate;
	int no_short; // INFER_MV1_SHORT=0 (A/B): the general body for every row
	int pitch;    // staged forms: bytes of shared memory per matrix
	int dot;      // wide-load types: qfast<T>::dot (scale once per group)
};

#define MV1_THREADS 128

// One L2 prefetch per 128-byte line of the block's ROWS weight rows (both
// matrices in the pair form), spread over the block's threads.
template <int ROWS, bool PAIR>
static __device__ __forceinline__ void mv1_prefetch(const uint8_t *w, const uint8_t *w2, int64_t row0,
						    int64_t M, int64_t rb)
{
	const int64_t nl = (rb + 127) / 128;
	const int64_t rows = M - row0 < ROWS ? M - row0 : ROWS;

	for (int64_t i = threadIdx.x; i < rows * nl; i += MV1_THREADS) {
		const int64_t off = (row0 + i / nl) * rb + (i % nl) * 128;
		asm volatile("prefetch.global.L2 [%0];" ::"l"(w + off));
		if constexpr (PAIR)
			asm volatile("prefetch.global.L2 [%0];" ::"l"(w2 + off));
	}
}

/* Bytes [lo, hi) of w (16-byte aligned; lo, hi even, as every row of a
 * weight type is) into buf, byte b at buf + (b - (lo & ~15)): the 16-byte
 * pieces inside the span by cp.async, the < 16 bytes at either end by
 * 2-byte loads, so nothing outside the span is read. Returns where byte lo
 * landed; the bytes are there after cp_async_wait<0>() and __syncthreads. */
static __device__ __forceinline__ const uint8_t *mv1_stage_span(const uint8_t *w, int64_t lo, int64_t hi,
								uint8_t *buf)
{
	const int64_t base = lo & ~(int64_t)15;
	const int64_t a = (lo + 15) & ~(int64_t)15, b = hi & ~(int64_t)15;
	const int64_t h1 = a < hi ? a : hi, t0 = b > h1 ? b : h1;
	const int nh = (int)(h1 - lo) / 2, nt = (int)(hi - t0) / 2;

	for (int64_t c = a + 16 * (int64_t)threadIdx.x; c < b; c += 16 * MV1_THREADS)
		cp_async16(buf + (c - base), w + c);
	if ((int)threadIdx.x < nh + nt) {
		const int64_t off = (int)threadIdx.x < nh ? lo + 2 * threadIdx.x : t0 + 2 * (threadIdx.x - nh);
		*(uint16_t *)(buf + (off - base)) = *(const uint16_t *)(w + off);
	}
	return buf + (lo - base);
}

/* The staged forms: the block's weight rows go to shared memory with every
 * copy in flight at once, issued before the PDL wait (weights are never
 * written), instead of one L2 prefetch per line and a decode chain that
 * keeps few loads in flight. Same decoders on the copies, so the same
 * values and sums. w0 / w20: where row row0 of w / w2 is now. */
template <bool PAIR, int ROWS>
static __device__ __forceinline__ void mv1_stage_rows(const uint8_t *w, const uint8_t *w2, int64_t row0,
						      int64_t M, int64_t rb, int pitch,
						      const uint8_t **w0, const uint8_t **w20)
{
	extern __shared__ __align__(16) uint8_t mv1_stage[];
	const int64_t rows = M - row0 < ROWS ? M - row0 : ROWS;

	*w0 = mv1_stage_span(w, row0 * rb, (row0 + rows) * rb, mv1_stage);
	if constexpr (PAIR)
		*w20 = mv1_stage_span(w2, row0 * rb, (row0 + rows) * rb, mv1_stage + pitch);
	cp_async_commit();
}

static __device__ __forceinline__ void mv1_stage_done(void)
{
	cp_async_wait<0>();
	__syncthreads();
}

template <typename T, bool FAST>
static __device__ __forceinline__ void deq_pick(const uint8_t *b, int g, float *y, const iq_tabs &t)
{
	if constexpr (FAST)
		qfast<T>::deq(b, g, y, t);
	else
		T::deq(b, g, y, t);
}

// The epilogue of one row: bias, then silu(gate) * up (pair) or the
// residual add.
template <bool PAIR>
static __device__ __forceinline__ void mv1_store(const mv1_args &a, int64_t row, float s, float s2,
						 float y_old, float b_row)
{
	if (a.bias)
		s += b_row;
	if constexpr (PAIR)
		a.y[row] = __fmul_rn(__fdiv_rn(s, __fadd_rn(1.0f, expf(-s))), s2);
	else
		a.y[row] = a.accumulate ? y_old + s : s;
}

/* Activations (x, the residual) are read with plain loads, never __ldg:
 * the compiler treats __ldg loads as invariant and may hoist them above
 * pdl_wait(), i.e. before the predecessor has written them (seen: the short
 * form read a stale x); plain loads stay after the wait's memory
 * clobber and still hit L1. Weights and norm weights, never written, keep
 * __ldg. */

/* Rows whose groups fit the block (K <= 8 * MV1_THREADS: every mat-vec of
 * the residual width): each thread owns one group of 8 columns. Its norm
 * weights are loaded BEFORE waiting for the predecessor (no kernel writes
 * them), and with at most two rows (q|k|v, the output projection) its
 * weights are decoded then too; so after the wait the chain is x -> sum of
 * squares -> products -> block sum. Wider forms (gate/up, the LM head) decode
 * after the wait, from their rows staged in shared memory (STAGE, see
 * mv1_stage_rows) or else prefetched into L2, within their register budget. */
template <typename T, bool NORM, bool PAIR, int ROWS, bool STAGE>
static __device__ __forceinline__ void mv1_group(const mv1_args &a, int64_t row0, int64_t rb,
						 const iq_tabs &t)
{
	constexpr bool PREDEC = ROWS * (PAIR ? 2 : 1) <= 2;
	constexpr int NM = PAIR ? 2 : 1;
	__shared__ double red[MV1_THREADS / 32];
	__shared__ float part[MV1_THREADS / 32][NM * ROWS];
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
	const int gi = threadIdx.x;
	const bool on = gi < a.K / 8;
	const int64_t boff = ((int64_t)gi * 8 / T::BS) * T::TS;
	const int g = (gi * 8 % T::BS) / 8;
	float nn[8], xp[8], wv[PREDEC ? NM * ROWS : 1][8], acc[NM * ROWS];
	float y_old = 0.0f, b_row = 0.0f;
	const uint8_t *w0 = a.w + row0 * rb, *w20 = PAIR ? a.w2 + row0 * rb : NULL;

	pdl_launch_dependents();
	if constexpr (STAGE && !PREDEC)
		mv1_stage_rows<PAIR, ROWS>(a.w, a.w2, row0, a.M, rb, a.pitch, &w0, &w20);
	else if constexpr (!PREDEC)
		mv1_prefetch<ROWS, PAIR>(a.w, a.w2, row0, a.M, rb);
	for (int i = 0; i < 8; i++)
		nn[i] = xp[i] = 0.0f;
	if (on) {
		if constexpr (PREDEC) {
#pragma unroll
			for (int r = 0; r < ROWS; r++) {
				if (row0 + r >= a.M)
					break;
				deq_pick<T, true>(w0 + r * rb + boff, g, wv[r], t);
				if constexpr (PAIR)
					deq_pick<T, true>(w20 + r * rb + boff, g, wv[ROWS + r], t);
			}
		}
		if constexpr (NORM) {
			const float4 *nv = (const float4 *)(a.nw + gi * 8);
			float4 n0 = __ldg(nv), n1 = __ldg(nv + 1);
			nn[0] = n0.x, nn[1] = n0.y, nn[2] = n0.z, nn[3] = n0.w;
			nn[4] = n1.x, nn[5] = n1.y, nn[6] = n1.z, nn[7] = n1.w;
		}
	}
	if (threadIdx.x < ROWS && row0 + threadIdx.x < a.M && a.bias)
		b_row = a.bias[row0 + threadIdx.x];
	pdl_wait();
	if (threadIdx.x < ROWS && row0 + threadIdx.x < a.M && a.accumulate)
		y_old = a.y[row0 + threadIdx.x];
	if (on) {
		const float4 *xv = (const float4 *)(a.x + gi * 8);
		float4 x0 = xv[0], x1 = xv[1];
		xp[0] = x0.x, xp[1] = x0.y, xp[2] = x0.z, xp[3] = x0.w;
		xp[4] = x1.x, xp[5] = x1.y, xp[6] = x1.z, xp[7] = x1.w;
	}
	if constexpr (NORM) {
		double ss = 0.0;
		for (int i = 0; i < 8; i++)
			ss += (double)xp[i] * xp[i];
		const float scale = block_rms_scale<MV1_THREADS>(ss, a.K, a.eps, red);
		for (int i = 0; i < 8; i++)
			xp[i] = __fmul_rn(__fmul_rn(xp[i], scale), nn[i]);
	}
	stamp_mark(2);
	if constexpr (STAGE && !PREDEC)
		mv1_stage_done();
	stamp_mark(3);
	float xsum = 0.0f;
	for (int i = 0; i < 8; i++)
		xsum += xp[i];
#pragma unroll
	for (int r = 0; r < NM * ROWS; r++)
		acc[r] = 0.0f;
#pragma unroll
	for (int r = 0; r < ROWS; r++) {
		if (!on || row0 + r >= a.M)
			break;
		for (int m = 0; m < NM; m++) {
			float v[8];
			if constexpr (PREDEC) {
				for (int i = 0; i < 8; i++)
					v[i] = wv[m * ROWS + r][i];
			} else if (a.dot) {
				acc[m * ROWS + r] += qfast<T>::dot((m ? w20 : w0) + r * rb + boff, g, xp, xsum);
				continue;
			} else {
				deq_pick<T, true>((m ? w20 : w0) + r * rb + boff, g, v, t);
			}
			for (int i = 0; i < 8; i++)
				acc[m * ROWS + r] += v[i] * xp[i];
		}
	}
	stamp_mark(4);
#pragma unroll
	for (int r = 0; r < NM * ROWS; r++) {
		float sr = warp_sum1(acc[r]);
		if (lane == 0)
			part[warp][r] = sr;
	}
	__syncthreads();
	stamp_mark(5);
	if (threadIdx.x >= ROWS || row0 + threadIdx.x >= a.M)
		return;
	float s = 0.0f, s2 = 0.0f;
	for (int w = 0; w < MV1_THREADS / 32; w++) {
		s += part[w][threadIdx.x];
		if constexpr (PAIR)
			s2 += part[w][ROWS + threadIdx.x];
	}
	mv1_store<PAIR>(a, row0 + threadIdx.x, s, s2, y_old, b_row);
}

// One block computes ROWS rows; its 128 threads split each row's groups
// between them (consecutive threads take consecutive groups, so a warp
// reads contiguous bytes), partial sums stay in registers for all ROWS
// rows, and one block reduction at the end yields them all. Splitting a row
// over the whole block keeps enough loads in flight even when M is small.
// FAST (types with a qfast decoder, aligned operands): the wide-load group
// decoder and 16-byte loads of x and the norm weight; same values and sums.
template <typename T, bool NORM, bool PAIR, int ROWS, bool FAST, bool STAGE = false>
static __device__ __forceinline__ void mv1_body(const mv1_args &a, int64_t blk, const iq_tabs &t)
{
	__shared__ double red[MV1_THREADS / 32];
	__shared__ float part[MV1_THREADS / 32][PAIR ? 2 * ROWS : ROWS];
	constexpr int GPB = T::BS / T::G;
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
	float scale = 1.0f;
	const int64_t row0 = blk * ROWS;
	const int64_t rb = (a.K / T::BS) * T::TS;

	if constexpr (FAST && T::G == 8) {
		if (a.K <= 8 * MV1_THREADS && !a.no_short) {
			mv1_group<T, NORM, PAIR, ROWS, STAGE>(a, row0, rb, t);
			return;
		}
	}
	const uint8_t *w0 = a.w + row0 * rb, *w20 = PAIR ? a.w2 + row0 * rb : NULL;

	pdl_launch_dependents();
	if constexpr (STAGE)
		mv1_stage_rows<PAIR, ROWS>(a.w, a.w2, row0, a.M, rb, a.pitch, &w0, &w20);
	else
		mv1_prefetch<ROWS, PAIR>(a.w, a.w2, row0, a.M, rb);
	pdl_wait();

	// x is read straight from global memory (it stays in L1); with NORM the
	// block first reduces its sum of squares, then normalizes on the fly.
	if constexpr (NORM) {
		double ss = 0.0;
		for (int64_t i = threadIdx.x; i < a.K; i += MV1_THREADS)
			ss += (double)a.x[i] * a.x[i];
		scale = block_rms_scale<MV1_THREADS>(ss, a.K, a.eps, red);
	}
	// The epilogue's extra operands (residual, bias) are loaded now, so their
	// latency overlaps the main loop instead of following it.
	float y_old = 0.0f, b_row = 0.0f;
	if (threadIdx.x < ROWS && row0 + threadIdx.x < a.M) {
		if (a.accumulate)
			y_old = a.y[row0 + threadIdx.x];
		if (a.bias)
			b_row = a.bias[row0 + threadIdx.x];
	}
	const int64_t ng = a.K / T::G;
	float acc[ROWS], acc2[ROWS];
	stamp_mark(2);
	if constexpr (STAGE)
		mv1_stage_done();
	stamp_mark(3);
#pragma unroll
	for (int r = 0; r < ROWS; r++)
		acc[r] = acc2[r] = 0.0f;
	for (int64_t gi = threadIdx.x; gi < ng; gi += MV1_THREADS) {
		float xp[T::G];
		if constexpr (FAST && T::G == 8) {
			const float4 *xv = (const float4 *)(a.x + gi * 8);
			float4 x0 = xv[0], x1 = xv[1];
			xp[0] = x0.x, xp[1] = x0.y, xp[2] = x0.z, xp[3] = x0.w;
			xp[4] = x1.x, xp[5] = x1.y, xp[6] = x1.z, xp[7] = x1.w;
			if constexpr (NORM) {
				const float4 *nv = (const float4 *)(a.nw + gi * 8);
				float4 n0 = __ldg(nv), n1 = __ldg(nv + 1);
				const float nn[8] = { n0.x, n0.y, n0.z, n0.w, n1.x, n1.y, n1.z, n1.w };
				for (int i = 0; i < 8; i++)
					xp[i] = __fmul_rn(__fmul_rn(xp[i], scale), nn[i]);
			}
		} else {
			for (int i = 0; i < T::G; i++) {
				float xv = a.x[gi * T::G + i];
				if constexpr (NORM)
					xv = __fmul_rn(__fmul_rn(xv, scale), __ldg(a.nw + gi * T::G + i));
				xp[i] = xv;
			}
		}
		const int64_t boff = (gi / GPB) * T::TS;
		const int g = (int)(gi % GPB);
		// The dot form keeps its own row loop: one loop testing a.dot per
		// row measured 1.6% slower per Q8_0 step on the H200.
		if constexpr (FAST && T::G == 8) {
			if (a.dot) {
				float xsum = 0.0f;
				for (int i = 0; i < 8; i++)
					xsum += xp[i];
#pragma unroll
				for (int r = 0; r < ROWS; r++) {
					if (row0 + r >= a.M)
						break;
					acc[r] += qfast<T>::dot(w0 + r * rb + boff, g, xp, xsum);
					if constexpr (PAIR)
						acc2[r] += qfast<T>::dot(w20 + r * rb + boff, g, xp, xsum);
				}
				continue;
			}
		}
#pragma unroll
		for (int r = 0; r < ROWS; r++) {
			if (row0 + r >= a.M)
				break;
			float v[T::G];
			deq_pick<T, FAST>(w0 + r * rb + boff, g, v, t);
			for (int i = 0; i < T::G; i++)
				acc[r] += v[i] * xp[i];
			if constexpr (PAIR) {
				deq_pick<T, FAST>(w20 + r * rb + boff, g, v, t);
				for (int i = 0; i < T::G; i++)
					acc2[r] += v[i] * xp[i];
			}
		}
	}
	stamp_mark(4);
#pragma unroll
	for (int r = 0; r < ROWS; r++) {
		float s = warp_sum1(acc[r]);
		if (lane == 0)
			part[warp][r] = s;
		if constexpr (PAIR) {
			s = warp_sum1(acc2[r]);
			if (lane == 0)
				part[warp][ROWS + r] = s;
		}
	}
	__syncthreads();
	stamp_mark(5);
	if (threadIdx.x >= ROWS || row0 + threadIdx.x >= a.M)
		return;
	const int r = threadIdx.x;
	const int64_t row = row0 + r;
	float s = 0.0f, s2 = 0.0f;
	for (int w = 0; w < MV1_THREADS / 32; w++) {
		s += part[w][r];
		if constexpr (PAIR)
			s2 += part[w][ROWS + r];
	}
	mv1_store<PAIR>(a, row, s, s2, y_old, b_row);
}

// The pair form (gate/up at the FFN width) is held to 48 registers so ten
// blocks fit an SM and its ~1200 blocks run as one wave.
template <typename T, bool NORM, bool PAIR, int ROWS, bool FAST, bool STAGE>
static __global__ void __launch_bounds__(MV1_THREADS, PAIR ? 10 : 1) mv1_kernel(mv1_args a, iq_tabs t)
{
	mv1_body<T, NORM, PAIR, ROWS, FAST, STAGE>(a, blockIdx.x, t);
	stamp_end(100 + ROWS * 4 + PAIR * 2 + NORM);
}

/* q, k and v of the decode step in one launch when their types differ (a
 * Q4_K_M file mixes q5_0 and q8_0 there): blocks are dealt to the three
 * segments in order, each decodes with its own type (one row per block,
 * normalized input, optional bias). Only the wide-load types. */
struct mv1_seg3 {
	mv1_args s[3];
	uint32_t type[3];
};


template <int ROWS, bool STAGE = false>
static __global__ void __launch_bounds__(MV1_THREADS) mv1_qkv_kernel(mv1_seg3 a, iq_tabs t)
{
	int64_t blk = blockIdx.x;
	int i = 0;

	while (i < 2 && blk >= (a.s[i].M + ROWS - 1) / ROWS) {
		blk -= (a.s[i].M + ROWS - 1) / ROWS;
		i++;
	}
	switch (a.type[i]) {
#define MV1_CASE(id, T)                                                                      \
	case id:                                                                             \
		mv1_body<T, true, false, ROWS, true, STAGE>(a.s[i], blk, t);                 \
		break;
		QFAST_TYPES(MV1_CASE)
#undef MV1_CASE
	default:
		break; // refused by cuda_matvec1_qkv before the launch
	}
	stamp_end(200);
}

// Rows per block: one when M is small (most warps in flight for the
// latency-bound projections of the residual width), four for the FFN width
// (one wave of blocks, the norm prologue shared by four rows), sixteen for
// the vocabulary (measured on the H200: 8 -> 16 rows, ~1% per token).
// Launched with programmatic stream serialization (see pdl_wait); on a GPU
// without it the attribute is ignored and the launch is an ordinary one.
// The staged forms (mv1_stage_rows) take the wide-load types whose
// weights start 16-byte aligned, except the short form that decodes its
// one or two rows into registers before the wait anyway; at most 48 KB of
// shared memory (the default limit), else the L2 prefetch.
#define MV1_STAGE_MAX (48 * 1024)

/* Shared-memory bytes per matrix for staging `bytes` of each of nmat
 * matrices (w, and w2 when not NULL) with mv1_stage_rows (room for the
 * span's shift to 16-byte alignment), or 0 when they are not staged:
 * INFER_MV1_STAGE=0, a base not 16-byte aligned, or over MV1_STAGE_MAX. */
static int mv1_stage_pitch(int64_t bytes, int nmat, const uint8_t *w, const uint8_t *w2)
{
	const int64_t pitch = (bytes + 15 + 15) & ~(int64_t)15;
	const char *v = getenv("INFER_MV1_STAGE");

	if ((v && !atoi(v)) || (uintptr_t)w % 16 || (w2 && (uintptr_t)w2 % 16) ||
	    pitch * nmat > MV1_STAGE_MAX)
		return 0;
	return (int)pitch;
}

template <typename T, bool NORM, bool PAIR, int ROWS>
static int mv1_pitch(const mv1_args &a)
{
	const int64_t rb = (a.K / T::BS) * T::TS;
	const bool predec = T::G == 8 && a.K <= 8 * MV1_THREADS && !a.no_short && ROWS * (PAIR ? 2 : 1) <= 2;

	return predec ? 0 : mv1_stage_pitch(ROWS * rb, PAIR ? 2 : 1, a.w, PAIR ? a.w2 : NULL);
}

template <typename T, bool NORM, bool PAIR, int ROWS, bool FAST>
static cudaError_t mv1_run(const mv1_args &a0, cudaStream_t s)
{
	cudaLaunchConfig_t c = {};
	cudaLaunchAttribute at[1];
	mv1_args a = a0;

	at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
	at[0].val.programmaticStreamSerializationAllowed = 1;
	c.gridDim = dim3((unsigned)cdiv(a.M, ROWS));
	c.blockDim = dim3(MV1_THREADS);
	c.stream = s;
	c.attrs = at;
	c.numAttrs = 1;
	if constexpr (FAST) {
		a.pitch = mv1_pitch<T, NORM, PAIR, ROWS>(a);
		if (a.pitch) {
			c.dynamicSmemBytes = (size_t)a.pitch * (PAIR ? 2 : 1);
			return cudaLaunchKernelEx(&c, mv1_kernel<T, NORM, PAIR, ROWS, true, true>, a,
						  cuda_tabs());
		}
	}
	return cudaLaunchKernelEx(&c, mv1_kernel<T, NORM, PAIR, ROWS, FAST, false>, a, cuda_tabs());
}

/* Rows per block of the normalized projections below 2048 rows (q|k|v): 4,
 * staged (a quarter of the blocks of one row each, so the attention kernel
 * that follows finds room on the SMs and stages its keys before its wait;
 * H200, Q4_K_M 1,758-1,772 tok/s at 2 rows -> 1,796-1,811 at 4, Q8_0
 * 1,811-1,823 -> 1,888-1,892); INFER_MV1_QKV_ROWS=1 or 2 to compare. */
static int mv1_qkv_rows(void)
{
	const char *v = getenv("INFER_MV1_QKV_ROWS");
	return v && (atoi(v) == 1 || atoi(v) == 2) ? atoi(v) : 4;
}

template <typename T, bool NORM, bool PAIR, bool FAST>
static cudaError_t mv1_go(const mv1_args &a, cudaStream_t s)
{
	if (NORM && !PAIR && a.M >= 16384)
		return mv1_run<T, true, false, 16, FAST>(a, s);
	if (a.M >= 2048)
		return mv1_run<T, NORM, PAIR, 4, FAST>(a, s);
	if constexpr (NORM && !PAIR && FAST) {
		const int qr = mv1_qkv_rows();
		if (qr == 2)
			return mv1_run<T, true, false, 2, FAST>(a, s);
		if (qr == 4)
			return mv1_run<T, true, false, 4, FAST>(a, s);
	}
	return mv1_run<T, NORM, PAIR, 1, FAST>(a, s);
}

template <typename T, bool FAST> static cudaError_t mv1_forms(const mv1_args &a, cudaStream_t s)
{
	if (a.w2 && a.nw)
		return mv1_go<T, true, true, FAST>(a, s);
	if (a.nw)
		return mv1_go<T, true, false, FAST>(a, s);
	return mv1_go<T, false, false, FAST>(a, s);
}

template <typename T> static cudaError_t mv1_launch(const mv1_args &a, bool fast, cudaStream_t s)
{
	if constexpr (qfast<T>::on) {
		if (fast)
			return mv1_forms<T, true>(a, s);
	}
	return mv1_forms<T, false>(a, s);
}

static int mv1_dot(void)
{
	const char *v = getenv("INFER_MV1_DOT");
	return !v || atoi(v);
}

static int mv1_no_short(void)
{
	const char *v = getenv("INFER_MV1_SHORT");
	return v && !atoi(v);
}

int cuda_matvec1(uint32_t type, const void *w, const void *w2, int64_t K, int64_t M,
		 const float *x, const float *nw, float eps, const float *bias, float *y,
		 int accumulate, cudaStream_t s, infer_error *err)
{
	int bs, ts;
	mv1_args a = { (const uint8_t *)w, (const uint8_t *)w2, K, M, x, nw, bias, eps, y, accumulate,
		       mv1_no_short(), 0, mv1_dot() };

	// Integer and f64 tensors are never weights; the pair form is only used
	// behind a norm (gate/up). Anything else is refused, never approximated.
	if (!cuda_type_block(type, &bs, &ts) || (type >= 24 && type <= 28) || (w2 && !nw))
		return cu_err(err, INFER_E_UNSUPPORTED, "cuda matvec1: unsupported weight type id %u (%s)%s",
			      type, cuda_type_name(type), w2 && !nw ? " for the unnormalized pair form" : "");
	if (K <= 0 || M <= 0 || K % bs)
		return cu_err(err, INFER_E_ARG, "cuda matvec1: bad shape K=%lld M=%lld for %s",
			      (long long)K, (long long)M, cuda_type_name(type));
	// The fast form needs 8-byte aligned weights (q4_K's 4-byte words; the
	// others need 2) and 16-byte aligned x / norm weight (float4 loads);
	// anything else takes the generic decoder, same results.
	cudaError_t le = cudaErrorInvalidValue;
	bool fast = !((uintptr_t)w % 8) && !((uintptr_t)w2 % 8) && !((uintptr_t)x % 16) &&
		    !((uintptr_t)nw % 16);

#define LAUNCH(T) le = mv1_launch<T>(a, fast, s)
	QTYPE_DISPATCH_WEIGHTS(type, LAUNCH)
#undef LAUNCH
	if (le != cudaSuccess)
		return cu_err(err, INFER_E_DEVICE, "cuda matvec1: launch of %s K=%lld M=%lld failed: %s",
			      cuda_type_name(type), (long long)K, (long long)M, cudaGetErrorString(le));
	g_cuda_launches++;
	CK_LAUNCH("mv1_kernel");
	return 0;
}

int cuda_matvec1_qkv(const uint32_t type[3], const void *const w[3], const int64_t M[3], int64_t K,
		     const float *x, const float *nw, float eps, const float *const bias[3],
		     float *y, cudaStream_t s, infer_error *err)
{
	mv1_seg3 a = {};
	cudaLaunchConfig_t c = {};
	cudaLaunchAttribute at[1];
	int64_t rows = 0, yoff = 0;
	const int qr = mv1_qkv_rows();
	bool staged = true;
	size_t smem = 0;

	if ((uintptr_t)x % 16 || (uintptr_t)nw % 16 || !nw)
		return cu_err(err, INFER_E_UNSUPPORTED, "cuda matvec1 qkv: unaligned operands");
	for (int i = 0; i < 3; i++) {
		int bs, ts;
		if (!qfast_type(type[i]) || !cuda_type_block(type[i], &bs, &ts) || K % bs ||
		    (uintptr_t)w[i] % 8 || M[i] <= 0)
			return cu_err(err, INFER_E_UNSUPPORTED, "cuda matvec1 qkv: segment %d type %s", i,
				      cuda_type_name(type[i]));
		a.s[i] = mv1_args{ (const uint8_t *)w[i], NULL, K, M[i], x, nw, bias[i], eps, y + yoff, 0,
				   mv1_no_short(), 0, mv1_dot() };
		a.type[i] = type[i];
		yoff += M[i];
		rows += (M[i] + qr - 1) / qr;
		// Four rows per block decode after the wait: their rows are staged
		// in shared memory (as mv1_run's staged forms), one buffer per block.
		a.s[i].pitch = qr == 4 ? mv1_stage_pitch(qr * (K / bs) * ts, 1, a.s[i].w, NULL) : 0;
		staged = staged && a.s[i].pitch;
		smem = (size_t)a.s[i].pitch > smem ? (size_t)a.s[i].pitch : smem;
	}
	if (staged)
		c.dynamicSmemBytes = smem;
	at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
	at[0].val.programmaticStreamSerializationAllowed = 1;
	c.gridDim = dim3((unsigned)rows);
	c.blockDim = dim3(MV1_THREADS);
	c.stream = s;
	c.attrs = at;
	c.numAttrs = 1;
	cudaError_t le = qr == 2   ? cudaLaunchKernelEx(&c, mv1_qkv_kernel<2>, a, cuda_tabs())
			 : qr == 1 ? cudaLaunchKernelEx(&c, mv1_qkv_kernel<1>, a, cuda_tabs())
			 : staged  ? cudaLaunchKernelEx(&c, mv1_qkv_kernel<4, true>, a, cuda_tabs())
				   : cudaLaunchKernelEx(&c, mv1_qkv_kernel<4>, a, cuda_tabs());
	if (le != cudaSuccess)
		return cu_err(err, INFER_E_DEVICE, "cuda matvec1 qkv: launch failed: %s",
			      cudaGetErrorString(le));
	g_cuda_launches++;
	CK_LAUNCH("mv1_qkv_kernel");
	return 0;
}
