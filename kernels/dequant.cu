// Dequantization kernels for every storage type: one thread decodes one
// group (8 elements of a quantized block, or 1 element of a plain type)
// with the shared decoders of qformats.cuh, bit-exact with the CPU.
#include "kernels.cuh"

template <typename T, typename O>
static __global__ void deq_kernel(const uint8_t *__restrict__ src, O *__restrict__ dst,
				  int64_t n_groups, iq_tabs t)
{
	constexpr int GPB = T::BS / T::G; // groups per block
	int64_t gi = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;

	if (gi >= n_groups)
		return;
	float v[T::G];
	T::deq(src + (gi / GPB) * T::TS, (int)(gi % GPB), v, t);
	for (int i = 0; i < T::G; i++) {
		if constexpr (sizeof(O) == 4)
			dst[gi * T::G + i] = v[i];
		else
			dst[gi * T::G + i] = __float2half_rn(v[i]);
	}
}

template <typename O>
static int dequant_any(uint32_t type, const void *src, O *dst, int64_t n, cudaStream_t s,
		       infer_error *err)
{
	int bs, ts, rc = cuda_init(err);

	if (rc)
		return rc;
	if (!cuda_type_block(type, &bs, &ts))
		return cu_err(err, INFER_E_UNSUPPORTED, "cuda dequant: unsupported type id %u (%s)",
			      type, cuda_type_name(type));
	if (n < 0 || n % bs)
		return cu_err(err, INFER_E_ARG,
			      "cuda dequant: %lld elements is not a whole number of %s blocks of %d",
			      (long long)n, cuda_type_name(type), bs);
	if (n == 0)
		return 0;
#define LAUNCH(T)                                                                        \
	do {                                                                             \
		int64_t ng = n / T::G;                                                   \
		deq_kernel<T, O><<<(unsigned)cdiv(ng, 256), 256, 0, s>>>(                \
			(const uint8_t *)src, dst, ng, cuda_tabs());                     \
	} while (0)
	QTYPE_DISPATCH(type, LAUNCH)
#undef LAUNCH
	g_cuda_launches++;
	CK_LAUNCH("deq_kernel");
	return 0;
}

int cuda_dequant_f32(uint32_t type, const void *src, float *dst, int64_t n, cudaStream_t s,
		     infer_error *err)
{
	return dequant_any<float>(type, src, dst, n, s, err);
}

int cuda_dequant_f16(uint32_t type, const void *src, __half *dst, int64_t n, cudaStream_t s,
		     infer_error *err)
{
	return dequant_any<__half>(type, src, dst, n, s, err);
}

static __global__ void f32_to_f16_kernel(const float *__restrict__ src, __half *__restrict__ dst,
					 int64_t n)
{
	int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;

	if (i < n)
		dst[i] = __float2half_rn(src[i]);
}

int cuda_f32_to_f16(const float *src, __half *dst, int64_t n, cudaStream_t s, infer_error *err)
{
	if (n <= 0)
		return 0;
	f32_to_f16_kernel<<<(unsigned)cdiv(n, 256), 256, 0, s>>>(src, dst, n);
	g_cuda_launches++;
	CK_LAUNCH("f32_to_f16_kernel");
	return 0;
}

// Embedding lookup: one thread per group of one row of the table.
template <typename T>
static __global__ void get_rows_kernel(const uint8_t *__restrict__ table, int64_t K,
				       const int32_t *__restrict__ tokens, float *__restrict__ out,
				       iq_tabs t)
{
	constexpr int GPB = T::BS / T::G;
	int64_t gi = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
	const int64_t tok = blockIdx.y;

	if (gi >= K / T::G)
		return;
	const uint8_t *row = table + (int64_t)tokens[tok] * (K / T::BS) * T::TS;
	T::deq(row + (gi / GPB) * T::TS, (int)(gi % GPB), out + tok * K + gi * T::G, t);
}

int cuda_get_rows(uint32_t type, const void *table, int64_t K, const int32_t *tokens, int64_t n,
		  float *out, cudaStream_t s, infer_error *err)
{
	int bs, ts;

	if (!cuda_type_block(type, &bs, &ts))
		return cu_err(err, INFER_E_UNSUPPORTED, "cuda get_rows: unsupported type id %u (%s)",
			      type, cuda_type_name(type));
	if (K % bs || n <= 0)
		return cu_err(err, INFER_E_ARG, "cuda get_rows: row of %lld is not whole %s blocks",
			      (long long)K, cuda_type_name(type));
#define LAUNCH(T)                                                                        \
	do {                                                                             \
		dim3 grid((unsigned)cdiv(K / T::G, 128), (unsigned)n);                   \
		get_rows_kernel<T><<<grid, 128, 0, s>>>((const uint8_t *)table, K, tokens, out, \
							 cuda_tabs());                   \
	} while (0)
	QTYPE_DISPATCH(type, LAUNCH)
#undef LAUNCH
	g_cuda_launches++;
	CK_LAUNCH("get_rows_kernel");
	return 0;
}
