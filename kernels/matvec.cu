// Fused dequantize x vector products for every storage type: one warp per
// weight row, each lane decodes groups of the row in registers (qformats.cuh)
// and multiplies them with up to MV_MAX_COLS activation columns, so the
// weights are read once and never written out as floats. This is the decode
// (one token) path and the small-N path of the ops table.
#include "kernels.cuh"

#define MV_WARPS 4

static __device__ __forceinline__ float warp_sum(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

template <typename T, int NC>
static __global__ void __launch_bounds__(MV_WARPS * 32)
	mv_kernel(const uint8_t *__restrict__ w, int64_t K, int64_t M, const float *__restrict__ x,
		  int N, float *__restrict__ y, int accumulate, const float *__restrict__ bias,
		  iq_tabs t)
{
	constexpr int GPB = T::BS / T::G;
	const int lane = threadIdx.x & 31;
	const int64_t row = (int64_t)blockIdx.x * MV_WARPS + (threadIdx.x >> 5);

	if (row >= M)
		return;
	const uint8_t *wr = w + row * (K / T::BS) * T::TS;
	const int64_t ng = K / T::G;
	float acc[NC];
	for (int n = 0; n < NC; n++)
		acc[n] = 0.0f;
	for (int64_t gi = lane; gi < ng; gi += 32) {
		float v[T::G];
		T::deq(wr + (gi / GPB) * T::TS, (int)(gi % GPB), v, t);
		for (int n = 0; n < NC; n++) {
			if (n >= N)
				break;
			const float *xp = x + n * K + gi * T::G;
			if constexpr (T::G == 8) {
				float4 a = __ldg((const float4 *)xp), b = __ldg((const float4 *)xp + 1);
				acc[n] += v[0] * a.x + v[1] * a.y + v[2] * a.z + v[3] * a.w +
					  v[4] * b.x + v[5] * b.y + v[6] * b.z + v[7] * b.w;
			} else {
				for (int i = 0; i < T::G; i++)
					acc[n] += v[i] * xp[i];
			}
		}
	}
	for (int n = 0; n < NC; n++) {
		if (n >= N)
			break;
		float s = warp_sum(acc[n]);
		if (bias)
			s += bias[row];
		if (lane == 0)
			y[n * M + row] = accumulate ? y[n * M + row] + s : s;
	}
}

int cuda_matvec(uint32_t type, const void *w, int64_t K, int64_t M, const float *x, int64_t N,
		float *y, int accumulate, const float *bias, cudaStream_t s, infer_error *err)
{
	int bs, ts, rc = cuda_init(err);

	if (rc)
		return rc;
	if (!cuda_type_block(type, &bs, &ts))
		return cu_err(err, INFER_E_UNSUPPORTED, "cuda mul_mat: unsupported weight type id %u (%s)",
			      type, cuda_type_name(type));
	if (K <= 0 || M <= 0 || N <= 0 || N > MV_MAX_COLS || K % bs)
		return cu_err(err, INFER_E_ARG, "cuda matvec: bad shape K=%lld M=%lld N=%lld for %s",
			      (long long)K, (long long)M, (long long)N, cuda_type_name(type));
	// The float4 loads of x need 32-byte aligned columns: K % 8 == 0 holds
	// for every quantized type (blocks of 32+); plain types use scalar loads.
	unsigned grid = (unsigned)cdiv(M, MV_WARPS);
#define LAUNCH(T)                                                                         \
	mv_kernel<T, MV_MAX_COLS><<<grid, MV_WARPS * 32, 0, s>>>(                         \
		(const uint8_t *)w, K, M, x, (int)N, y, accumulate, bias, cuda_tabs())
	QTYPE_DISPATCH(type, LAUNCH)
#undef LAUNCH
	g_cuda_launches++;
	CK_LAUNCH("mv_kernel");
	return 0;
}

