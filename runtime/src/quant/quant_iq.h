/* Dequantizers of the grid-based i-quant family (iq2_xxs, iq2_xs, iq2_s,
 * iq3_xxs, iq3_s, iq1_s, iq1_m), implemented in iq_grid.c / iq_*.c and
 * registered in the type table (quant.c). */
#ifndef INFER_QUANT_IQ_H
#define INFER_QUANT_IQ_H

#include <stdint.h>

int dequant_iq2_xxs(const void *src, float *dst, int64_t n);
int dequant_iq2_xs(const void *src, float *dst, int64_t n);
int dequant_iq2_s(const void *src, float *dst, int64_t n);
int dequant_iq3_xxs(const void *src, float *dst, int64_t n);
int dequant_iq3_s(const void *src, float *dst, int64_t n);
int dequant_iq1_s(const void *src, float *dst, int64_t n);
int dequant_iq1_m(const void *src, float *dst, int64_t n);

#endif
