// Rotary position embedding in place, NEOX (pairs i, i + n_rot/2) or normal
// (pairs 2i, 2i+1). Angles pos * base^(-2i/n_rot) are formed in double, as in
// the CPU reference, so large positions lose no precision; the rotation
// itself is float with explicit roundings (no FMA contraction).
#include "kernels.cuh"

static __global__ void rope_kernel(float *x, const int32_t *__restrict__ pos, int64_t head_dim,
				   int64_t n_heads, int64_t n_tokens, int64_t n_rot, double base,
				   int neox)
{
	const int64_t half = n_rot / 2;
	int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;

	if (idx >= n_tokens * n_heads * half)
		return;
	int64_t i = idx % half, th = idx / half, t = th / n_heads;
	float *xh = x + th * head_dim;
	double theta = (double)pos[t] * pow(base, -2.0 * (double)i / (double)n_rot);
	float c = (float)cos(theta), sn = (float)sin(theta);
	int64_t a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
	float x0 = xh[a], x1 = xh[b];

	xh[a] = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, sn));
	xh[b] = __fadd_rn(__fmul_rn(x0, sn), __fmul_rn(x1, c));
}

int cuda_rope(float *x, const int32_t *pos, int64_t head_dim, int64_t n_heads, int64_t n_tokens,
	      int64_t n_rot, float freq_base, int neox, cudaStream_t s, infer_error *err)
{
	if (n_rot <= 0 || n_rot > head_dim || n_rot % 2)
		return cu_err(err, INFER_E_ARG, "rope: n_rot %lld must be even and in 1..head_dim %lld",
			      (long long)n_rot, (long long)head_dim);
	if (!(freq_base > 0.0f))
		return cu_err(err, INFER_E_ARG, "rope: freq_base %g must be > 0", (double)freq_base);
	int64_t total = n_tokens * n_heads * (n_rot / 2);
	if (total <= 0)
		return 0;
	rope_kernel<<<(unsigned)cdiv(total, 256), 256, 0, s>>>(x, pos, head_dim, n_heads, n_tokens,
							       n_rot, (double)freq_base, neox);
	g_cuda_launches++;
	CK_LAUNCH("rope_kernel");
	return 0;
}
