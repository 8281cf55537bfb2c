// SwiGLU: y = silu(gate) * up = gate / (1 + exp(-gate)) * up, elementwise,
// with the CPU reference's operation order and no contraction.
#include "kernels.cuh"

static __global__ void swiglu_kernel(const float *__restrict__ g, const float *__restrict__ u,
				     float *__restrict__ y, int64_t n)
{
	int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;

	if (i < n)
		y[i] = __fmul_rn(__fdiv_rn(g[i], __fadd_rn(1.0f, expf(-g[i]))), u[i]);
}

int cuda_swiglu(const float *gate, const float *up, float *y, int64_t n, cudaStream_t s,
		infer_error *err)
{
	if (n < 0)
		return cu_err(err, INFER_E_ARG, "swiglu: bad length %lld", (long long)n);
	if (n == 0)
		return 0;
	swiglu_kernel<<<(unsigned)cdiv(n, 256), 256, 0, s>>>(gate, up, y, n);
	g_cuda_launches++;
	CK_LAUNCH("swiglu_kernel");
	return 0;
}
