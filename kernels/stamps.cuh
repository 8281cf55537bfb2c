/* Block timestamps: a measurement build only (cmake -DINFER_STAMPS=ON), since
 * Nsight Systems cannot trace the device tool's GPU and ncu serializes the
 * decode graph's kernels. Thread 0 of every block of a stamped kernel notes
 * %globaltimer at entry (pdl_launch_dependents or stamp_begin), after
 * pdl_wait and at the end (stamp_end), and appends (grid id, block, kind,
 * t0, t1, t2) to a ring in device memory; stamps.cu turns the ring into one
 * line per grid (launch lag, wait release, work after the wait, tail) when
 * the session ends with INFER_STAMPS_OUT set. Without INFER_STAMPS every
 * hook is empty and nothing here is compiled. */
#ifndef INFER_STAMPS_CUH
#define INFER_STAMPS_CUH

#ifdef INFER_STAMPS
#include <stdint.h>

/* t[0] entry, t[1] after the wait, t[2..6] marks (0: not reached), t[7] end */
struct stamp_rec {
	unsigned long long grid, t[8];
	unsigned blk, nblk, kind, pad;
};

#define STAMP_CAP (1u << 22)

/* Each translation unit has its own copy of these two pointers (no
 * separate compilation); stamps_bind_here, registered at static
 * initialization, points them at the one ring. */
static __device__ stamp_rec *g_stamp_buf;
static __device__ unsigned long long *g_stamp_n;

void stamps_register(int (*bind)(void *buf, void *n));

static int stamps_bind_here(void *buf, void *n)
{
	if (cudaMemcpyToSymbol(g_stamp_buf, &buf, sizeof buf) != cudaSuccess)
		return -1;
	return cudaMemcpyToSymbol(g_stamp_n, &n, sizeof n) == cudaSuccess ? 0 : -1;
}

static int stamps_registered_here = (stamps_register(stamps_bind_here), 0);

static __device__ __forceinline__ unsigned long long stamp_clock(void)
{
	unsigned long long t;
	asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
	return t;
}

static __device__ __forceinline__ unsigned long long *stamp_slots(void)
{
	__shared__ unsigned long long t[7];
	return t;
}

static __device__ __forceinline__ void stamp_begin(void)
{
	if (threadIdx.x == 0) {
		stamp_slots()[0] = stamp_slots()[1] = stamp_clock();
		for (int i = 2; i < 7; i++)
			stamp_slots()[i] = 0;
	}
}

static __device__ __forceinline__ void stamp_waited(void)
{
	if (threadIdx.x == 0)
		stamp_slots()[1] = stamp_clock();
}

/* Mark i (2..6) of thread 0's progress. */
static __device__ __forceinline__ void stamp_mark(int i)
{
	if (threadIdx.x == 0)
		stamp_slots()[i] = stamp_clock();
}

static __device__ __forceinline__ void stamp_end(unsigned kind)
{
	if (threadIdx.x || !g_stamp_buf)
		return;
	unsigned long long grid;
	asm volatile("mov.u64 %0, %%gridid;" : "=l"(grid));
	const unsigned long long t2 = stamp_clock();
	const unsigned long long i = atomicAdd(g_stamp_n, 1ull) % STAMP_CAP;
	const unsigned blk = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
	stamp_rec r;
	r.grid = grid;
	for (int k = 0; k < 7; k++)
		r.t[k] = stamp_slots()[k];
	r.t[7] = t2;
	r.blk = blk;
	r.nblk = gridDim.x * gridDim.y * gridDim.z;
	r.kind = kind;
	r.pad = 0;
	g_stamp_buf[i] = r;
}
#else
static __device__ __forceinline__ void stamp_begin(void) {}
static __device__ __forceinline__ void stamp_waited(void) {}
static __device__ __forceinline__ void stamp_mark(int) {}
static __device__ __forceinline__ void stamp_end(unsigned) {}
#endif

#endif
