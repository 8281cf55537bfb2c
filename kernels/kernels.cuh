/* Internal interface between the .cu files of the CUDA backend (C++ linkage,
 * device pointers, one stream). The public door is infer_cuda.h. */
#ifndef INFER_KERNELS_CUH
#define INFER_KERNELS_CUH

#include <cuda_runtime.h>
#include <stdint.h>

#include "cuda_common.cuh"
#include "qformats.cuh"
#include "stamps.cuh"

/* Programmatic dependent launch (sm_90): the decode graph is a chain of
 * short, latency-bound kernels, so a kernel launched with
 * cudaLaunchAttributeProgrammaticStreamSerialization starts before its
 * predecessor ends: it lets its own successor launch, warms L2 with data no
 * kernel of the step writes (weights, earlier KV rows), and only then waits
 * for the predecessor's results. Everything that reads or writes this
 * step's activations stays after pdl_wait(). No-ops before sm_90. */
static __device__ __forceinline__ void pdl_launch_dependents(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
	asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
	stamp_begin();
}

static __device__ __forceinline__ void pdl_wait(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
	asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
	stamp_waited();
}

/* Block timestamps of a measurement build (stamps.cuh); no-ops otherwise. */
#ifdef INFER_STAMPS
void cuda_stamps_init(void);
void cuda_stamps_dump(void);
#else
static inline void cuda_stamps_init(void) {}
static inline void cuda_stamps_dump(void) {}
#endif

/* cp.async (sm_80+): 16 bytes global -> shared without passing through
 * registers (L2 only, .cg), so a block can have all of its weight bytes in
 * flight at once; the copies land after cp_async_wait<N>() (at most N
 * groups still pending) and a __syncthreads. */
static __device__ __forceinline__ void cp_async16(void *dst_shared, const void *src)
{
	const unsigned d = (unsigned)__cvta_generic_to_shared(dst_shared);
	asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(d), "l"(src) : "memory");
}

static __device__ __forceinline__ void cp_async_commit(void)
{
	asm volatile("cp.async.commit_group;" ::: "memory");
}

template <int N> static __device__ __forceinline__ void cp_async_wait(void)
{
	asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

/* v folded by op over a block of NT threads, the result in every thread:
 * each warp folds its lanes, then every thread folds the NT / 32 warp
 * results in warp order (sh: one T per warp). One __syncthreads: a caller
 * that writes sh again right after synchronizes first. */
template <int NT, typename T, typename Op>
static __device__ __forceinline__ T block_allreduce(T v, T *sh, Op op)
{
	for (int o = 16; o > 0; o >>= 1)
		v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
	if ((threadIdx.x & 31) == 0)
		sh[threadIdx.x >> 5] = v;
	__syncthreads();
	v = sh[0];
	for (int i = 1; i < NT / 32; i++)
		v = op(v, sh[i]);
	return v;
}

/* RMSNorm's scale 1 / sqrt(mean(x^2) + eps) from each thread's partial sum
 * of squares (double, as norm.cu) in a block of NT threads (red holds one
 * double per warp). */
template <int NT>
static __device__ __forceinline__ float block_rms_scale(double ss, int64_t K, float eps, double *red)
{
	ss = block_allreduce<NT>(ss, red, [](double a, double b) { return a + b; });
	return (float)(1.0 / sqrt(ss / (double)K + (double)eps));
}

/* device.cu: selects device 0 and uploads the format tables, once. */
int cuda_init(infer_error *err);
/* The device copies of the format tables (valid after cuda_init). */
const iq_tabs &cuda_tabs(void);
/* Block size / bytes per block of a type the decoders know; 0 when unknown. */
int cuda_type_block(uint32_t type, int *bs, int *ts);
/* Human name of a type id for messages ("q4_K"). */
const char *cuda_type_name(uint32_t type);

/* dequant.cu: n elements (a multiple of the block size) of `type` at src
 * (device) -> dst (device), as float32 or as float16 (for cuBLAS). */
int cuda_dequant_f32(uint32_t type, const void *src, float *dst, int64_t n, cudaStream_t s,
		     infer_error *err);
int cuda_dequant_f16(uint32_t type, const void *src, __half *dst, int64_t n, cudaStream_t s,
		     infer_error *err);
int cuda_f32_to_f16(const float *src, __half *dst, int64_t n, cudaStream_t s, infer_error *err);

/* matvec.cu: y[n*M + m] (+)= dot(deq(row m of w), x[n*K ..]) for N <= MV_MAX_COLS
 * columns, dequantizing inside the kernel. accumulate != 0 adds to y
 * (residual folded into the epilogue). */
#define MV_MAX_COLS 8
int cuda_matvec(uint32_t type, const void *w, int64_t K, int64_t M, const float *x, int64_t N,
		float *y, int accumulate, const float *bias, cudaStream_t s, infer_error *err);

/* The one-token form with fusions (decode): y[m] (+)= dot(row m, x') (+ bias[m])
 * where x' = nw ? rms_norm(x) * nw : x; with w2 (same type and shape) the
 * output is silu(W x')[m] * (W2 x')[m] (w2 only together with nw). */
int cuda_matvec1(uint32_t type, const void *w, const void *w2, int64_t K, int64_t M,
		 const float *x, const float *nw, float eps, const float *bias, float *y,
		 int accumulate, cudaStream_t s, infer_error *err);

/* q, k, v of the decode step in one launch when their types differ: rows
 * y[0..M0) from w[0], then M1 rows from w[1], M2 from w[2], all of the
 * normalized x; types q5_0 / q8_0 / q4_K / q6_K only (INFER_E_UNSUPPORTED
 * otherwise: the caller launches them one by one). */
int cuda_matvec1_qkv(const uint32_t type[3], const void *const w[3], const int64_t M[3], int64_t K,
		     const float *x, const float *nw, float eps, const float *const bias[3],
		     float *y, cudaStream_t s, infer_error *err);

/* gemm.cu: the same product for any N through cuBLAS: float32 weights with
 * SGEMM (no TF32), f16/bf16 in place, every other type dequantized to f16
 * into `scratch` (M*K halves, caller-owned; NULL: allocated here), F32
 * accumulation. x is converted to the weight's 16-bit type in `xscratch`
 * (GEMM_X_TERMS*N*K halves; NULL: allocated here): for F16/BF16 weights as
 * a sum of 2/3 16-bit terms, so those products are F32-accurate. */
#define GEMM_X_TERMS 3
int cuda_gemm(uint32_t type, const void *w, int64_t K, int64_t M, const float *x, int64_t N,
	      float *y, int accumulate, void *scratch, void *xscratch, cudaStream_t s,
	      infer_error *err);

/* norm.cu, rope.cu, softmax.cu, swiglu.cu, attention.cu: device versions of
 * the backend.h ops, same argument meaning, device pointers. */
int cuda_rms_norm_mul(const float *x, const float *w, float *y, int64_t n, int64_t rows,
		      float eps, cudaStream_t s, infer_error *err);
int cuda_rope(float *x, const int32_t *pos, int64_t head_dim, int64_t n_heads, int64_t n_tokens,
	      int64_t n_rot, float freq_base, int neox, cudaStream_t s, infer_error *err);
int cuda_softmax(const float *x, float *y, int64_t n, int64_t rows, float scale,
		 const int32_t *query_pos, cudaStream_t s, infer_error *err);
int cuda_swiglu(const float *gate, const float *up, float *y, int64_t n, cudaStream_t s,
		infer_error *err);
/* k/v rows of token j start at k + j*kv_stride (floats): the KV cache keeps
 * one row of n_head_kv*head_dim per position. */
int cuda_attention(const float *q, const float *k, const float *v, float *out,
		   int64_t head_dim, int64_t n_head, int64_t n_head_kv, int64_t n_tokens,
		   int64_t n_kv, int64_t first_query_pos, float scale, cudaStream_t s,
		   infer_error *err);
/* Attention over the KV cache; the first query position is read from the
 * device (dpos[0]) so a captured graph replays at any position. */
int cuda_attention_cache(const float *q, const float *kc, const float *vc, float *out,
			 int64_t head_dim, int64_t n_head, int64_t n_head_kv, int64_t n_tokens,
			 const int32_t *dpos, float scale, cudaStream_t s, infer_error *err);
/* The fast form: head_dim 64 or 128 (others go to cuda_attention_cache),
 * keys split over nsplit blocks per query; part holds
 * n_tokens*n_head*nsplit*(head_dim+2) floats when nsplit > 1. counters:
 * NULL (a second kernel merges the splits) or n_tokens*n_head zeroed
 * unsigned ints (the last split block of each query merges; they are left
 * zeroed again). */
int cuda_attention_split(const float *q, const float *kc, const float *vc, float *out,
			 float *part, int64_t head_dim, int64_t n_head, int64_t n_head_kv,
			 int64_t n_tokens, int nsplit, const int32_t *dpos, float scale,
			 unsigned *counters, cudaStream_t s, infer_error *err);
/* RoPE on q and k of n tokens plus the k/v store into the cache at dpos[t].
 * inv_freq[i] = base^(-2i/n_rot) (device, n_rot/2 doubles), computed on the
 * host with the CPU reference's formula so the angles are the same bits. */
int cuda_rope_store(float *q, float *k, const float *v, float *kc, float *vc, const int32_t *dpos,
		    int64_t head_dim, int64_t n_head, int64_t n_head_kv, int64_t n_tokens,
		    int64_t n_rot, const double *inv_freq, int neox, cudaStream_t s, infer_error *err);
/* The decode step's attention (one token, head_dim 64 or 128): RoPE of q
 * and of the new key, the KV store at dpos[0] and split-key attention over
 * the cache in one launch (programmatic dependent launch). qkv: the token's
 * unrotated q | k | v; part / counters as for cuda_attention_split.
 * INFER_E_UNSUPPORTED for other head sizes (the caller takes
 * cuda_rope_store + cuda_attention_split). */
int cuda_attention_decode(const float *qkv, float *kc, float *vc, float *out, float *part,
			  unsigned *counters, const int32_t *dpos, const double *inv_freq,
			  int64_t head_dim, int64_t n_head, int64_t n_head_kv, int64_t n_rot, int neox,
			  int nsplit, float scale, cudaStream_t s, infer_error *err);
/* The most splits cuda_attention_decode merges as one cluster (8 or 16);
 * asks the device once (call it outside a stream capture). */
int cuda_attention_cluster_max(int64_t head_dim);
/* Embedding rows: out[t] = deq(row tokens[t] of table), K elements each. */
int cuda_get_rows(uint32_t type, const void *table, int64_t K, const int32_t *tokens, int64_t n,
		  float *out, cudaStream_t s, infer_error *err);

/* decode_fused.cu: the whole one-token forward pass (no taps) in one
 * persistent kernel with grid-wide barriers between the stages. */
struct fd_mat {
	const void *w;
	uint32_t type;
	int64_t K, M, rb; /* rb: bytes per row */
	int vb, vt;       /* elements / bytes of a "virtual block": the format's
			     block, or 8 elements of f32 / f16 / bf16 */
};
struct fd_layer {
	fd_mat q, k, v, o, gate, up, down;
	const float *attn_norm, *ffn_norm, *bq, *bk, *bv; /* biases may be NULL */
	float *kc, *vc; /* this layer's KV cache, [n_ctx][n_head_kv * head_dim] */
};
struct fd_params {
	const fd_layer *layers; /* device array of n_layer */
	int n_layer, n_embd, n_ff, head_dim, n_head, n_head_kv, n_rot, neox;
	float eps, scale;
	fd_mat embd, out;
	const float *out_norm;
	const int32_t *tok, *pos; /* device: the token id and its position */
	const double *inv_freq;   /* RoPE table as for cuda_rope_store */
	float2 *rope_cs;          /* n_rot / 2: this token's cos / sin */
	float *x, *qkv, *att, *ffn, *logits; /* E, q|k|v, q_dim, n_ff, n_vocab */
	float *part;              /* n_head * nsplit * (head_dim + 2) */
	unsigned *att_count;      /* n_head zeroed counters (left zeroed) */
	unsigned *bar;            /* the grid barrier's counter */
	int grid, nsplit, smem;   /* set by cuda_fused_plan: launch geometry, */
	int xs_bytes, wb;         /* activation and per-warp weight buffers */
	uint64_t *stamps;         /* NULL, or FD_STAMPS(n_layer) timer stamps */
};
/* Barriers: 1 + 5 per layer; two stamps each, the end, the start. */
#define FD_BARRIERS(nl) (1 + 5 * (nl))
#define FD_START_STAMP(nl) (2 * FD_BARRIERS(nl) + 1)
#define FD_STAMPS(nl) (2 * FD_BARRIERS(nl) + 2)
/* then FD_MARKS checkpoints of block 0 per layer */
#define FD_MARKS 32
#define FD_STAMPS_ALL(nl) (FD_STAMPS(nl) + FD_MARKS * (nl))
/* Whether the model fits the kernel (types, shapes, residency): 0 and the
 * launch geometry in p, else 1 and the reason in why. host_layers: the same
 * table as p->layers, on the host. */
int cuda_fused_plan(const fd_layer *host_layers, fd_params *p, char *why, size_t why_n);
/* Zeroes the barrier and launches the kernel on s (graph-capturable). */
int cuda_fused_decode(const fd_params *p, cudaStream_t s, infer_error *err);

#endif
