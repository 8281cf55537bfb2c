/* Worker threads that sleep on a condition variable between jobs. A job is
 * published by bumping a generation counter; each worker runs its share once
 * per generation and the last one to finish wakes the caller. */
#include <pthread.h>
#include <stdlib.h>

#include "threadpool.h"

struct tpool {
	int n;                 /* threads in all, caller included */
	pthread_t *threads;    /* n - 1 workers */
	pthread_mutex_t mu;
	pthread_cond_t work;   /* a new generation (or stop) was published */
	pthread_cond_t done;   /* pending reached 0 */
	unsigned long gen;
	int pending;           /* workers still running the current job */
	int stop;
	tpool_fn fn;
	void *arg;
};

struct worker_arg {
	tpool *p;
	int ith;
};

static void *worker(void *v)
{
	struct worker_arg *wa = v;
	tpool *p = wa->p;
	int ith = wa->ith;
	unsigned long seen = 0;

	free(wa);
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->gen == seen && !p->stop)
			pthread_cond_wait(&p->work, &p->mu);
		if (p->stop)
			break;
		seen = p->gen;
		pthread_mutex_unlock(&p->mu);
		p->fn(p->arg, ith, p->n);
		pthread_mutex_lock(&p->mu);
		if (--p->pending == 0)
			pthread_cond_signal(&p->done);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

tpool *tpool_new(int n_threads)
{
	tpool *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->n = n_threads < 1 ? 1 : n_threads;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done, NULL);
	p->threads = calloc((size_t)p->n, sizeof(pthread_t));
	if (!p->threads) {
		free(p);
		return NULL;
	}
	for (int i = 1; i < p->n; i++) {
		struct worker_arg *wa = malloc(sizeof(*wa));

		if (wa) {
			wa->p = p;
			wa->ith = i;
		}
		if (!wa || pthread_create(&p->threads[i - 1], NULL, worker, wa)) {
			free(wa);
			p->n = i; /* run with the threads that did start */
			break;
		}
	}
	return p;
}

void tpool_free(tpool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	for (int i = 1; i < p->n; i++)
		pthread_join(p->threads[i - 1], NULL);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->done);
	pthread_mutex_destroy(&p->mu);
	free(p->threads);
	free(p);
}

int tpool_size(const tpool *p)
{
	return p->n;
}

void tpool_run(tpool *p, tpool_fn fn, void *arg)
{
	if (p->n == 1) {
		fn(arg, 0, 1);
		return;
	}
	pthread_mutex_lock(&p->mu);
	p->fn = fn;
	p->arg = arg;
	p->pending = p->n - 1;
	p->gen++;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	fn(arg, 0, p->n);
	pthread_mutex_lock(&p->mu);
	while (p->pending > 0)
		pthread_cond_wait(&p->done, &p->mu);
	pthread_mutex_unlock(&p->mu);
}
