/* A session: one model on one backend with its own KV cache. What every
 * backend shares lives here (argument checks, the position, the tap); the
 * work is done by the backend's forward table (forward.h). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "forward.h"
#include "infer/backend.h"
#include "infer/session.h"
#include "model_internal.h"

struct infer_session {
	const infer_model *m;
	const infer_forward *fw;
	void *state;
	int32_t n_ctx;
	int32_t pos;
	infer_tap_fn tap;
	void *tap_user;
};

static const infer_forward *pick_forward(const char *backend, infer_error *err)
{
	if (!infer_backend_available(backend, err))
		return NULL;
	if (!backend || !strcmp(backend, "cpu"))
		return &infer_forward_cpu;
#ifdef INFER_HAVE_CUDA
	return &infer_forward_cuda;
#else
	infer_error_set(err, INFER_E_NODEVICE, -1, "backend %s: built without CUDA", backend);
	return NULL;
#endif
}

static int32_t default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : (int32_t)n;
}

infer_session *infer_session_new(const infer_model *m, const infer_session_opts *o,
				 infer_error *err)
{
	infer_session_opts dflt = { 0 };
	infer_forward_opts fo;
	infer_session *s;

	if (!m) {
		infer_error_set(err, INFER_E_ARG, -1, "session: no model");
		return NULL;
	}
	if (!o)
		o = &dflt;
	if (o->n_ctx < 0 || o->n_threads < 0) {
		infer_error_set(err, INFER_E_ARG, -1, "session: n_ctx %d and n_threads %d must be >= 0",
				o->n_ctx, o->n_threads);
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		infer_error_set(err, INFER_E_NOMEM, -1, "session: out of memory");
		return NULL;
	}
	s->m = m;
	s->fw = pick_forward(o->backend, err);
	if (!s->fw)
		goto fail;
	/* An option a backend cannot honour is an error, never ignored. */
	if (o->ggml_act_rounding && s->fw != &infer_forward_cpu) {
		infer_error_set(err, INFER_E_UNSUPPORTED, -1,
				"backend %s: ggml activation rounding is a cpu-only option",
				s->fw->backend);
		goto fail;
	}
	fo.ggml_act_rounding = o->ggml_act_rounding;
	fo.n_ctx = o->n_ctx ? o->n_ctx : m->hp.n_ctx;
	fo.n_threads = o->n_threads ? o->n_threads : default_threads();
	s->n_ctx = fo.n_ctx;
	s->state = s->fw->init(m, &fo, err);
	if (!s->state)
		goto fail;
	return s;
fail:
	free(s);
	return NULL;
}

void infer_session_free(infer_session *s)
{
	if (!s)
		return;
	s->fw->free(s->state);
	free(s);
}

void infer_session_set_tap(infer_session *s, infer_tap_fn fn, void *user)
{
	s->tap = fn;
	s->tap_user = user;
}

void infer_session_reset(infer_session *s)
{
	s->pos = 0;
	if (s->fw->reset)
		s->fw->reset(s->state);
}

int32_t infer_session_n_ctx_internal(const infer_session *s)
{
	return s->n_ctx;
}

int32_t infer_session_pos(const infer_session *s)
{
	return s->pos;
}

const infer_model *infer_session_model(const infer_session *s)
{
	return s->m;
}

const char *infer_session_backend(const infer_session *s)
{
	return s->fw->backend;
}

int infer_session_eval(infer_session *s, const int32_t *tokens, int32_t n, float *logits,
		       int all_logits, infer_error *err)
{
	int rc;

	if (!tokens || n <= 0)
		return infer_error_set(err, INFER_E_ARG, -1, "eval: need at least one token (n=%d)", n);
	if ((int64_t)s->pos + n > s->n_ctx)
		return infer_error_set(err, INFER_E_ARG, -1,
				       "eval: context full: position %d + %d tokens > n_ctx %d", s->pos,
				       n, s->n_ctx);
	for (int32_t i = 0; i < n; i++)
		if (tokens[i] < 0 || tokens[i] >= s->m->hp.n_vocab)
			return infer_error_set(err, INFER_E_ARG, -1,
					       "eval: token %d at index %d is outside the vocabulary (0..%d)",
					       tokens[i], i, s->m->hp.n_vocab - 1);
	rc = s->fw->eval(s->state, tokens, n, s->pos, logits, all_logits, s->tap, s->tap_user, err);
	if (rc)
		return rc;
	s->pos += n;
	return 0;
}

int infer_session_device_sampling(const infer_session *s)
{
	return s->fw->sample != NULL;
}

int infer_session_sample(infer_session *s, infer_sampler *smp, const int32_t *history,
			 int32_t n_history, int32_t *id, float *logprob_raw, float *logprob_final,
			 infer_error *err)
{
	const infer_sampler_params *p = infer_sampler_get_params(smp);
	int32_t n_pen = 0, *pen = NULL;
	double u;
	int rc;

	if (!s->fw->sample)
		return infer_error_set(err, INFER_E_ARG, -1, "sample: backend %s samples on the host",
				       s->fw->backend);
	if (history && n_history > 0) {
		pen = malloc((size_t)n_history * sizeof(*pen));
		if (!pen)
			return infer_error_set(err, INFER_E_NOMEM, -1, "sample: out of memory");
		n_pen = infer_sampler_penalty_ids(smp, history, n_history, s->m->hp.n_vocab, pen);
	}
	/* The one draw infer_sampler_sample makes for a non-greedy pick. */
	u = p->temperature > 0.0f ? infer_sampler_next_unit(smp) : 0.0;
	rc = s->fw->sample(s->state, p, u, pen, n_pen, id, logprob_raw, logprob_final, err);
	free(pen);
	return rc;
}

uint64_t infer_session_device_bytes(const infer_session *s)
{
	return s->fw->device_bytes ? s->fw->device_bytes(s->state) : 0;
}

uint64_t infer_session_kernel_launches(const infer_session *s)
{
	return s->fw->kernel_launches ? s->fw->kernel_launches(s->state) : 0;
}
