/* Token sampling. The chain, in order:
 *
 *   raw logits
 *   -> repetition penalty on the last repeat_last_n tokens of the history
 *      (positive logits divided by the penalty, negative ones multiplied)
 *   -> greedy (temperature <= 0): the first maximum, done
 *   -> divide by the temperature
 *   -> top-k: keep the k largest
 *   -> softmax over what is kept
 *   -> top-p: keep the smallest prefix (by probability) whose mass reaches p
 *   -> min-p: keep tokens with p >= min_p * p_max
 *   -> renormalise and draw with the seeded PRNG.
 *
 * Every choice is deterministic given (logits, params, seed, call number):
 * candidates are ordered by logit with ties broken by id, probabilities are
 * summed in double in that order, and the PRNG is xoshiro256** seeded through
 * splitmix64 (public-domain algorithms by Vigna and Blackman). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "infer/sampler.h"

struct cand {
	int32_t id;
	float logit;
	double p;
};

struct infer_sampler {
	infer_sampler_params p;
	uint64_t s[4];       /* xoshiro256** state */
	struct cand *cands;
	int32_t cap;
	float *work;         /* penalised logits */
};

void infer_sampler_params_default(infer_sampler_params *p)
{
	p->temperature = 0.8f;
	p->top_k = 40;
	p->top_p = 0.95f;
	p->min_p = 0.0f;
	p->repeat_penalty = 1.0f;
	p->repeat_last_n = 64;
	p->seed = 0;
}

/* ---- PRNG ---------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t next_u64(uint64_t *s)
{
	uint64_t r = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return r;
}

/* Uniform in [0, 1) with 53 random bits. */
static double next_unit(uint64_t *s)
{
	return (double)(next_u64(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- public -------------------------------------------------------------- */

infer_sampler *infer_sampler_new(const infer_sampler_params *p)
{
	infer_sampler *s = calloc(1, sizeof(*s));
	uint64_t x;

	if (!s)
		return NULL;
	if (p)
		s->p = *p;
	else
		infer_sampler_params_default(&s->p);
	x = s->p.seed;
	for (int i = 0; i < 4; i++)
		s->s[i] = splitmix64(&x);
	return s;
}

void infer_sampler_free(infer_sampler *s)
{
	if (!s)
		return;
	free(s->cands);
	free(s->work);
	free(s);
}

float infer_logprob(const float *logits, int32_t n_vocab, int32_t id)
{
	double mx = -INFINITY, sum = 0.0;

	if (id < 0 || id >= n_vocab)
		return -INFINITY;
	for (int32_t i = 0; i < n_vocab; i++)
		if (logits[i] > mx)
			mx = logits[i];
	for (int32_t i = 0; i < n_vocab; i++)
		sum += exp((double)logits[i] - mx);
	return (float)((double)logits[id] - mx - log(sum));
}

static int by_logit_desc(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->logit != y->logit)
		return x->logit > y->logit ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static int grow(infer_sampler *s, int32_t n)
{
	struct cand *c;
	float *w;

	if (n <= s->cap)
		return 0;
	c = realloc(s->cands, (size_t)n * sizeof(*c));
	if (!c)
		return -1;
	s->cands = c;
	w = realloc(s->work, (size_t)n * sizeof(*w));
	if (!w)
		return -1;
	s->work = w;
	s->cap = n;
	return 0;
}

/* Walks the distinct ids of the penalty window (the last repeat_last_n
 * tokens of the history, in first-seen order; ids outside the vocabulary
 * skipped): each is stored into ids and / or penalised once in l (either
 * may be NULL). Returns how many; 0 when the penalty is off. */
static int32_t penalty_window(const infer_sampler_params *p, const int32_t *hist, int32_t n_hist,
			      int32_t n_vocab, int32_t *ids, float *l)
{
	int32_t from, n = 0;

	if (p->repeat_penalty == 1.0f || p->repeat_penalty <= 0.0f || !hist || n_hist <= 0)
		return 0;
	from = p->repeat_last_n > 0 && n_hist > p->repeat_last_n ? n_hist - p->repeat_last_n : 0;
	for (int32_t i = from; i < n_hist; i++) {
		int32_t id = hist[i];
		int seen = 0;

		if (id < 0 || id >= n_vocab)
			continue;
		for (int32_t j = from; j < i && !seen; j++)
			seen = hist[j] == id;
		if (seen)
			continue;
		if (ids)
			ids[n] = id;
		if (l)
			l[id] = l[id] > 0 ? l[id] / p->repeat_penalty : l[id] * p->repeat_penalty;
		n++;
	}
	return n;
}

static int32_t argmax(const float *l, int32_t n)
{
	int32_t best = 0;

	for (int32_t i = 1; i < n; i++)
		if (l[i] > l[best])
			best = i;
	return best;
}

/* Softmax over cands[0..n) (sorted by logit), after dividing by temp. */
static void softmax_cands(struct cand *c, int32_t n, float temp)
{
	double sum = 0.0, mx = (double)c[0].logit / temp;

	for (int32_t i = 0; i < n; i++) {
		c[i].p = exp((double)c[i].logit / temp - mx);
		sum += c[i].p;
	}
	for (int32_t i = 0; i < n; i++)
		c[i].p /= sum;
}

/* Keeps the shortest prefix whose mass reaches top_p, then the tokens with
 * p >= min_p * p_max; returns how many remain (at least 1). */
static int32_t truncate_cands(const infer_sampler_params *p, const struct cand *c, int32_t n)
{
	if (p->top_p < 1.0f) {
		double cum = 0.0;
		int32_t keep = 0;

		while (keep < n && cum < (double)p->top_p)
			cum += c[keep++].p;
		n = keep > 0 ? keep : 1;
	}
	if (p->min_p > 0.0f) {
		double floor = (double)p->min_p * c[0].p;
		int32_t keep = 1;

		while (keep < n && c[keep].p >= floor)
			keep++;
		n = keep;
	}
	return n;
}

const infer_sampler_params *infer_sampler_get_params(const infer_sampler *s)
{
	return &s->p;
}

double infer_sampler_next_unit(infer_sampler *s)
{
	return next_unit(s->s);
}

/* The ids the host sampler penalises, in the same window and order. */
int32_t infer_sampler_penalty_ids(const infer_sampler *s, const int32_t *hist, int32_t n_hist,
				  int32_t n_vocab, int32_t *ids)
{
	return penalty_window(&s->p, hist, n_hist, n_vocab, ids, NULL);
}

int32_t infer_sampler_sample(infer_sampler *s, const float *logits, int32_t n_vocab,
			     const int32_t *history, int32_t n_history,
			     float *logprob_raw, float *logprob_final)
{
	const infer_sampler_params *p = &s->p;
	struct cand *c;
	int32_t n, id;
	double u, cum, mass = 0.0;

	if (!logits || n_vocab <= 0 || grow(s, n_vocab))
		return -1;
	memcpy(s->work, logits, (size_t)n_vocab * sizeof(float));
	penalty_window(p, history, n_history, n_vocab, NULL, s->work);
	if (p->temperature <= 0.0f) {
		id = argmax(s->work, n_vocab);
		if (logprob_raw)
			*logprob_raw = infer_logprob(logits, n_vocab, id);
		if (logprob_final)
			*logprob_final = 0.0f; /* greedy: the pick has probability 1 */
		return id;
	}
	c = s->cands;
	for (int32_t i = 0; i < n_vocab; i++) {
		c[i].id = i;
		c[i].logit = s->work[i];
	}
	qsort(c, (size_t)n_vocab, sizeof(*c), by_logit_desc);
	n = p->top_k > 0 && p->top_k < n_vocab ? p->top_k : n_vocab;
	softmax_cands(c, n, p->temperature);
	n = truncate_cands(p, c, n);
	for (int32_t i = 0; i < n; i++)
		mass += c[i].p;
	/* Draw: the first candidate whose cumulative mass passes u * mass. */
	u = next_unit(s->s) * mass;
	cum = 0.0;
	id = n - 1;
	for (int32_t i = 0; i < n; i++) {
		cum += c[i].p;
		if (u < cum) {
			id = i;
			break;
		}
	}
	if (logprob_raw)
		*logprob_raw = infer_logprob(logits, n_vocab, c[id].id);
	if (logprob_final)
		*logprob_final = (float)log(c[id].p / mass);
	return c[id].id;
}
