// Token sampling on the device: the same chain as runtime/src/sampler.c
// (penalty -> greedy | temperature -> top-k -> softmax -> top-p -> min-p ->
// draw), so a cuda session picks the token the CPU sampler would pick from
// the same logits, parameters and PRNG state.
//
// How the choice is kept equal to the CPU's:
// - the repetition penalty is the same float operation on the same ids (the
//   host lists the distinct ids of the window, infer_sampler_penalty_ids);
// - greedy: the first maximum (ties -> lowest id), an exact comparison;
// - candidates are ordered by logit, ties by id: a stable radix sort (CUB) of
//   (logit, id) pairs in id order; -0.0 is turned into +0.0 first because the
//   radix sort orders their bits while the CPU's comparison calls them equal;
// - the uniform draw is NOT made here: the host's xoshiro256** state makes it
//   (infer_sampler_next_unit), one draw per non-greedy pick, as the CPU does.
// Tie rule (the only place the two can differ): probabilities are exp() in
// double on both sides, but CUDA's exp() may differ from glibc's by 1 ulp and
// the sums run in a different order, so cumulative masses differ by ~1e-16
// relative. When top_p, or u * mass, falls within that distance of a
// cumulative-mass boundary, the two may keep / pick the neighbouring
// candidate. With 53-bit draws this is a ~1e-15 event per token.
// NaN logits are not supported (the forward pass never produces them).
#include <cub/cub.cuh>

#include "infer_cuda.h"
#include "kernels.cuh"

#define SB 1024        // threads of the single-block selection kernels
#define SCAN_ITEMS 4   // doubles per thread per scan tile

struct sample_pick {
	int32_t id;
	float lp_raw, lp_final;
};

/* The greedy pick runs over GREEDY_BLOCKS blocks of GREEDY_THREADS: each
 * thread folds its logits into one greedy_part, the parts merge by warp
 * shuffles and once across the warps, the last block to finish merges the
 * blocks' parts the same way. One block over 151936 logits took 63 us on
 * the H200; 48 blocks with three block reductions and a serial merge, 14. */
#define GREEDY_BLOCKS 128
#define GREEDY_THREADS 256

struct greedy_part {
	float bv; // the best key, its id (INT_MAX: none) and the raw logit there
	int bi;
	float r;
	float m;  // max of the raw logits, sum of exp(raw - m)
	double s;
};

struct infer_cuda_sampler {
	int32_t n_vocab;
	float *keys_in, *keys_out;
	int32_t *ids_in, *ids_out, *pen;
	double *p;
	void *tmp;
	size_t tmp_bytes;
	sample_pick *d_out, *h_out;
	greedy_part *part;
	unsigned *count; // blocks of the greedy pick done (left zeroed)
	cudaEvent_t done; // h_out holds the pick: later work on the stream need not finish
};

/* ---- block reductions (SB threads) --------------------------------------- */

// Warp shuffles, one value per warp in sh, then warp 0; every thread gets
// the result (op: the sum or the max).
template <typename T, typename Op> __device__ static T block_reduce(T v, T *sh, Op op)
{
	for (int o = 16; o > 0; o >>= 1)
		v = op(v, __shfl_down_sync(0xffffffffu, v, o));
	__syncthreads();
	if ((threadIdx.x & 31) == 0)
		sh[threadIdx.x >> 5] = v;
	__syncthreads();
	if (threadIdx.x < 32) {
		v = sh[threadIdx.x];
		for (int o = 16; o > 0; o >>= 1)
			v = op(v, __shfl_down_sync(0xffffffffu, v, o));
		if (threadIdx.x == 0)
			sh[0] = v;
	}
	__syncthreads();
	return sh[0];
}

__device__ static double block_sum(double v, double *sh)
{
	return block_reduce(v, sh, [](double a, double b) { return a + b; });
}

__device__ static float block_max(float v, float *sh)
{
	return block_reduce(v, sh, [](float a, float b) { return fmaxf(a, b); });
}

// (value, index) with the larger value winning, ties to the lower index.
__device__ static bool better(float v, int i, float bv, int bi)
{
	return v > bv || (v == bv && i < bi);
}

// log-softmax of the raw logits at id, as infer_logprob: float inputs,
// the maximum subtracted, exp and the sum in double.
__device__ static float block_logprob(const float *raw, int n, int id, double *shd, float *shf)
{
	float m = -INFINITY;
	double s = 0.0, mx;

	for (int i = threadIdx.x; i < n; i += SB)
		m = fmaxf(m, raw[i]);
	mx = (double)block_max(m, shf);
	for (int i = threadIdx.x; i < n; i += SB)
		s += exp((double)raw[i] - mx);
	s = block_sum(s, shd);
	return (float)((double)raw[id] - mx - log(s));
}

typedef cub::BlockScan<double, SB> scan_t;

// The first i in [0, n) whose inclusive prefix sum of p passes thr (cum > thr
// when strict, else cum >= thr); -1 when none does. Tiles of SB*SCAN_ITEMS in
// order, each scanned in parallel with the running total carried over.
__device__ static int scan_first(const double *p, int n, double thr, bool strict,
				 typename scan_t::TempStorage &ts)
{
	__shared__ int found;
	__shared__ double tile_end;
	double carry = 0.0;

	for (int base = 0; base < n; base += SB * SCAN_ITEMS) {
		double v[SCAN_ITEMS];
		int first = base + threadIdx.x * SCAN_ITEMS;

		for (int k = 0; k < SCAN_ITEMS; k++)
			v[k] = first + k < n ? p[first + k] : 0.0;
		scan_t(ts).InclusiveSum(v, v);
		if (threadIdx.x == 0)
			found = INT_MAX;
		__syncthreads();
		for (int k = 0; k < SCAN_ITEMS && first + k < n; k++) {
			double c = carry + v[k];
			if (strict ? c > thr : c >= thr) {
				atomicMin(&found, first + k);
				break;
			}
		}
		if (threadIdx.x == SB - 1)
			tile_end = carry + v[SCAN_ITEMS - 1];
		__syncthreads();
		if (found != INT_MAX)
			return found;
		carry = tile_end;
		__syncthreads(); // found / tile_end / ts are reused by the next tile
	}
	return -1;
}

/* ---- kernels ------------------------------------------------------------- */

// keys = logits with -0.0 made +0.0 (x + 0.0f), ids = 0..n-1.
__global__ static void prep_kernel(const float *__restrict__ l, float *__restrict__ keys,
				   int32_t *__restrict__ ids, int n)
{
	int i = blockIdx.x * blockDim.x + threadIdx.x;

	if (i < n) {
		keys[i] = l[i] + 0.0f;
		ids[i] = i;
	}
}

// sampler.c apply_penalty on distinct ids: positive / rp, others * rp.
__global__ static void penalty_kernel(float *keys, const int32_t *pen, int n_pen, float rp)
{
	int j = blockIdx.x * blockDim.x + threadIdx.x;

	if (j < n_pen) {
		float v = keys[pen[j]];
		keys[pen[j]] = (v > 0 ? v / rp : v * rp) + 0.0f;
	}
}

static __device__ greedy_part greedy_none(void)
{
	return greedy_part{ -INFINITY, INT_MAX, 0.0f, -INFINITY, 0.0 };
}

// b folded into a: the better key (ties -> the lower id, as the CPU's first
// maximum), and the two (max, sum of exp) pairs as one.
static __device__ greedy_part greedy_merge(greedy_part a, const greedy_part &b)
{
	if (b.bi != INT_MAX && better(b.bv, b.bi, a.bv, a.bi)) {
		a.bv = b.bv;
		a.bi = b.bi;
		a.r = b.r;
	}
	const float M = fmaxf(a.m, b.m);
	double s = 0.0;
	if (a.m != -INFINITY)
		s += a.s * exp((double)a.m - (double)M);
	if (b.m != -INFINITY)
		s += b.s * exp((double)b.m - (double)M);
	a.m = M;
	a.s = s;
	return a;
}

static __device__ greedy_part greedy_shfl(const greedy_part &p, int o)
{
	return greedy_part{ __shfl_down_sync(0xffffffffu, p.bv, o), __shfl_down_sync(0xffffffffu, p.bi, o),
			    __shfl_down_sync(0xffffffffu, p.r, o), __shfl_down_sync(0xffffffffu, p.m, o),
			    __shfl_down_sync(0xffffffffu, p.s, o) };
}

// The block's parts merged (a fixed tree: the same result every run);
// thread 0 gets it.
static __device__ greedy_part greedy_block(greedy_part p, greedy_part *sh)
{
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

	for (int o = 16; o > 0; o >>= 1)
		p = greedy_merge(p, greedy_shfl(p, o));
	if (lane == 0)
		sh[warp] = p;
	__syncthreads();
	if (warp)
		return p;
	p = lane < GREEDY_THREADS / 32 ? sh[lane] : greedy_none();
	for (int o = 16; o > 0; o >>= 1)
		p = greedy_merge(p, greedy_shfl(p, o));
	return p;
}

// The first maximum of keys (ties -> lowest id) and the log-softmax of the
// raw logits there, as greedy + infer_logprob on the CPU (the exp sum in
// double, in another order: ~1e-16 relative).
__global__ static void __launch_bounds__(GREEDY_THREADS)
greedy_kernel(const float *__restrict__ keys, const float *__restrict__ raw, int n,
	      greedy_part *part, unsigned *count, sample_pick *out)
{
	__shared__ greedy_part sh[GREEDY_THREADS / 32];
	__shared__ bool last;
	greedy_part p = greedy_none();

	stamp_begin();

	for (int i = blockIdx.x * GREEDY_THREADS + threadIdx.x; i < n; i += gridDim.x * GREEDY_THREADS) {
		const float k = keys[i], x = raw[i];
		if (better(k, i, p.bv, p.bi)) {
			p.bv = k;
			p.bi = i;
			p.r = x;
		}
		if (x > p.m) { // online: rescale the sum to the new maximum
			p.s = (p.m == -INFINITY ? 0.0 : p.s * exp((double)p.m - (double)x)) + 1.0;
			p.m = x;
		} else if (x != -INFINITY) {
			p.s += exp((double)x - (double)p.m);
		}
	}
	p = greedy_block(p, sh);
	if (threadIdx.x == 0) {
		part[blockIdx.x] = p;
		__threadfence();
		last = atomicAdd(count, 1u) == gridDim.x - 1;
	}
	__syncthreads();
	if (!last) {
		stamp_end(400);
		return;
	}
	// The other blocks' parts (__ldcg: from L2, not this SM's L1), merged in
	// a fixed tree as above.
	__threadfence();
	p = greedy_none();
	if (threadIdx.x < gridDim.x)
		p = greedy_part{ __ldcg(&part[threadIdx.x].bv), __ldcg(&part[threadIdx.x].bi),
				 __ldcg(&part[threadIdx.x].r), __ldcg(&part[threadIdx.x].m),
				 __ldcg(&part[threadIdx.x].s) };
	__syncthreads(); // sh is reused
	p = greedy_block(p, sh);
	if (threadIdx.x != 0)
		return;
	const int id = p.bi == INT_MAX ? 0 : p.bi; // every key NaN: the CPU's argmax keeps index 0 too
	const float r = p.bi == INT_MAX ? raw[0] : p.r;
	out->id = id;
	out->lp_raw = (float)((double)r - (double)p.m - log(p.s));
	out->lp_final = 0.0f; // greedy: the pick has probability 1
	*count = 0;
	stamp_end(401);
}

struct pick_args {
	int n_vocab, top_k;
	float temp, top_p, min_p;
	double u;
};

// Over the sorted (logit, id) pairs: top-k, softmax / temp, top-p, min-p,
// the draw u * mass, as sampler.c does on its sorted candidates.
__global__ static void __launch_bounds__(SB)
pick_kernel(const float *__restrict__ sk, const int32_t *__restrict__ sid,
	    const float *__restrict__ raw, double *p, pick_args a, sample_pick *out)
{
	__shared__ typename scan_t::TempStorage ts;
	__shared__ double shd[32];
	__shared__ float shf[32];
	int n = a.top_k > 0 && a.top_k < a.n_vocab ? a.top_k : a.n_vocab;
	double mx = (double)sk[0] / a.temp, sum = 0.0, mass = 0.0;
	int idx;

	for (int i = threadIdx.x; i < n; i += SB) {
		p[i] = exp((double)sk[i] / a.temp - mx);
		sum += p[i];
	}
	sum = block_sum(sum, shd);
	for (int i = threadIdx.x; i < n; i += SB)
		p[i] /= sum;
	__syncthreads(); // p is read across threads from here on
	if (a.top_p < 1.0f) {
		int j = scan_first(p, n, (double)a.top_p, false, ts);
		n = j < 0 ? n : j + 1; // the CPU keeps at least one
	}
	if (a.min_p > 0.0f) {
		__shared__ int cut;
		double floor = (double)a.min_p * p[0];

		if (threadIdx.x == 0)
			cut = n;
		__syncthreads();
		for (int i = 1 + threadIdx.x; i < n; i += SB)
			if (p[i] < floor)
				atomicMin(&cut, i);
		__syncthreads();
		n = cut;
	}
	for (int i = threadIdx.x; i < n; i += SB)
		mass += p[i];
	mass = block_sum(mass, shd);
	idx = scan_first(p, n, a.u * mass, true, ts);
	if (idx < 0)
		idx = n - 1;
	int id = sid[idx];
	float lp = block_logprob(raw, a.n_vocab, id, shd, shf);
	if (threadIdx.x == 0) {
		out->id = id;
		out->lp_raw = lp;
		out->lp_final = (float)log(p[idx] / mass);
	}
}

/* ---- host ---------------------------------------------------------------- */

extern "C" void infer_cuda_sampler_free(infer_cuda_sampler *cs)
{
	if (!cs)
		return;
	cudaFree(cs->keys_in);
	cudaFree(cs->keys_out);
	cudaFree(cs->ids_in);
	cudaFree(cs->ids_out);
	cudaFree(cs->pen);
	cudaFree(cs->p);
	cudaFree(cs->tmp);
	cudaFree(cs->d_out);
	cudaFree(cs->part);
	cudaFree(cs->count);
	cudaFreeHost(cs->h_out);
	if (cs->done)
		cudaEventDestroy(cs->done);
	free(cs);
}

static int sampler_alloc(infer_cuda_sampler *cs, infer_error *err)
{
	size_t n = (size_t)cs->n_vocab;

	CK(cudaMalloc((void **)&cs->keys_in, n * 4));
	CK(cudaMalloc((void **)&cs->keys_out, n * 4));
	CK(cudaMalloc((void **)&cs->ids_in, n * 4));
	CK(cudaMalloc((void **)&cs->ids_out, n * 4));
	CK(cudaMalloc((void **)&cs->pen, n * 4));
	CK(cudaMalloc((void **)&cs->p, n * 8));
	CK(cudaMalloc((void **)&cs->d_out, sizeof(sample_pick)));
	CK(cudaMalloc((void **)&cs->part, GREEDY_BLOCKS * sizeof(greedy_part)));
	CK(cudaMalloc((void **)&cs->count, sizeof(unsigned)));
	CK(cudaMemset(cs->count, 0, sizeof(unsigned)));
	CK(cudaMallocHost((void **)&cs->h_out, sizeof(sample_pick)));
	CK(cudaEventCreateWithFlags(&cs->done, cudaEventDisableTiming));
	CK(cub::DeviceRadixSort::SortPairsDescending(NULL, cs->tmp_bytes, cs->keys_in, cs->keys_out,
						     cs->ids_in, cs->ids_out, cs->n_vocab));
	CK(cudaMalloc(&cs->tmp, cs->tmp_bytes));
	return 0;
}

extern "C" infer_cuda_sampler *infer_cuda_sampler_new(int32_t n_vocab, infer_error *err)
{
	infer_cuda_sampler *cs;

	if (n_vocab <= 0) {
		cu_err(err, INFER_E_ARG, "cuda sampler: n_vocab %d must be > 0", n_vocab);
		return NULL;
	}
	if (cuda_init(err))
		return NULL;
	cs = (infer_cuda_sampler *)calloc(1, sizeof(*cs));
	if (!cs) {
		cu_err(err, INFER_E_NOMEM, "cuda sampler: out of memory");
		return NULL;
	}
	cs->n_vocab = n_vocab;
	if (sampler_alloc(cs, err)) {
		infer_cuda_sampler_free(cs);
		return NULL;
	}
	return cs;
}

static int launch_pick(infer_cuda_sampler *cs, const float *d_logits, int32_t n,
		       const infer_sampler_params *p, double u, cudaStream_t s, infer_error *err)
{
	pick_args a = { n, p->top_k, p->temperature, p->top_p, p->min_p, u };
	size_t tb = cs->tmp_bytes;

	CK(cub::DeviceRadixSort::SortPairsDescending(cs->tmp, tb, cs->keys_in, cs->keys_out,
						     cs->ids_in, cs->ids_out, n, 0, 32, s));
	// CUB's own launches inside the sort are not counted: how many it makes
	// is its business and would be a guess here.
	pick_kernel<<<1, SB, 0, s>>>(cs->keys_out, cs->ids_out, d_logits, cs->p, a, cs->d_out);
	g_cuda_launches++;
	CK_LAUNCH("pick_kernel");
	return 0;
}

extern "C" int infer_cuda_sample_enqueue(infer_cuda_sampler *cs, const float *d_logits,
					 int32_t n_vocab, const infer_sampler_params *p, double u,
					 const int32_t *pen_ids, int32_t n_pen, void *stream,
					 infer_error *err)
{
	cudaStream_t s = (cudaStream_t)stream;
	int rc;

	if (!cs || !d_logits || !p || n_vocab <= 0 || n_vocab > cs->n_vocab || n_pen < 0 ||
	    n_pen > n_vocab)
		return cu_err(err, INFER_E_ARG, "cuda sample: bad arguments (n_vocab %d of %d, %d penalised)",
			      n_vocab, cs ? cs->n_vocab : 0, n_pen);
	const bool pen = n_pen > 0 && p->repeat_penalty != 1.0f && p->repeat_penalty > 0.0f;

	// Greedy without a penalty compares the raw logits (-0.0 == +0.0 there
	// too), so the key copy is only made when a penalty or the sort needs it.
	if (pen || p->temperature > 0.0f) {
		prep_kernel<<<(unsigned)cdiv(n_vocab, 256), 256, 0, s>>>(d_logits, cs->keys_in,
									 cs->ids_in, n_vocab);
		g_cuda_launches++;
		CK_LAUNCH("prep_kernel");
	}
	if (pen) {
		CK(cudaMemcpyAsync(cs->pen, pen_ids, (size_t)n_pen * 4, cudaMemcpyHostToDevice, s));
		penalty_kernel<<<(unsigned)cdiv(n_pen, 256), 256, 0, s>>>(cs->keys_in, cs->pen, n_pen,
									  p->repeat_penalty);
		g_cuda_launches++;
		CK_LAUNCH("penalty_kernel");
	}
	if (p->temperature <= 0.0f) {
		greedy_kernel<<<GREEDY_BLOCKS, GREEDY_THREADS, 0, s>>>(pen ? cs->keys_in : d_logits, d_logits,
							   n_vocab, cs->part, cs->count, cs->d_out);
		g_cuda_launches++;
		CK_LAUNCH("greedy_kernel");
	} else if ((rc = launch_pick(cs, d_logits, n_vocab, p, u, s, err))) {
		return rc;
	}
	CK(cudaMemcpyAsync(cs->h_out, cs->d_out, sizeof(sample_pick), cudaMemcpyDeviceToHost, s));
	CK(cudaEventRecord(cs->done, s));
	return 0;
}

extern "C" const int32_t *infer_cuda_sample_id_device(const infer_cuda_sampler *cs)
{
	return &cs->d_out->id;
}

// Waits on the event, not the stream: what was enqueued after the pick
// (the backend's speculative next step) keeps running.
extern "C" int infer_cuda_sample_finish(infer_cuda_sampler *cs, int32_t *id, float *lp_raw,
					float *lp_final, infer_error *err)
{
	CK(cudaEventSynchronize(cs->done));
	*id = cs->h_out->id;
	if (lp_raw)
		*lp_raw = cs->h_out->lp_raw;
	if (lp_final)
		*lp_final = cs->h_out->lp_final;
	return 0;
}

extern "C" int infer_cuda_sample(infer_cuda_sampler *cs, const float *d_logits, int32_t n_vocab,
				 const infer_sampler_params *p, double u, const int32_t *pen_ids,
				 int32_t n_pen, void *stream, int32_t *id, float *lp_raw,
				 float *lp_final, infer_error *err)
{
	int rc = infer_cuda_sample_enqueue(cs, d_logits, n_vocab, p, u, pen_ids, n_pen, stream, err);

	return rc ? rc : infer_cuda_sample_finish(cs, id, lp_raw, lp_final, err);
}
