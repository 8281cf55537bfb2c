// Device discovery, one-time setup (device tables, cuBLAS handle) and the
// type facts the other kernels files share.
#include <pthread.h>
#include <stdio.h>

#include "infer_cuda.h"
#include "kernels.cuh"

// Format tables of the i-quants, defined once for the CPU decoders
// (runtime/src/quant/iq_tables.c, generated from ggml) and copied to the
// device here so both backends decode from the same facts.
extern "C" {
extern const uint8_t iq_ksigns[128];
extern const uint64_t iq2xxs_grid[256];
extern const uint64_t iq2xs_grid[512];
extern const uint64_t iq2s_grid[1024];
extern const uint32_t iq3xxs_grid[256];
extern const uint32_t iq3s_grid[512];
extern const uint64_t iq1s_grid[2048];
extern const int8_t kvalues_iq4nl[16];
extern const int8_t kvalues_fp4[16];
}

static __device__ uint8_t d_ksigns[128];
static __device__ uint64_t d_iq2xxs[256];
static __device__ uint64_t d_iq2xs[512];
static __device__ uint64_t d_iq2s[1024];
static __device__ uint32_t d_iq3xxs[256];
static __device__ uint32_t d_iq3s[512];
static __device__ uint64_t d_iq1s[2048];
static __device__ int8_t d_iq4nl[16];
static __device__ int8_t d_fp4[16];

thread_local uint64_t g_cuda_launches;

static char g_device_name[256];
static pthread_mutex_t g_init_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_inited;
static iq_tabs g_tabs;
static cublasHandle_t g_cublas;

extern "C" int infer_cuda_available(infer_error *err)
{
	int n = 0;
	cudaError_t e = cudaGetDeviceCount(&n);

	if (e != cudaSuccess)
		return cu_err(err, INFER_E_NODEVICE, "no CUDA device: %s", cudaGetErrorString(e)), 0;
	if (n == 0)
		return cu_err(err, INFER_E_NODEVICE, "no CUDA device: device count is 0"), 0;
	return 1;
}

extern "C" const char *infer_cuda_device_name(void)
{
	cudaDeviceProp prop;

	if (g_device_name[0])
		return g_device_name;
	if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess)
		return "";
	snprintf(g_device_name, sizeof(g_device_name), "%s", prop.name);
	return g_device_name;
}

template <typename T> static int upload(const T &sym, const void *src, size_t n, void **addr,
					 infer_error *err)
{
	CK(cudaMemcpyToSymbol(sym, src, n));
	CK(cudaGetSymbolAddress(addr, sym));
	return 0;
}

static int init_locked(infer_error *err)
{
	void *p[9];

	if (!infer_cuda_available(err))
		return INFER_E_NODEVICE;
	CK(cudaSetDevice(0));
	if (upload(d_ksigns, iq_ksigns, sizeof(d_ksigns), &p[0], err) ||
	    upload(d_iq2xxs, iq2xxs_grid, sizeof(d_iq2xxs), &p[1], err) ||
	    upload(d_iq2xs, iq2xs_grid, sizeof(d_iq2xs), &p[2], err) ||
	    upload(d_iq2s, iq2s_grid, sizeof(d_iq2s), &p[3], err) ||
	    upload(d_iq3xxs, iq3xxs_grid, sizeof(d_iq3xxs), &p[4], err) ||
	    upload(d_iq3s, iq3s_grid, sizeof(d_iq3s), &p[5], err) ||
	    upload(d_iq1s, iq1s_grid, sizeof(d_iq1s), &p[6], err) ||
	    upload(d_iq4nl, kvalues_iq4nl, sizeof(d_iq4nl), &p[7], err) ||
	    upload(d_fp4, kvalues_fp4, sizeof(d_fp4), &p[8], err))
		return err ? err->code : INFER_E_DEVICE;
	g_tabs.ksigns = (const uint8_t *)p[0];
	g_tabs.iq2xxs = (const uint64_t *)p[1];
	g_tabs.iq2xs = (const uint64_t *)p[2];
	g_tabs.iq2s = (const uint64_t *)p[3];
	g_tabs.iq3xxs = (const uint32_t *)p[4];
	g_tabs.iq3s = (const uint32_t *)p[5];
	g_tabs.iq1s = (const uint64_t *)p[6];
	g_tabs.iq4nl = (const int8_t *)p[7];
	g_tabs.fp4 = (const int8_t *)p[8];
	CKB(cublasCreate(&g_cublas));
	// Default math: F16/BF16 GEMMs on the tensor cores with F32 accumulation,
	// F32 GEMMs in true F32 (TF32 is opt-in, and never enabled here; pedantic
	// mode would also keep F16 off the tensor cores).
	CKB(cublasSetMathMode(g_cublas, CUBLAS_DEFAULT_MATH));
	g_inited = 1;
	return 0;
}

int cuda_init(infer_error *err)
{
	int rc = 0;

	pthread_mutex_lock(&g_init_lock);
	if (!g_inited)
		rc = init_locked(err);
	pthread_mutex_unlock(&g_init_lock);
	return rc;
}

const iq_tabs &cuda_tabs(void)
{
	return g_tabs;
}

int cuda_cublas(cublasHandle_t *h, infer_error *err)
{
	int rc = cuda_init(err);

	*h = g_cublas;
	return rc;
}

int cuda_type_block(uint32_t type, int *bs, int *ts)
{
	int ok = 0;
#define BS_OF(T)             \
	do {                 \
		*bs = T::BS; \
		*ts = T::TS; \
		ok = 1;      \
	} while (0)
	QTYPE_DISPATCH(type, BS_OF)
#undef BS_OF
	return ok;
}

const char *cuda_type_name(uint32_t type)
{
	static const char *names[43] = {
		"f32", "f16", "q4_0", "q4_1", NULL, NULL, "q5_0", "q5_1", "q8_0", "q8_1",
		"q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "q8_K", "iq2_xxs", "iq2_xs", "iq3_xxs",
		"iq1_s", "iq4_nl", "iq3_s", "iq2_s", "iq4_xs", "i8", "i16", "i32", "i64", "f64",
		"iq1_m", "bf16", NULL, NULL, NULL, "tq1_0", "tq2_0", NULL, NULL, NULL, "mxfp4",
		"nvfp4", "q1_0", "q2_0",
	};

	if (type >= 43 || !names[type])
		return "unknown";
	return names[type];
}

extern "C" double infer_cuda_peak_bandwidth(infer_error *err)
{
	const size_t n = (size_t)1 << 30;
	void *a = NULL, *b = NULL;
	cudaEvent_t e0 = NULL, e1 = NULL;
	float ms[5];
	double bw = 0;
	int rc = cuda_init(err);

	if (rc)
		return 0;
	CKG(cudaMalloc(&a, n));
	CKG(cudaMalloc(&b, n));
	CKG(cudaMemset(a, 1, n));
	CKG(cudaEventCreate(&e0));
	CKG(cudaEventCreate(&e1));
	CKG(cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice)); // warm-up
	for (int i = 0; i < 5; i++) {
		CKG(cudaEventRecord(e0));
		CKG(cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice));
		CKG(cudaEventRecord(e1));
		CKG(cudaEventSynchronize(e1));
		CKG(cudaEventElapsedTime(&ms[i], e0, e1));
	}
	for (int i = 0; i < 5; i++) // median of five by insertion sort
		for (int j = i; j > 0 && ms[j] < ms[j - 1]; j--) {
			float t = ms[j];
			ms[j] = ms[j - 1];
			ms[j - 1] = t;
		}
	bw = 2.0 * (double)n / (ms[2] * 1e-3);
out:
	cudaFree(a);
	cudaFree(b);
	if (e0)
		cudaEventDestroy(e0);
	if (e1)
		cudaEventDestroy(e1);
	return rc ? 0 : bw;
}

extern "C" int infer_cuda_mem_info(uint64_t *used, uint64_t *total, infer_error *err)
{
	size_t fr = 0, tot = 0;
	int rc = cuda_init(err);

	if (rc)
		return rc;
	CK(cudaMemGetInfo(&fr, &tot));
	*used = tot - fr;
	*total = tot;
	return 0;
}
