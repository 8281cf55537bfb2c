/* Host side of the block timestamps (stamps.cuh; measurement builds only). */
#include <stdio.h>
#include <stdlib.h>

#include <algorithm>
#include <map>
#include <vector>

#include "kernels.cuh"

#ifdef INFER_STAMPS
static int (*g_binds[64])(void *, void *);
static int g_nbinds;
static stamp_rec *g_buf;
static unsigned long long *g_n;

void stamps_register(int (*bind)(void *, void *))
{
	if (g_nbinds < 64)
		g_binds[g_nbinds++] = bind;
}

void cuda_stamps_init(void)
{
	if (g_buf || !getenv("INFER_STAMPS_OUT"))
		return;
	if (cudaMalloc((void **)&g_buf, (size_t)STAMP_CAP * sizeof(stamp_rec)) != cudaSuccess ||
	    cudaMalloc((void **)&g_n, sizeof *g_n) != cudaSuccess ||
	    cudaMemset(g_n, 0, sizeof *g_n) != cudaSuccess) {
		fprintf(stderr, "stamps: no device memory for the ring\n");
		exit(3);
	}
	for (int i = 0; i < g_nbinds; i++)
		if (g_binds[i](g_buf, g_n)) {
			fprintf(stderr, "stamps: binding translation unit %d failed\n", i);
			exit(3);
		}
}

static unsigned long long pct(std::vector<unsigned long long> &v, double q)
{
	std::sort(v.begin(), v.end());
	return v[(size_t)(q * (v.size() - 1))];
}

/* One line per complete grid of the last `keep` records, in launch order:
 * kind, blocks, then times in ns relative to the first grid's first entry:
 * entry first/last, wait release first/median/last, exit median/last, and
 * the median block's work after the wait. */
void cuda_stamps_dump(void)
{
	const char *path = getenv("INFER_STAMPS_OUT");
	unsigned long long n = 0;

	if (!g_buf || !path)
		return;
	cudaDeviceSynchronize();
	cudaMemcpy(&n, g_n, sizeof n, cudaMemcpyDeviceToHost);
	const unsigned long long keep = std::min<unsigned long long>(n, 600000ull);
	std::vector<stamp_rec> r(keep);
	for (unsigned long long k = 0; k < keep;) { // in at most two pieces (the ring wraps)
		const unsigned long long i = (n - keep + k) % STAMP_CAP;
		const unsigned long long c = std::min<unsigned long long>(keep - k, STAMP_CAP - i);
		cudaMemcpy(&r[k], g_buf + i, c * sizeof(stamp_rec), cudaMemcpyDeviceToHost);
		k += c;
	}
	std::map<unsigned long long, std::vector<stamp_rec>> g;
	for (const stamp_rec &x : r)
		g[x.grid].push_back(x);
	// A graph node keeps its grid id from replay to replay: its records are
	// cut into launches by entry time (replays are ~0.5 ms apart, the blocks
	// of one launch enter within microseconds), from the newest back; the
	// oldest chunk may be cut by the window.
	std::vector<std::vector<stamp_rec>> launches;
	for (auto &kv : g) {
		std::vector<stamp_rec> &v = kv.second;
		std::sort(v.begin(), v.end(),
			  [](const stamp_rec &a, const stamp_rec &b) { return a.t[0] < b.t[0]; });
		const size_t nb = v[0].nblk;
		for (size_t end = v.size(); end >= nb; end -= nb)
			launches.emplace_back(v.begin() + (end - nb), v.begin() + end);
	}
	struct line {
		unsigned kind, nblk;
		unsigned long long e0, e1, w0, w5, w1, x5, x1, work, mk[5];
	};
	std::vector<line> ls;
	for (std::vector<stamp_rec> &b : launches) {
		std::vector<unsigned long long> e, w, x, d, m[5];
		for (const stamp_rec &y : b) {
			e.push_back(y.t[0]);
			w.push_back(y.t[1]);
			x.push_back(y.t[7]);
			d.push_back(y.t[7] - y.t[1]);
			for (int k = 0; k < 5; k++)
				if (y.t[2 + k])
					m[k].push_back(y.t[2 + k] - y.t[1]);
		}
		line l{};
		l.kind = b[0].kind;
		l.nblk = b[0].nblk;
		l.e0 = pct(e, 0), l.e1 = pct(e, 1);
		l.w0 = pct(w, 0), l.w5 = pct(w, 0.5), l.w1 = pct(w, 1);
		l.x5 = pct(x, 0.5), l.x1 = pct(x, 1);
		l.work = pct(d, 0.5);
		for (int k = 0; k < 5; k++)
			l.mk[k] = m[k].empty() ? 0 : pct(m[k], 0.5);
		ls.push_back(l);
	}
	std::sort(ls.begin(), ls.end(), [](const line &a, const line &b) { return a.e0 < b.e0; });
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "stamps: cannot write %s\n", path);
		return;
	}
	fprintf(f, "# kind nblk entry_first entry_last wait_first wait_med wait_last exit_med exit_last work_med mark2..6_med (ns; marks after the wait)\n");
	const unsigned long long base = ls.empty() ? 0 : ls[0].e0;
	for (const line &l : ls)
		fprintf(f, "%u %u %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu\n", l.kind,
			l.nblk, l.e0 - base, l.e1 - base, l.w0 - base, l.w5 - base, l.w1 - base,
			l.x5 - base, l.x1 - base, l.work, l.mk[0], l.mk[1], l.mk[2], l.mk[3], l.mk[4]);
	fclose(f);
	fprintf(stderr, "stamps: %zu grids from %llu records -> %s\n", ls.size(), keep, path);
}
#endif
