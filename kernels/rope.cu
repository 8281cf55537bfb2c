// Rotary position embedding in place, NEOX (pairs i, i + n_rot/2) or normal
// (pairs 2i, 2i+1). Angles pos * base^(-2i/n_rot) are formed in double, as in
// the CPU reference, so large positions lose no precision; the rotation
// itself is float with explicit roundings (no FMA contraction).
#include "attn_core.cuh"
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

// The decode step's fused form: RoPE on the queries and keys of n tokens and
// the new keys and values stored into the KV cache at positions dpos[t], in
// one launch. Same arithmetic as rope_kernel. One thread per (token, head,
// pair) for q and k heads, plus one per (token, element) of v.
static __global__ void rope_store_kernel(float *q, float *k, const float *__restrict__ v,
					 float *__restrict__ kc, float *__restrict__ vc,
					 const int32_t *__restrict__ dpos, int hd, int nh, int nhk,
					 int n_tokens, int n_rot, const double *__restrict__ inv_freq,
					 int neox)
{
	const int pairs = hd / 2, kv_dim = nhk * hd;
	const int64_t n_rot_threads = (int64_t)n_tokens * (nh + nhk) * pairs;
	int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;

	if (idx >= n_rot_threads) {
		idx -= n_rot_threads;
		if (idx < (int64_t)n_tokens * kv_dim) {
			int64_t t = idx / kv_dim;
			vc[(int64_t)dpos[t] * kv_dim + idx % kv_dim] = v[idx];
		}
		return;
	}
	int j = (int)(idx % pairs);
	int64_t th = idx / pairs;
	int h = (int)(th % (nh + nhk));
	int64_t t = th / (nh + nhk);
	int is_k = h >= nh;
	float *xh = is_k ? k + (t * nhk + (h - nh)) * hd : q + (t * nh + h) * hd;
	int a, b;
	rope_pair(xh, j, n_rot, dpos[t], inv_freq, neox, &a, &b);
	if (is_k) {
		float *dst = kc + (int64_t)dpos[t] * kv_dim + (h - nh) * hd;
		dst[a] = xh[a];
		dst[b] = xh[b];
	}
}

int cuda_rope_store(float *q, float *k, const float *v, float *kc, float *vc, const int32_t *dpos,
		    int64_t head_dim, int64_t n_head, int64_t n_head_kv, int64_t n_tokens,
		    int64_t n_rot, const double *inv_freq, int neox, cudaStream_t s, infer_error *err)
{
	if (n_rot <= 0 || n_rot > head_dim || n_rot % 2 || head_dim % 2)
		return cu_err(err, INFER_E_ARG, "rope: n_rot %lld must be even and in 1..head_dim %lld",
			      (long long)n_rot, (long long)head_dim);
	int64_t total = n_tokens * ((n_head + n_head_kv) * (head_dim / 2) + n_head_kv * head_dim);
	rope_store_kernel<<<(unsigned)cdiv(total, 256), 256, 0, s>>>(
		q, k, v, kc, vc, dpos, (int)head_dim, (int)n_head, (int)n_head_kv, (int)n_tokens,
		(int)n_rot, inv_freq, neox);
	g_cuda_launches++;
	CK_LAUNCH("rope_store_kernel");
	return 0;
}
