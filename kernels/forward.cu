// The CUDA forward pass behind a session (runtime/src/forward.h): weights
// uploaded once at init, a float32 KV cache of n_ctx positions per layer,
// prefill through cuBLAS (n > MV_MAX_COLS tokens) or the fused mat-vec
// kernels, and the one-token decode step captured once in a CUDA graph and
// replayed (token id and position are read from device memory, so the same
// graph serves every position). Taps are copied back only when a tap
// callback is set; then the step runs eagerly, stage by stage.
#include <stdlib.h>
#include <string.h>

#include "infer_cuda.h"
#include "kernels.cuh"

extern "C" {
#include "forward.h"
#include "model_internal.h"
}

struct dmat {
	const char *name;
	uint32_t type;
	int64_t K, M;
	void *d;
};

struct dlayer {
	float *attn_norm, *ffn_norm, *bq, *bk, *bv;
	dmat wq, wk, wv, wo, gate, up, down;
	dmat wqkv;   // q, k, v rows in one matrix when they share a type (decode)
	float *bqkv; // their biases, concatenated
};

struct cuda_state {
	const infer_model *m;
	const infer_hparams *hp;
	cudaStream_t s;
	int32_t n_ctx;
	int64_t q_dim, kv_dim;
	dlayer *L;
	dmat tok_embd, output;
	float *output_norm;
	float *kc, *vc;        // [n_layer][n_ctx][kv_dim]
	int32_t cap;           // tokens the activation buffers hold
	int32_t logit_rows;    // rows of n_vocab the logits buffer holds
	float *x, *h, *q, *k, *v, *a, *o, *g, *u, *sw, *logits;
	int32_t *d_tok, *d_pos;
	float *attn_part;      // split-key attention partials (n <= 16 tokens)
	unsigned *attn_count;  // per (token, head) split counters, kept zeroed
	double *inv_freq;      // RoPE: base^(-2i/n_rot), computed on the host
	float *qkv1;           // decode: q | k | v of the one token
	int32_t *pin_tp;       // pinned: token id and position of a decode step
	float *pin_logits;     // pinned: one row of logits
	const float *last_logits; // device: the last token's row of the last eval
	infer_cuda_sampler *sampler; // device sampling (created on first use)
	void *wscratch, *xscratch; // cuBLAS path: f16 weights and activations
	size_t wscratch_n, xscratch_n;
	float *host;           // tap staging buffer
	size_t host_n;
	// The persistent decode kernel (decode_fused.cu) when the model fits it;
	// else the per-op graph below, with the reason kept for the timing line.
	int fused;
	int qkv3_off;          // INFER_CUDA_QKV3=0: q, k, v of mixed types in three launches (A/B)
	char fused_why[200];
	fd_params fd;
	fd_layer *fd_layers;   // device copy of the table in fd
	uint64_t *stamps_h;    // INFER_CUDA_TIMING=2: per-stage stamps of the last run
	double stage_us[7][2]; // work / barrier wait per stage kind, summed over runs
	double mark_us[FD_MARKS]; // block 0's checkpoint deltas, summed over layers and runs
	cudaGraphExec_t graph; // decode step
	uint64_t graph_kernels;
	uint64_t launches;
	uint64_t device_bytes;
	// INFER_CUDA_TIMING=1: GPU time of each decode-graph replay, by events
	// (printed to stderr when the session ends), to separate device time
	// from host overhead in benchmarks.
	int timing;
	cudaEvent_t ev0, ev1;
	double graph_ms;
	uint64_t graph_runs;
	// The speculative next decode step (see "speculative next step" below).
	int speculate;         // INFER_CUDA_SPECULATE=0: off (A/B); read with the sampler
	int32_t last_pos;      // position of the last eval's kept logits; -1: none to speculate on
	int spec_valid;        // the step (spec_token, spec_pos) is queued on the stream
	int32_t spec_pos, spec_token;
};

/* ---- glue kernels -------------------------------------------------------- */

static __global__ void add_kernel(float *__restrict__ x, const float *__restrict__ y, int64_t n)
{
	int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n)
		x[i] = x[i] + y[i];
}

static __global__ void bias_kernel(float *__restrict__ x, const float *__restrict__ b, int64_t dim,
				   int64_t n)
{
	int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n)
		x[i] = x[i] + b[i % dim];
}

// Splits of the keys per query: enough blocks to fill the GPU when few
// tokens are evaluated (decode), one split for batches.
#define ATT_MAX_SPLIT 16
static int attn_splits(const cuda_state *st, int32_t n)
{
	int64_t blocks = (int64_t)st->hp->n_head * n, sp = cdiv(264, blocks);

	if (n > 16 || sp < 1)
		return 1;
	return sp > ATT_MAX_SPLIT ? ATT_MAX_SPLIT : (int)sp;
}

static int attend(cuda_state *st, const float *kc, const float *vc, int32_t n, infer_error *err)
{
	const infer_hparams *hp = st->hp;

	return cuda_attention_split(st->q, kc, vc, st->a, st->attn_part, hp->head_dim, hp->n_head,
				    hp->n_head_kv, n, attn_splits(st, n), st->d_pos,
				    1.0f / sqrtf((float)hp->head_dim), st->attn_count, st->s, err);
}

static int launch_add(cuda_state *st, float *x, const float *y, int64_t n, infer_error *err)
{
	add_kernel<<<(unsigned)cdiv(n, 256), 256, 0, st->s>>>(x, y, n);
	g_cuda_launches++;
	CK_LAUNCH("add_kernel");
	return 0;
}

/* ---- helpers ------------------------------------------------------------- */

static int upload_matrix(cuda_state *st, const infer_matrix *m, dmat *d, infer_error *err)
{
	d->name = m->name;
	d->type = m->type;
	d->K = m->ne0;
	d->M = m->ne1;
	int bs, ts;
	if (!cuda_type_block(m->type, &bs, &ts))
		return cu_err(err, INFER_E_UNSUPPORTED, "cuda: tensor %s has unsupported type id %u",
			      m->name, m->type);
	// 64 bytes of slack: the persistent decode kernel copies rows in 16-byte
	// pieces and may read up to 15 bytes past the last row.
	CK(cudaMalloc(&d->d, m->nbytes + 64));
	CK(cudaMemcpy(d->d, m->data, m->nbytes, cudaMemcpyHostToDevice));
	st->device_bytes += m->nbytes;
	return 0;
}

static int upload_vector(cuda_state *st, const infer_vector *v, float **d, infer_error *err)
{
	*d = NULL;
	if (!v->data)
		return 0;
	CK(cudaMalloc((void **)d, (size_t)v->n * 4));
	CK(cudaMemcpy(*d, v->data, (size_t)v->n * 4, cudaMemcpyHostToDevice));
	st->device_bytes += (uint64_t)v->n * 4;
	return 0;
}

static void free_activations(cuda_state *st)
{
	float **bufs[] = { &st->x, &st->h, &st->q, &st->k, &st->v, &st->a,
			   &st->o, &st->g, &st->u, &st->sw, &st->logits };

	st->logit_rows = 0;
	for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) {
		cudaFree(*bufs[i]);
		*bufs[i] = NULL;
	}
	cudaFree(st->d_tok);
	cudaFree(st->d_pos);
	st->d_tok = st->d_pos = NULL;
	st->cap = 0;
}

static void drop_graph(cuda_state *st)
{
	if (st->graph)
		cudaGraphExecDestroy(st->graph);
	st->graph = NULL;
}

// Activation buffers for n tokens; growing them invalidates the decode graph
// (it holds their addresses).
static int ensure_capacity(cuda_state *st, int32_t n, infer_error *err)
{
	const infer_hparams *hp = st->hp;
	int64_t E = hp->n_embd, F = hp->n_ff;

	if (n <= st->cap)
		return 0;
	drop_graph(st);
	free_activations(st);
	struct { float **p; int64_t dim; } b[] = {
		{ &st->x, E }, { &st->h, E }, { &st->q, st->q_dim }, { &st->k, st->kv_dim },
		{ &st->v, st->kv_dim }, { &st->a, st->q_dim }, { &st->o, E }, { &st->g, F },
		{ &st->u, F }, { &st->sw, F },
	};
	for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++)
		CK(cudaMalloc((void **)b[i].p, (size_t)(b[i].dim * n) * 4));
	CK(cudaMalloc((void **)&st->d_tok, (size_t)n * 4));
	CK(cudaMalloc((void **)&st->d_pos, (size_t)n * 4));
	st->cap = n;
	return 0;
}

// Logits for `rows` tokens (1 unless all logits or a tap want every row):
// a 512-token prompt's full logits are 311 MB, so they are only allocated
// when asked for. Growing invalidates the decode graph.
static int ensure_logits(cuda_state *st, int32_t rows, infer_error *err)
{
	if (rows <= st->logit_rows)
		return 0;
	drop_graph(st);
	CK(cudaStreamSynchronize(st->s));
	cudaFree(st->logits);
	st->logits = NULL;
	CK(cudaMalloc((void **)&st->logits, (size_t)rows * st->hp->n_vocab * 4));
	st->logit_rows = rows;
	return 0;
}

static int ensure_scratch(cuda_state *st, const dmat *w, int64_t n, infer_error *err)
{
	size_t wn = (size_t)(w->M * w->K) * 2, xn = (size_t)(n * w->K) * 2 * GEMM_X_TERMS;

	if (w->type != 0 && w->type != 1 && w->type != 30 && wn > st->wscratch_n) {
		CK(cudaStreamSynchronize(st->s));
		cudaFree(st->wscratch);
		st->wscratch = NULL;
		CK(cudaMalloc(&st->wscratch, wn));
		st->wscratch_n = wn;
	}
	if (xn > st->xscratch_n) {
		CK(cudaStreamSynchronize(st->s));
		cudaFree(st->xscratch);
		st->xscratch = NULL;
		CK(cudaMalloc(&st->xscratch, xn));
		st->xscratch_n = xn;
	}
	return 0;
}

// y = W x (+ bias) for n tokens: fused mat-vec for small n, cuBLAS beyond.
static int matmul(cuda_state *st, const dmat *w, const float *x, int32_t n, float *y,
		  const float *bias, infer_error *err)
{
	int rc;

	if (n <= MV_MAX_COLS)
		return cuda_matvec(w->type, w->d, w->K, w->M, x, n, y, 0, bias, st->s, err);
	if ((rc = ensure_scratch(st, w, n, err)) ||
	    (rc = cuda_gemm(w->type, w->d, w->K, w->M, x, n, y, 0, st->wscratch, st->xscratch,
			    st->s, err)))
		return rc;
	if (bias) {
		int64_t total = (int64_t)n * w->M;
		bias_kernel<<<(unsigned)cdiv(total, 256), 256, 0, st->s>>>(y, bias, w->M, total);
		g_cuda_launches++;
		CK_LAUNCH("bias_kernel");
	}
	return 0;
}

struct tapper {
	cuda_state *st;
	infer_tap_fn fn;
	void *user;
	int32_t n;
};

// Copies a device intermediate back and hands it to the tap callback.
static int tap(const tapper *tp, const char *name, int il, const float *d, int64_t dim,
	       infer_error *err)
{
	cuda_state *st = tp->st;
	size_t bytes = (size_t)(dim * tp->n) * 4;
	char full[64];

	if (!tp->fn)
		return 0;
	if (bytes > st->host_n) {
		float *p = (float *)realloc(st->host, bytes);
		if (!p)
			return cu_err(err, INFER_E_NOMEM, "cuda tap: out of memory");
		st->host = p;
		st->host_n = bytes;
	}
	CK(cudaMemcpyAsync(st->host, d, bytes, cudaMemcpyDeviceToHost, st->s));
	CK(cudaStreamSynchronize(st->s));
	if (il >= 0) {
		snprintf(full, sizeof(full), "%s-%d", name, il);
		name = full;
	}
	tp->fn(tp->user, name, st->host, tp->n, dim);
	return 0;
}

/* ---- one decoder layer ---------------------------------------------------- */

static int layer(cuda_state *st, int il, int32_t n, const tapper *tp, infer_error *err)
{
	const infer_hparams *hp = st->hp;
	const dlayer *L = &st->L[il];
	int64_t E = hp->n_embd, F = hp->n_ff;
	float *kc = st->kc + (int64_t)il * st->n_ctx * st->kv_dim;
	float *vc = st->vc + (int64_t)il * st->n_ctx * st->kv_dim;
	int rc;

	if ((rc = cuda_rms_norm_mul(st->x, L->attn_norm, st->h, E, n, hp->norm_eps, st->s, err)) ||
	    (rc = tap(tp, "attn_norm", il, st->h, E, err)) ||
	    (rc = matmul(st, &L->wq, st->h, n, st->q, L->bq, err)) ||
	    (rc = matmul(st, &L->wk, st->h, n, st->k, L->bk, err)) ||
	    (rc = matmul(st, &L->wv, st->h, n, st->v, L->bv, err)) ||
	    (rc = cuda_rope_store(st->q, st->k, st->v, kc, vc, st->d_pos, hp->head_dim, hp->n_head,
				  hp->n_head_kv, n, hp->n_rot, st->inv_freq, hp->rope_neox,
				  st->s, err)) ||
	    (rc = tap(tp, "Qcur", il, st->q, st->q_dim, err)) ||
	    (rc = tap(tp, "Kcur", il, st->k, st->kv_dim, err)) ||
	    (rc = tap(tp, "Vcur", il, st->v, st->kv_dim, err)))
		return rc;
	if ((rc = attend(st, kc, vc, n, err)) ||
	    (rc = tap(tp, "kqv_out", il, st->a, st->q_dim, err)) ||
	    (rc = matmul(st, &L->wo, st->a, n, st->o, NULL, err)) ||
	    (rc = launch_add(st, st->x, st->o, (int64_t)n * E, err)) ||
	    (rc = tap(tp, "ffn_inp", il, st->x, E, err)))
		return rc;
	if ((rc = cuda_rms_norm_mul(st->x, L->ffn_norm, st->h, E, n, hp->norm_eps, st->s, err)) ||
	    (rc = tap(tp, "ffn_norm", il, st->h, E, err)) ||
	    (rc = matmul(st, &L->gate, st->h, n, st->g, NULL, err)) ||
	    (rc = matmul(st, &L->up, st->h, n, st->u, NULL, err)) ||
	    (rc = tap(tp, "ffn_gate", il, st->g, F, err)) ||
	    (rc = tap(tp, "ffn_up", il, st->u, F, err)) ||
	    (rc = cuda_swiglu(st->g, st->u, st->sw, (int64_t)n * F, st->s, err)) ||
	    (rc = tap(tp, "ffn_swiglu", il, st->sw, F, err)) ||
	    (rc = matmul(st, &L->down, st->sw, n, st->o, NULL, err)) ||
	    (rc = tap(tp, "ffn_out", il, st->o, E, err)) ||
	    (rc = launch_add(st, st->x, st->o, (int64_t)n * E, err)) ||
	    (rc = tap(tp, "l_out", il, st->x, E, err)))
		return rc;
	return 0;
}

// q | k | v of the normalized x for the decode step: one launch when the
// three share a type (wqkv) or when the mixed-type launch takes their types,
// else three.
static int qkv_decode(cuda_state *st, const dlayer *L, float *q1, infer_error *err)
{
	float *k1 = q1 + st->q_dim, *v1 = k1 + st->kv_dim;
	float eps = st->hp->norm_eps;
	int rc;

	if (L->wqkv.d)
		return cuda_matvec1(L->wqkv.type, L->wqkv.d, NULL, L->wqkv.K, L->wqkv.M, st->x,
				    L->attn_norm, eps, L->bqkv, q1, 0, st->s, err);
	if (!st->qkv3_off && L->wk.K == L->wq.K && L->wv.K == L->wq.K) {
		const uint32_t ty[3] = { L->wq.type, L->wk.type, L->wv.type };
		const void *const w[3] = { L->wq.d, L->wk.d, L->wv.d };
		const int64_t M[3] = { L->wq.M, L->wk.M, L->wv.M };
		const float *const b[3] = { L->bq, L->bk, L->bv };
		rc = cuda_matvec1_qkv(ty, w, M, L->wq.K, st->x, L->attn_norm, eps, b, q1, st->s, err);
		if (rc != INFER_E_UNSUPPORTED)
			return rc;
	}
	if ((rc = cuda_matvec1(L->wq.type, L->wq.d, NULL, L->wq.K, L->wq.M, st->x, L->attn_norm, eps,
			       L->bq, q1, 0, st->s, err)) ||
	    (rc = cuda_matvec1(L->wk.type, L->wk.d, NULL, L->wk.K, L->wk.M, st->x, L->attn_norm, eps,
			       L->bk, k1, 0, st->s, err)))
		return rc;
	return cuda_matvec1(L->wv.type, L->wv.d, NULL, L->wv.K, L->wv.M, st->x, L->attn_norm, eps,
			    L->bv, v1, 0, st->s, err);
}

// The decode step of one layer (one token, no taps), 6 launches: RMSNorm is
// folded into the Q/K/V and gate/up mat-vecs, the bias into their epilogue,
// gate*up*silu into one kernel, and both residual adds into the epilogues of
// the output projections. Same arithmetic as layer().
static int layer_decode(cuda_state *st, int il, infer_error *err)
{
	const infer_hparams *hp = st->hp;
	const dlayer *L = &st->L[il];
	float *kc = st->kc + (int64_t)il * st->n_ctx * st->kv_dim;
	float *vc = st->vc + (int64_t)il * st->n_ctx * st->kv_dim;
	float eps = hp->norm_eps;
	int rc;

	float *q1 = st->qkv1, *k1 = q1 + st->q_dim, *v1 = k1 + st->kv_dim;

	if ((rc = qkv_decode(st, L, q1, err)))
		return rc;
	// RoPE, KV store and attention in one launch; other head sizes take
	// the two-kernel form.
	if (hp->head_dim == 64 || hp->head_dim == 128)
		rc = cuda_attention_decode(q1, kc, vc, st->a, st->attn_part, st->attn_count, st->d_pos,
					   st->inv_freq, hp->head_dim, hp->n_head, hp->n_head_kv,
					   hp->n_rot, hp->rope_neox, attn_splits(st, 1),
					   1.0f / sqrtf((float)hp->head_dim), st->s, err);
	else if (!(rc = cuda_rope_store(q1, k1, v1, kc, vc, st->d_pos, hp->head_dim, hp->n_head,
					hp->n_head_kv, 1, hp->n_rot, st->inv_freq, hp->rope_neox,
					st->s, err)))
		rc = cuda_attention_split(q1, kc, vc, st->a, st->attn_part, hp->head_dim, hp->n_head,
					  hp->n_head_kv, 1, attn_splits(st, 1), st->d_pos,
					  1.0f / sqrtf((float)hp->head_dim), st->attn_count, st->s, err);
	if (rc ||
	    (rc = cuda_matvec1(L->wo.type, L->wo.d, NULL, L->wo.K, L->wo.M, st->a, NULL, 0, NULL,
			       st->x, 1, st->s, err)) ||
	    (rc = cuda_matvec1(L->gate.type, L->gate.d, L->up.d, L->gate.K, L->gate.M, st->x,
			       L->ffn_norm, eps, NULL, st->sw, 0, st->s, err)) ||
	    (rc = cuda_matvec1(L->down.type, L->down.d, NULL, L->down.K, L->down.M, st->sw, NULL, 0,
			       NULL, st->x, 1, st->s, err)))
		return rc;
	return 0;
}

// Whether the fused decode kernels apply: gate and up of one type (they are
// read by one kernel) and weights of types the decode mat-vec takes (integer
// and f64 tensors are not weights; such a file runs unfused).
static int can_fuse(const cuda_state *st)
{
	for (int il = 0; il < st->hp->n_layer; il++) {
		const dlayer *L = &st->L[il];
		const dmat *m[] = { &L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down };
		if (L->gate.type != L->up.type)
			return 0;
		for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
			if (m[i]->type >= 24 && m[i]->type <= 28)
				return 0;
	}
	return !(st->output.type >= 24 && st->output.type <= 28);
}

// Everything from the embedding to the logits, on the stream, for n tokens
// whose ids and positions are already in d_tok / d_pos. `want_all`: logits
// of every token, else of the last one (at st->logits).
static int forward_body(cuda_state *st, int32_t n, int want_all, int want_logits,
			const tapper *tp, infer_error *err)
{
	const infer_hparams *hp = st->hp;
	int64_t E = hp->n_embd;
	int rc;

	if (n == 1 && !tp->fn && want_logits && st->fused) {
		if ((rc = ensure_logits(st, 1, err)))
			return rc;
		st->fd.x = st->x;
		st->fd.qkv = st->qkv1;
		st->fd.att = st->a;
		st->fd.ffn = st->sw;
		st->fd.logits = st->logits;
		st->fd.tok = st->d_tok;
		st->fd.pos = st->d_pos;
		return cuda_fused_decode(&st->fd, st->s, err);
	}
	if ((rc = cuda_get_rows(st->tok_embd.type, st->tok_embd.d, E, st->d_tok, n, st->x, st->s,
				err)) ||
	    (rc = tap(tp, "embd", -1, st->x, E, err)))
		return rc;
	if (n == 1 && !tp->fn && want_logits && can_fuse(st)) {
		if ((rc = ensure_logits(st, 1, err)))
			return rc;
		for (int il = 0; il < hp->n_layer; il++)
			if ((rc = layer_decode(st, il, err)))
				return rc;
		return cuda_matvec1(st->output.type, st->output.d, NULL, E, st->output.M, st->x,
				    st->output_norm, hp->norm_eps, NULL, st->logits, 0, st->s, err);
	}
	for (int il = 0; il < hp->n_layer; il++)
		if ((rc = layer(st, il, n, tp, err)))
			return rc;
	if ((rc = cuda_rms_norm_mul(st->x, st->output_norm, st->h, E, n, hp->norm_eps, st->s, err)) ||
	    (rc = tap(tp, "result_norm", -1, st->h, E, err)))
		return rc;
	if (!want_logits)
		return 0;
	if ((rc = ensure_logits(st, want_all || tp->fn ? n : 1, err)))
		return rc;
	if (want_all || tp->fn) {
		if ((rc = matmul(st, &st->output, st->h, n, st->logits, NULL, err)))
			return rc;
		return tap(tp, "result_output", -1, st->logits, hp->n_vocab, err);
	}
	return matmul(st, &st->output, st->h + (int64_t)(n - 1) * E, 1, st->logits, NULL, err);
}

static int capture_decode(cuda_state *st, infer_error *err)
{
	tapper none = { st, NULL, NULL, 1 };
	cudaGraph_t g = NULL;
	uint64_t before = g_cuda_launches;
	int rc;

	CK(cudaStreamBeginCapture(st->s, cudaStreamCaptureModeThreadLocal));
	rc = forward_body(st, 1, 0, 1, &none, err);
	cudaError_t e = cudaStreamEndCapture(st->s, &g);
	if (rc) {
		if (g)
			cudaGraphDestroy(g);
		return rc;
	}
	if (e != cudaSuccess)
		return cu_err(err, INFER_E_DEVICE, "cudaStreamEndCapture failed: %s (%s:%d)",
			      cudaGetErrorString(e), __FILE__, __LINE__);
	e = cudaGraphInstantiate(&st->graph, g, 0);
	cudaGraphDestroy(g);
	if (e != cudaSuccess) {
		st->graph = NULL;
		return cu_err(err, INFER_E_DEVICE, "cudaGraphInstantiate failed: %s (%s:%d)",
			      cudaGetErrorString(e), __FILE__, __LINE__);
	}
	// Launches recorded during capture run on every replay.
	st->graph_kernels = g_cuda_launches - before;
	g_cuda_launches = before;
	return 0;
}

// INFER_CUDA_TIMING=2 with the persistent kernel: work and barrier wait of
// each stage kind (embed, q|k|v, attention, output, gate/up, down, LM head),
// from the kernel's globaltimer stamps.
static const char *const stage_names[7] = { "embed", "qkv", "attention", "attn_output",
					    "gate_up", "down", "lm_head" };

static int add_stamps(cuda_state *st, infer_error *err)
{
	const int nl = st->hp->n_layer, nb = FD_BARRIERS(nl);
	uint64_t *t = st->stamps_h, prev;

	CK(cudaMemcpy(t, st->fd.stamps, FD_STAMPS_ALL(nl) * sizeof(uint64_t), cudaMemcpyDeviceToHost));
	for (int il = 1; il < nl; il++) {
		const uint64_t *mk = t + FD_STAMPS(nl) + il * FD_MARKS;
		for (int i = 1; i < FD_MARKS && mk[i]; i++)
			st->mark_us[i] += (double)(mk[i] - mk[i - 1]) / 1e3;
	}
	prev = t[FD_START_STAMP(nl)];
	for (int b = 0; b < nb; b++) {
		int kind = b == 0 ? 0 : 1 + (b - 1) % 5;
		st->stage_us[kind][0] += (double)(t[2 * b] - prev) / 1e3;
		st->stage_us[kind][1] += (double)(t[2 * b + 1] - t[2 * b]) / 1e3;
		prev = t[2 * b + 1];
	}
	st->stage_us[6][0] += (double)(t[2 * nb] - prev) / 1e3;
	return 0;
}

static void print_stamps(const cuda_state *st)
{
	fprintf(stderr, "cuda timing: persistent kernel stages, us per token (work + barrier wait):");
	for (int k = 0; k < 7; k++)
		fprintf(stderr, " %s %.1f+%.1f", stage_names[k], st->stage_us[k][0] / st->graph_runs,
			st->stage_us[k][1] / st->graph_runs);
	fprintf(stderr, "\ncuda timing: block 0 checkpoint deltas, us per layer:");
	for (int i = 1; i < FD_MARKS && st->mark_us[i] > 0; i++)
		fprintf(stderr, " %d:%.2f", i, st->mark_us[i] / st->graph_runs / (st->hp->n_layer - 1));
	fprintf(stderr, "\n");
}

/* ---- speculative next step ---------------------------------------------
 * Between two decode steps the GPU waited for the host: the pick's copy came
 * back, sample returned, eval copied token and position and launched the
 * graph (~30 us of a ~0.6 ms step). Instead cuda_sample queues the next step
 * itself, right behind the pick on the same stream: feed_kernel copies the
 * picked id (device memory, sample.cu) into d_tok and the position into
 * d_pos, then the decode graph runs. The host waits on the pick's event
 * only. When the caller then evals that token at that position (generation
 * always does), the step is already running and eval takes it.
 *
 * Why the results are those of the plain path:
 * - stream order: the graph runs after the pick wrote the id, and whatever
 *   the caller does next runs after the graph. Any other eval (another
 *   token or position, n > 1, a tap) drops the speculation and runs its own
 *   step, which rewrites what the speculative one wrote: the KV row at
 *   spec_pos and the logits (its scratch is rewritten by every step, its
 *   counters are left zeroed);
 * - the KV row it writes, spec_pos = last_pos + 1, lies at or past the
 *   session's position: by forward.h's contract it holds nothing yet, and
 *   every eval writes its rows before reading them. After a session reset
 *   the next eval is at position 0 < spec_pos, so it drops the speculation;
 * - the graph is the one eval_decode launches for that step (token and
 *   position are read from d_tok / d_pos); it exists only while the buffers
 *   it was captured with do. A drop waits for the stream before anything is
 *   freed or regrown, and so does cuda_free_state;
 * - its logits overwrite the ones just sampled: a sample uses the kept
 *   logits up (a second sample of them is an error, not a stale pick).
 * Not speculated: INFER_CUDA_TIMING (exact per-step times), no graph yet, a
 * last eval with a tap, or last_pos + 1 == n_ctx.
 * Cost: one wasted step after the last token of a generation and at every
 * chain break. A step's kernels (the graph's and feed_kernel) are counted
 * when it is taken, so wasted ones are not. */

static __global__ void feed_kernel(const int32_t *__restrict__ id, int32_t *tok, int32_t *pos,
				   int32_t p)
{
	*tok = *id;
	*pos = p;
}

static int spec_ok(const cuda_state *st)
{
	return st->speculate && st->graph && !st->timing && st->last_pos >= 0 &&
	       st->last_pos + 1 < st->n_ctx;
}

// Queues the step at last_pos + 1 on the id the sampler just picked. No
// pinned staging: an earlier step's copy from pin_tp may still be pending.
static int spec_launch(cuda_state *st, infer_error *err)
{
	feed_kernel<<<1, 1, 0, st->s>>>(infer_cuda_sample_id_device(st->sampler), st->d_tok,
					st->d_pos, st->last_pos + 1);
	CK_LAUNCH("feed_kernel");
	CK(cudaGraphLaunch(st->graph, st->s));
	return 0;
}

// *taken = 1 when this eval is the queued step (one token, no tap, logits
// wanted: eval_decode's case); otherwise a queued step is dropped once the
// stream has drained (the paths below sync there anyway).
static int spec_claim(cuda_state *st, int decode, int32_t token, int32_t pos, int *taken,
		      infer_error *err)
{
	*taken = 0;
	if (!st->spec_valid)
		return 0;
	st->spec_valid = 0;
	if (decode && token == st->spec_token && pos == st->spec_pos) {
		*taken = 1;
		return 0;
	}
	CK(cudaStreamSynchronize(st->s));
	return 0;
}

// The decode step's launch: token and position through pinned memory, then
// the captured graph.
static int launch_decode(cuda_state *st, int32_t token, int32_t pos, infer_error *err)
{
	int rc;

	// Buffers first: nothing may be allocated while capturing.
	if ((rc = ensure_logits(st, 1, err)) || (!st->graph && (rc = capture_decode(st, err))))
		return rc;
	CK(cudaStreamSynchronize(st->s)); // the pinned slots are free again
	st->pin_tp[0] = token;
	st->pin_tp[1] = pos;
	CK(cudaMemcpyAsync(st->d_tok, &st->pin_tp[0], 4, cudaMemcpyHostToDevice, st->s));
	CK(cudaMemcpyAsync(st->d_pos, &st->pin_tp[1], 4, cudaMemcpyHostToDevice, st->s));
	if (st->timing)
		CK(cudaEventRecord(st->ev0, st->s));
	CK(cudaGraphLaunch(st->graph, st->s));
	if (st->timing)
		CK(cudaEventRecord(st->ev1, st->s));
	return 0;
}

// One token, no taps: the captured graph runs the whole step (launched here,
// or already queued by cuda_sample when `taken`), the logits come back
// pinned.
static int eval_decode(cuda_state *st, int32_t token, int32_t pos, float *logits, int taken,
		       infer_error *err)
{
	int rc;

	if (!taken && (rc = launch_decode(st, token, pos, err)))
		return rc;
	st->launches += st->graph_kernels + (taken ? 1 : 0); // + feed_kernel
	st->last_logits = st->logits;
	st->last_pos = pos;
	// logits NULL: they stay on the device for cuda_sample, whose kernels
	// follow on the same stream and whose result copy synchronizes, so the
	// host does not wait here (one round trip less per token).
	if (!logits && !st->timing)
		return 0;
	if (logits)
		CK(cudaMemcpyAsync(st->pin_logits, st->logits, (size_t)st->hp->n_vocab * 4,
				   cudaMemcpyDeviceToHost, st->s));
	CK(cudaStreamSynchronize(st->s));
	if (logits)
		memcpy(logits, st->pin_logits, (size_t)st->hp->n_vocab * 4);
	if (st->timing) {
		float ms = 0;
		CK(cudaEventElapsedTime(&ms, st->ev0, st->ev1));
		st->graph_ms += ms;
		st->graph_runs++;
		if (st->fd.stamps && (rc = add_stamps(st, err)))
			return rc;
	}
	return 0;
}

static int cuda_eval(void *state, const int32_t *tokens, int32_t n, int32_t pos, float *logits,
		     int all_logits, infer_tap_fn tap_fn, void *tap_user, infer_error *err)
{
	cuda_state *st = (cuda_state *)state;
	tapper tp = { st, tap_fn, tap_user, n };
	int64_t V = st->hp->n_vocab;
	uint64_t before = g_cuda_launches;
	int32_t *hpos;
	int keep = all_logits == INFER_EVAL_KEEP_LOGITS; // logits stay for cuda_sample
	int decode = n == 1 && !tap_fn && (logits || keep); // pinned staging, graph replay
	int rc, taken;

	if (n <= 0)
		return 0;
	if ((rc = spec_claim(st, decode, tokens[0], pos, &taken, err)))
		return rc;
	if (keep)
		all_logits = 0;
	st->last_logits = NULL;
	st->last_pos = -1;
	if ((rc = ensure_capacity(st, n, err)))
		return rc;
	if (decode)
		return eval_decode(st, tokens[0], pos, logits, taken, err);
	hpos = (int32_t *)malloc((size_t)n * 4);
	if (!hpos)
		return cu_err(err, INFER_E_NOMEM, "cuda eval: out of memory");
	for (int32_t t = 0; t < n; t++)
		hpos[t] = pos + t;
	cudaError_t e1 = cudaMemcpyAsync(st->d_tok, tokens, (size_t)n * 4, cudaMemcpyHostToDevice, st->s);
	cudaError_t e2 = cudaMemcpyAsync(st->d_pos, hpos, (size_t)n * 4, cudaMemcpyHostToDevice, st->s);
	cudaError_t e3 = cudaStreamSynchronize(st->s);
	free(hpos);
	if (e1 != cudaSuccess || e2 != cudaSuccess || e3 != cudaSuccess)
		return cu_err(err, INFER_E_DEVICE, "cudaMemcpyAsync(tokens/positions) failed: %s (%s:%d)",
			      cudaGetErrorString(e1 != cudaSuccess ? e1 : e2 != cudaSuccess ? e2 : e3),
			      __FILE__, __LINE__);
	rc = forward_body(st, n, all_logits, logits != NULL || tap_fn != NULL || keep, &tp, err);
	st->launches += g_cuda_launches - before;
	if (rc)
		return rc;
	// With a tap (or all logits) every row was computed: the last is n-1.
	if (logits || tap_fn || keep) {
		st->last_logits = st->logits + (all_logits || tap_fn ? (int64_t)(n - 1) * V : 0);
		st->last_pos = tap_fn ? -1 : pos + n - 1; // a tap: the next eval taps too
	}
	if (logits) {
		const float *src = st->logits;
		size_t cnt = (size_t)V;
		if (all_logits)
			cnt *= (size_t)n;
		else if (tap_fn)
			src += (int64_t)(n - 1) * V; // all rows were computed for the tap
		CK(cudaMemcpyAsync(logits, src, cnt * 4, cudaMemcpyDeviceToHost, st->s));
	}
	CK(cudaStreamSynchronize(st->s));
	return 0;
}

/* ---- state --------------------------------------------------------------- */

static void cuda_free_state(void *state)
{
	cuda_state *st = (cuda_state *)state;

	if (!st)
		return;
	if (st->s) // a speculative step may still run: free nothing under it
		cudaStreamSynchronize(st->s);
	cuda_stamps_dump();
	if (st->timing && st->graph_runs)
		fprintf(stderr, "cuda timing: %llu decode graph replays, %.4f ms GPU time each, %llu kernels each (%s%s)\n",
			(unsigned long long)st->graph_runs, st->graph_ms / st->graph_runs,
			(unsigned long long)st->graph_kernels,
			st->fused ? "persistent decode kernel" : "per-op graph: ", st->fused ? "" : st->fused_why);
	if (st->timing && st->graph_runs && st->fd.stamps)
		print_stamps(st);
	if (st->ev0)
		cudaEventDestroy(st->ev0);
	if (st->ev1)
		cudaEventDestroy(st->ev1);
	drop_graph(st);
	free_activations(st);
	if (st->L) {
		for (int il = 0; il < st->hp->n_layer; il++) {
			dlayer *L = &st->L[il];
			void *p[] = { L->attn_norm, L->ffn_norm, L->bq, L->bk, L->bv, L->wq.d, L->wk.d,
				      L->wv.d, L->wo.d, L->gate.d, L->up.d, L->down.d, L->wqkv.d, L->bqkv };
			for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++)
				cudaFree(p[i]);
		}
		free(st->L);
	}
	if (st->output.d != st->tok_embd.d)
		cudaFree(st->output.d);
	cudaFree(st->tok_embd.d);
	cudaFree(st->output_norm);
	cudaFree(st->kc);
	cudaFree(st->vc);
	cudaFree(st->wscratch);
	cudaFree(st->xscratch);
	cudaFree(st->attn_part);
	cudaFree(st->attn_count);
	cudaFree(st->inv_freq);
	cudaFree(st->qkv1);
	cudaFree(st->fd_layers);
	cudaFree(st->fd.bar);
	cudaFree(st->fd.rope_cs);
	cudaFree(st->fd.stamps);
	free(st->stamps_h);
	cudaFreeHost(st->pin_tp);
	cudaFreeHost(st->pin_logits);
	infer_cuda_sampler_free(st->sampler);
	if (st->s)
		cudaStreamDestroy(st->s);
	free(st->host);
	free(st);
}

// One matrix of the q, k and v rows (and one bias) for the decode step, when
// the three share a type: one launch instead of three. The separate copies
// stay for prefill, which needs q, k and v as separate arrays.
static int fuse_qkv(cuda_state *st, const infer_layer *s, dlayer *d, infer_error *err)
{
	const infer_matrix *m[3] = { &s->wq, &s->wk, &s->wv };
	const infer_vector *b[3] = { &s->bq, &s->bk, &s->bv };
	uint64_t off = 0;
	int64_t rows = 0;

	if (s->wk.type != s->wq.type || s->wv.type != s->wq.type || !s->bq.data != !s->bk.data ||
	    !s->bq.data != !s->bv.data)
		return 0;
	d->wqkv = d->wq;
	d->wqkv.M = s->wq.ne1 + s->wk.ne1 + s->wv.ne1;
	CK(cudaMalloc(&d->wqkv.d, s->wq.nbytes + s->wk.nbytes + s->wv.nbytes));
	for (int i = 0; i < 3; i++) {
		CK(cudaMemcpy((uint8_t *)d->wqkv.d + off, m[i]->data, m[i]->nbytes,
			      cudaMemcpyHostToDevice));
		off += m[i]->nbytes;
	}
	st->device_bytes += off;
	if (!s->bq.data)
		return 0;
	CK(cudaMalloc((void **)&d->bqkv, (size_t)d->wqkv.M * 4));
	for (int i = 0; i < 3; i++) {
		CK(cudaMemcpy(d->bqkv + rows, b[i]->data, (size_t)b[i]->n * 4, cudaMemcpyHostToDevice));
		rows += b[i]->n;
	}
	return 0;
}

static int upload_model(cuda_state *st, infer_error *err)
{
	const infer_model *m = st->m;
	int rc;

	st->L = (dlayer *)calloc((size_t)st->hp->n_layer, sizeof(dlayer));
	if (!st->L)
		return cu_err(err, INFER_E_NOMEM, "cuda: out of memory");
	for (int il = 0; il < st->hp->n_layer; il++) {
		const infer_layer *s = &m->layers[il];
		dlayer *d = &st->L[il];
		if ((rc = upload_vector(st, &s->attn_norm, &d->attn_norm, err)) ||
		    (rc = upload_vector(st, &s->ffn_norm, &d->ffn_norm, err)) ||
		    (rc = upload_vector(st, &s->bq, &d->bq, err)) ||
		    (rc = upload_vector(st, &s->bk, &d->bk, err)) ||
		    (rc = upload_vector(st, &s->bv, &d->bv, err)) ||
		    (rc = upload_matrix(st, &s->wq, &d->wq, err)) ||
		    (rc = upload_matrix(st, &s->wk, &d->wk, err)) ||
		    (rc = upload_matrix(st, &s->wv, &d->wv, err)) ||
		    (rc = upload_matrix(st, &s->wo, &d->wo, err)) ||
		    (rc = upload_matrix(st, &s->ffn_gate, &d->gate, err)) ||
		    (rc = upload_matrix(st, &s->ffn_up, &d->up, err)) ||
		    (rc = upload_matrix(st, &s->ffn_down, &d->down, err)))
			return rc;
	}
	for (int il = 0; il < st->hp->n_layer && !rc; il++)
		rc = fuse_qkv(st, &m->layers[il], &st->L[il], err);
	if (rc)
		return rc;
	if ((rc = upload_vector(st, &m->output_norm, &st->output_norm, err)) ||
	    (rc = upload_matrix(st, &m->tok_embd, &st->tok_embd, err)))
		return rc;
	if (m->output.data == m->tok_embd.data) { // tied: one copy serves both
		st->output = st->tok_embd;
		st->output.name = m->output.name;
		return 0;
	}
	return upload_matrix(st, &m->output, &st->output, err);
}

// RoPE frequencies with the CPU reference's formula (same libm pow), the
// decode step's q|k|v buffer and the pinned staging of a decode step.
static int init_tables(cuda_state *st, infer_error *err)
{
	const infer_hparams *hp = st->hp;
	int half = hp->n_rot / 2;
	double *f = (double *)malloc((size_t)(half > 0 ? half : 1) * sizeof(double));

	if (!f)
		return cu_err(err, INFER_E_NOMEM, "cuda: out of memory");
	for (int i = 0; i < half; i++)
		f[i] = pow((double)hp->rope_freq_base, -2.0 * (double)i / (double)hp->n_rot);
	cudaError_t e = cudaMalloc((void **)&st->inv_freq, (size_t)(half > 0 ? half : 1) * 8);
	if (e == cudaSuccess)
		e = cudaMemcpy(st->inv_freq, f, (size_t)half * 8, cudaMemcpyHostToDevice);
	free(f);
	if (e != cudaSuccess)
		return cu_err(err, INFER_E_DEVICE, "cuda: RoPE table upload failed: %s (%s:%d)",
			      cudaGetErrorString(e), __FILE__, __LINE__);
	CK(cudaMalloc((void **)&st->qkv1, (size_t)(st->q_dim + 2 * st->kv_dim) * 4));
	CK(cudaMalloc((void **)&st->attn_count, (size_t)16 * hp->n_head * sizeof(unsigned)));
	CK(cudaMemset(st->attn_count, 0, (size_t)16 * hp->n_head * sizeof(unsigned)));
	CK(cudaMallocHost((void **)&st->pin_tp, 2 * sizeof(int32_t)));
	cuda_stamps_init();
	st->timing = getenv("INFER_CUDA_TIMING") ? atoi(getenv("INFER_CUDA_TIMING")) : 0;
	st->qkv3_off = getenv("INFER_CUDA_QKV3") && !atoi(getenv("INFER_CUDA_QKV3"));
	if (st->timing) {
		CK(cudaEventCreate(&st->ev0));
		CK(cudaEventCreate(&st->ev1));
	}
	CK(cudaMallocHost((void **)&st->pin_logits, (size_t)hp->n_vocab * 4));
	return 0;
}

static fd_mat fd_of(const dmat *d)
{
	int bs = 1, ts = 0;

	cuda_type_block(d->type, &bs, &ts);
	return fd_mat{ d->d, d->type, d->K, d->M, (d->K / bs) * ts, bs > 1 ? bs : 8,
		       bs > 1 ? ts : 8 * ts };
}

// The persistent decode kernel's tables (weights, norms, biases, KV cache of
// every layer) and its launch plan, when INFER_CUDA_DECODE=fused asks for
// it; when the model does not fit it st->fused stays 0 and the reason is
// kept (printed with INFER_CUDA_TIMING): the per-op graph computes the same
// step.
static int init_fused(cuda_state *st, infer_error *err)
{
	const infer_hparams *hp = st->hp;
	const char *env = getenv("INFER_CUDA_DECODE");
	fd_params *p = &st->fd;
	fd_layer *hl;
	int rc = 0;

	// Opt-in: on the H200 the persistent kernel is still slower than the
	// per-op graph (kernels/NOTES.md, item 10), so the graph is the default.
	if (!env || strcmp(env, "fused")) {
		snprintf(st->fused_why, sizeof(st->fused_why),
			 "the default; INFER_CUDA_DECODE=fused selects the persistent kernel");
		return 0;
	}
	hl = (fd_layer *)calloc((size_t)hp->n_layer, sizeof(*hl));
	if (!hl)
		return cu_err(err, INFER_E_NOMEM, "cuda: out of memory");
	for (int il = 0; il < hp->n_layer; il++) {
		const dlayer *L = &st->L[il];
		fd_layer *f = &hl[il];
		f->q = fd_of(&L->wq);
		f->k = fd_of(&L->wk);
		f->v = fd_of(&L->wv);
		f->o = fd_of(&L->wo);
		f->gate = fd_of(&L->gate);
		f->up = fd_of(&L->up);
		f->down = fd_of(&L->down);
		f->attn_norm = L->attn_norm;
		f->ffn_norm = L->ffn_norm;
		f->bq = L->bq;
		f->bk = L->bk;
		f->bv = L->bv;
		f->kc = st->kc + (int64_t)il * st->n_ctx * st->kv_dim;
		f->vc = st->vc + (int64_t)il * st->n_ctx * st->kv_dim;
	}
	*p = fd_params{};
	p->n_layer = hp->n_layer;
	p->n_embd = (int)hp->n_embd;
	p->n_ff = (int)hp->n_ff;
	p->head_dim = (int)hp->head_dim;
	p->n_head = (int)hp->n_head;
	p->n_head_kv = (int)hp->n_head_kv;
	p->n_rot = (int)hp->n_rot;
	p->neox = hp->rope_neox;
	p->eps = hp->norm_eps;
	p->scale = 1.0f / sqrtf((float)hp->head_dim);
	p->embd = fd_of(&st->tok_embd);
	p->out = fd_of(&st->output);
	p->out_norm = st->output_norm;
	p->inv_freq = st->inv_freq;
	p->part = st->attn_part;
	p->att_count = st->attn_count;
	if (!st->output_norm || !hl[0].attn_norm) {
		snprintf(st->fused_why, sizeof(st->fused_why), "a norm weight is missing");
		goto out;
	}
	if (cuda_fused_plan(hl, p, st->fused_why, sizeof(st->fused_why)))
		goto out;
	CKG(cudaMalloc((void **)&st->fd_layers, (size_t)hp->n_layer * sizeof(*hl)));
	CKG(cudaMemcpy(st->fd_layers, hl, (size_t)hp->n_layer * sizeof(*hl), cudaMemcpyHostToDevice));
	CKG(cudaMalloc((void **)&p->bar, sizeof(unsigned)));
	CKG(cudaMalloc((void **)&p->rope_cs, (size_t)(hp->n_rot / 2 + 1) * sizeof(float2)));
	p->layers = st->fd_layers;
	if (st->timing >= 2) {
		st->stamps_h = (uint64_t *)calloc(FD_STAMPS_ALL(hp->n_layer), sizeof(uint64_t));
		if (!st->stamps_h) {
			rc = cu_err(err, INFER_E_NOMEM, "cuda: out of memory");
			goto out;
		}
		CKG(cudaMalloc((void **)&p->stamps, FD_STAMPS_ALL(hp->n_layer) * sizeof(uint64_t)));
	}
	st->fused = 1;
out:
	free(hl);
	return rc;
}

static void *cuda_init_state(const infer_model *m, const infer_forward_opts *o, infer_error *err)
{
	cuda_state *st;
	const infer_hparams *hp = &m->hp;
	size_t kvb;

	if (cuda_init(err))
		return NULL;
	st = (cuda_state *)calloc(1, sizeof(*st));
	if (!st) {
		cu_err(err, INFER_E_NOMEM, "cuda: out of memory");
		return NULL;
	}
	st->m = m;
	st->hp = hp;
	st->n_ctx = o->n_ctx;
	st->q_dim = (int64_t)hp->n_head * hp->head_dim;
	st->kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
	kvb = (size_t)hp->n_layer * (size_t)o->n_ctx * (size_t)st->kv_dim * 4;
	if (cudaStreamCreateWithFlags(&st->s, cudaStreamNonBlocking) != cudaSuccess) {
		cu_err(err, INFER_E_DEVICE, "cudaStreamCreateWithFlags failed (%s:%d)", __FILE__, __LINE__);
		goto fail;
	}
	if (upload_model(st, err))
		goto fail;
	if (cudaMalloc((void **)&st->kc, kvb) != cudaSuccess ||
	    cudaMalloc((void **)&st->vc, kvb) != cudaSuccess ||
	    cudaMalloc((void **)&st->attn_part, (size_t)16 * hp->n_head * ATT_MAX_SPLIT *
						 (hp->head_dim + 2) * 4) != cudaSuccess) {
		cu_err(err, INFER_E_DEVICE, "cudaMalloc(KV cache of %zu bytes x2) failed (%s:%d)", kvb,
		       __FILE__, __LINE__);
		goto fail;
	}
	if (init_tables(st, err) || init_fused(st, err))
		goto fail;
	if (hp->head_dim == 64 || hp->head_dim == 128)
		cuda_attention_cluster_max(hp->head_dim); // the device is asked now, not while capturing
	return st;
fail:
	cuda_free_state(st);
	return NULL;
}

// Sampling on the device from the last eval's logits (sample.cu); the host
// sampler (session.c) keeps the PRNG and the history window.
static int cuda_sample(void *state, const infer_sampler_params *p, double u,
		       const int32_t *pen, int32_t n_pen, int32_t *id, float *lp_raw,
		       float *lp_final, infer_error *err)
{
	cuda_state *st = (cuda_state *)state;
	int32_t V = st->hp->n_vocab;
	uint64_t before = g_cuda_launches;
	int rc, spec;

	if (!st->last_logits)
		return cu_err(err, INFER_E_ARG,
			      "cuda sample: the last eval kept no logits (or they were sampled already)");
	if (!st->sampler) {
		const char *env = getenv("INFER_CUDA_SPECULATE");

		if (!(st->sampler = infer_cuda_sampler_new(V, err)))
			return err ? err->code : INFER_E_DEVICE;
		st->speculate = !env || atoi(env) != 0;
	}
	spec = spec_ok(st);
	rc = infer_cuda_sample_enqueue(st->sampler, st->last_logits, V, p, u, pen, n_pen, st->s, err);
	if (!rc && spec) {
		// From here a step may be on the stream: the next eval takes it
		// or waits for it, even when something below fails.
		st->spec_valid = 1;
		st->spec_pos = st->last_pos + 1;
		st->spec_token = -1; // matches no token until the pick is known
		st->last_logits = NULL; // the queued step overwrites them
		rc = spec_launch(st, err);
	}
	if (!rc)
		rc = infer_cuda_sample_finish(st->sampler, id, lp_raw, lp_final, err);
	if (!rc && spec)
		st->spec_token = *id;
	st->launches += g_cuda_launches - before;
	return rc;
}

static uint64_t cuda_device_bytes(const void *state)
{
	return ((const cuda_state *)state)->device_bytes;
}

static uint64_t cuda_kernel_launches(const void *state)
{
	return ((const cuda_state *)state)->launches;
}

// A new conversation: a step still queued by the speculation (the one after
// the last token of the previous generation, never taken) is dropped and
// waited for here, at the reset, so its time is not charged to the next
// prompt's evaluation.
static void cuda_reset(void *state)
{
	cuda_state *st = (cuda_state *)state;
	infer_error e = {};
	int taken;

	spec_claim(st, 0, -1, -1, &taken, &e);
}

extern "C" const infer_forward infer_forward_cuda = {
	"cuda", cuda_init_state, cuda_eval, cuda_reset, cuda_free_state, cuda_device_bytes,
	cuda_kernel_launches, cuda_sample,
};
