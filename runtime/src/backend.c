/* Backend dispatch by name: "cpu" is always here; "cuda" only when the build
 * found nvcc (INFER_HAVE_CUDA) and a device answers. Anything else is an
 * error that says why, never a quiet switch to another backend. */
#include <string.h>

#include "infer/backend.h"
#include "ops_cpu.h"

#ifdef INFER_HAVE_CUDA
#include "infer_cuda.h"
#endif

int infer_backend_available(const char *name, infer_error *err)
{
	if (!name || !strcmp(name, "cpu"))
		return 1;
	if (strcmp(name, "cuda")) {
		infer_error_set(err, INFER_E_ARG, -1, "unknown backend '%s' (cpu or cuda)", name);
		return 0;
	}
#ifdef INFER_HAVE_CUDA
	return infer_cuda_available(err);
#else
	infer_error_set(err, INFER_E_NODEVICE, -1, "backend cuda: built without CUDA");
	return 0;
#endif
}

const infer_ops *infer_backend_ops(const char *name, infer_error *err)
{
	if (!infer_backend_available(name, err))
		return NULL;
	if (!name || !strcmp(name, "cpu"))
		return &infer_ops_cpu;
#ifdef INFER_HAVE_CUDA
	return infer_cuda_ops(err);
#else
	return NULL; /* unreachable: available() said no */
#endif
}

const char *infer_backend_device_name(const char *name)
{
	if (!name || !strcmp(name, "cpu"))
		return "cpu";
#ifdef INFER_HAVE_CUDA
	if (!strcmp(name, "cuda"))
		return infer_cuda_device_name();
#endif
	return "";
}
