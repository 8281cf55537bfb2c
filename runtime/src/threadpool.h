/* A fixed pool of worker threads for the CPU forward pass. One job at a time:
 * tpool_run() hands fn to every thread (the caller is thread 0) and returns
 * when all have finished, so a job is just "do your share of these rows". */
#ifndef INFER_THREADPOOL_H
#define INFER_THREADPOOL_H

typedef struct tpool tpool;
typedef void (*tpool_fn)(void *arg, int ith, int nth);

/* n_threads >= 1 threads in all, the caller included; NULL on failure. */
tpool *tpool_new(int n_threads);
void tpool_free(tpool *p);
int tpool_size(const tpool *p);
/* Calls fn(arg, ith, nth) once for every ith in 0..nth-1, concurrently. */
void tpool_run(tpool *p, tpool_fn fn, void *arg);

#endif
