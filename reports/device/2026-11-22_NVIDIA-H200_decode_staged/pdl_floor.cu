// Floor of a chain of dependent PDL kernels in a CUDA graph (no weights):
// per kernel: launch_dependents, wait, read x[0..K) (L2), block reduce,
// block b writes y[b]. Next kernel reads y as its x. Measures us per kernel.
#include <cstdio>
#include <cuda_runtime.h>

__device__ __forceinline__ void pdl_ld() { asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); }
__device__ __forceinline__ void pdl_w() { asm volatile("griddepcontrol.wait;" ::: "memory"); }

template <int MODE>
__global__ void k_chain(const float *x, float *y, int K)
{
	__shared__ float red[4];
	pdl_ld();
	pdl_w();
	if (MODE == 0) {
		if (threadIdx.x == 0)
			y[blockIdx.x] = x[blockIdx.x % K] + 1.0f;
		return;
	}
	float s = 0;
	for (int i = threadIdx.x; i < K; i += blockDim.x)
		s += x[i];
	for (int o = 16; o; o >>= 1)
		s += __shfl_xor_sync(~0u, s, o);
	if ((threadIdx.x & 31) == 0)
		red[threadIdx.x >> 5] = s;
	__syncthreads();
	if (MODE == 2) { // second reduction round, like norm then dot
		float t = red[0] + red[1] + red[2] + red[3];
		__syncthreads();
		s = 0;
		for (int i = threadIdx.x; i < K; i += blockDim.x)
			s += x[i] * t;
		for (int o = 16; o; o >>= 1)
			s += __shfl_xor_sync(~0u, s, o);
		if ((threadIdx.x & 31) == 0)
			red[threadIdx.x >> 5] = s;
		__syncthreads();
	}
	if (threadIdx.x == 0)
		y[blockIdx.x] = (red[0] + red[1] + red[2] + red[3]) * 1e-9f;
}

template <int MODE> static float run(int grid, int nk, float *a, float *b, cudaStream_t s, bool pdl)
{
	cudaGraph_t g;
	cudaGraphExec_t ge;
	cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal);
	for (int i = 0; i < nk; i++) {
		cudaLaunchConfig_t c = {};
		cudaLaunchAttribute at[1];
		at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
		at[0].val.programmaticStreamSerializationAllowed = 1;
		c.gridDim = dim3(grid);
		c.blockDim = dim3(128);
		c.stream = s;
		c.attrs = at;
		c.numAttrs = pdl ? 1 : 0;
		cudaLaunchKernelEx(&c, k_chain<MODE>, (const float *)((i & 1) ? b : a), (i & 1) ? a : b, 896);
	}
	cudaStreamEndCapture(s, &g);
	cudaGraphInstantiate(&ge, g, 0);
	cudaEvent_t e0, e1;
	cudaEventCreate(&e0);
	cudaEventCreate(&e1);
	for (int w = 0; w < 5; w++)
		cudaGraphLaunch(ge, s);
	cudaEventRecord(e0, s);
	for (int w = 0; w < 50; w++)
		cudaGraphLaunch(ge, s);
	cudaEventRecord(e1, s);
	cudaEventSynchronize(e1);
	float ms;
	cudaEventElapsedTime(&ms, e0, e1);
	cudaGraphExecDestroy(ge);
	cudaGraphDestroy(g);
	return ms * 1e3f / 50 / nk;
}

int main()
{
	float *a, *b;
	cudaStream_t s;
	cudaMalloc(&a, 1 << 20);
	cudaMalloc(&b, 1 << 20);
	cudaMemset(a, 0, 1 << 20);
	cudaMemset(b, 0, 1 << 20);
	cudaStreamCreate(&s);
	const int grids[] = { 14, 112, 132, 264, 896, 1216, 2432 };
	for (int pdl = 0; pdl < 2; pdl++)
		for (int gi = 0; gi < 7; gi++)
			printf("pdl=%d grid=%4d  us/kernel: trivial %.2f  x-read %.2f  two-round %.2f\n", pdl,
			       grids[gi], run<0>(grids[gi], 120, a, b, s, pdl), run<1>(grids[gi], 120, a, b, s, pdl),
			       run<2>(grids[gi], 120, a, b, s, pdl));
	printf("err: %s\n", cudaGetErrorString(cudaDeviceSynchronize()));
	return 0;
}
