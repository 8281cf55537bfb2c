// Device discovery for the CUDA backend.
#include <cuda_runtime.h>
#include <stdio.h>

#include "infer_cuda.h"

static char g_device_name[256];

extern "C" int infer_cuda_available(infer_error *err)
{
	int n = 0;
	cudaError_t e = cudaGetDeviceCount(&n);
	if (e != cudaSuccess) {
		infer_error_set(err, INFER_E_NODEVICE, -1, "no CUDA device: %s", cudaGetErrorString(e));
		return 0;
	}
	if (n == 0) {
		infer_error_set(err, INFER_E_NODEVICE, -1, "no CUDA device: device count is 0");
		return 0;
	}
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
