// The one-token (decode) mat-vec of the forward pass, with its fusions.
// Kept apart from matvec.cu so the two template-heavy files compile in
// parallel.
#include "kernels.cuh"

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
};

#define MV1_THREADS 128

// One block computes ROWS rows; its 128 threads split each row's groups
// between them (consecutive threads take consecutive groups, so a warp
// reads contiguous bytes), partial sums stay in registers for all ROWS
// rows, and one block reduction at the end yields them all. Splitting a row
// over the whole block keeps enough loads in flight even when M is small.
template <typename T, bool NORM, bool PAIR, int ROWS>
static __global__ void __launch_bounds__(MV1_THREADS) mv1_kernel(mv1_args a, iq_tabs t)
{
	__shared__ double red[MV1_THREADS / 32];
	__shared__ float part[MV1_THREADS / 32][PAIR ? 2 * ROWS : ROWS];
	constexpr int GPB = T::BS / T::G;
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
	float scale = 1.0f;

	// x is read straight from global memory (it stays in L1); with NORM the
	// block first reduces its sum of squares, then normalizes on the fly.
	if constexpr (NORM) {
		double ss = 0.0;
		for (int64_t i = threadIdx.x; i < a.K; i += MV1_THREADS)
			ss += (double)a.x[i] * a.x[i];
		for (int o = 16; o > 0; o >>= 1)
			ss += __shfl_xor_sync(0xffffffffu, ss, o);
		if (lane == 0)
			red[warp] = ss;
		__syncthreads();
		ss = 0.0;
		for (int i = 0; i < MV1_THREADS / 32; i++)
			ss += red[i];
		scale = (float)(1.0 / sqrt(ss / (double)a.K + (double)a.eps));
	}
	const int64_t row0 = (int64_t)blockIdx.x * ROWS;
	// The epilogue's extra operands (residual, bias) are loaded now, so their
	// latency overlaps the main loop instead of following it.
	float y_old = 0.0f, b_row = 0.0f;
	if (threadIdx.x < ROWS && row0 + threadIdx.x < a.M) {
		if (a.accumulate)
			y_old = a.y[row0 + threadIdx.x];
		if (a.bias)
			b_row = a.bias[row0 + threadIdx.x];
	}
	const int64_t rb = (a.K / T::BS) * T::TS;
	const int64_t ng = a.K / T::G;
	float acc[ROWS], acc2[ROWS];
#pragma unroll
	for (int r = 0; r < ROWS; r++)
		acc[r] = acc2[r] = 0.0f;
	for (int64_t gi = threadIdx.x; gi < ng; gi += MV1_THREADS) {
		float xp[T::G];
		for (int i = 0; i < T::G; i++) {
			float xv = __ldg(a.x + gi * T::G + i);
			if constexpr (NORM)
				xv = __fmul_rn(__fmul_rn(xv, scale), __ldg(a.nw + gi * T::G + i));
			xp[i] = xv;
		}
		const int64_t boff = (gi / GPB) * T::TS;
		const int g = (int)(gi % GPB);
#pragma unroll
		for (int r = 0; r < ROWS; r++) {
			if (row0 + r >= a.M)
				break;
			float v[T::G];
			T::deq(a.w + (row0 + r) * rb + boff, g, v, t);
			for (int i = 0; i < T::G; i++)
				acc[r] += v[i] * xp[i];
			if constexpr (PAIR) {
				T::deq(a.w2 + (row0 + r) * rb + boff, g, v, t);
				for (int i = 0; i < T::G; i++)
					acc2[r] += v[i] * xp[i];
			}
		}
	}
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
	if (a.bias)
		s += b_row;
	if constexpr (PAIR)
		a.y[row] = __fmul_rn(__fdiv_rn(s, __fadd_rn(1.0f, expf(-s))), s2);
	else
		a.y[row] = a.accumulate ? y_old + s : s;
}

int cuda_matvec1(uint32_t type, const void *w, const void *w2, int64_t K, int64_t M,
		 const float *x, const float *nw, float eps, const float *bias, float *y,
		 int accumulate, cudaStream_t s, infer_error *err)
{
	int bs, ts;
	mv1_args a = { (const uint8_t *)w, (const uint8_t *)w2, K, M, x, nw, bias, eps, y, accumulate };

	// Integer and f64 tensors are never weights; the pair form is only used
	// behind a norm (gate/up). Anything else is refused, never approximated.
	if (!cuda_type_block(type, &bs, &ts) || (type >= 24 && type <= 28) || (w2 && !nw))
		return cu_err(err, INFER_E_UNSUPPORTED, "cuda matvec1: unsupported weight type id %u (%s)%s",
			      type, cuda_type_name(type), w2 && !nw ? " for the unnormalized pair form" : "");
	if (K <= 0 || M <= 0 || K % bs)
		return cu_err(err, INFER_E_ARG, "cuda matvec1: bad shape K=%lld M=%lld for %s",
			      (long long)K, (long long)M, cuda_type_name(type));
	size_t smem = 0;
	// Rows per block: one when M is small (most warps in flight for the
	// latency-bound projections of the residual width), four for the FFN
	// width (one wave of blocks, the norm prologue shared by four rows),
	// eight for the vocabulary.
#define MV1_GO(T, NORM, PAIR)                                                                    \
	do {                                                                                     \
		if (NORM && !PAIR && M >= 16384)                                                 \
			mv1_kernel<T, true, false, 8><<<(unsigned)cdiv(M, 8), MV1_THREADS, smem, s>>>(a, cuda_tabs()); \
		else if (M >= 2048)                                                              \
			mv1_kernel<T, NORM, PAIR, 4><<<(unsigned)cdiv(M, 4), MV1_THREADS, smem, s>>>(a, cuda_tabs()); \
		else                                                                             \
			mv1_kernel<T, NORM, PAIR, 1><<<(unsigned)cdiv(M, 1), MV1_THREADS, smem, s>>>(a, cuda_tabs()); \
	} while (0)
#define LAUNCH(T)                                   \
	do {                                        \
		if (w2 && nw)                       \
			MV1_GO(T, true, true);      \
		else if (nw)                        \
			MV1_GO(T, true, false);     \
		else                                \
			MV1_GO(T, false, false);    \
	} while (0)
	QTYPE_DISPATCH_WEIGHTS(type, LAUNCH)
#undef LAUNCH
#undef MV1_GO
	g_cuda_launches++;
	CK_LAUNCH("mv1_kernel");
	return 0;
}
