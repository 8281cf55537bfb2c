/* Grid i-quants: iq2_xxs, iq2_xs, iq2_s, iq3_xxs, iq3_s, iq1_s, iq1_m.
 *
 * Each group of 8 (or 4) elements is an index into a fixed grid of
 * magnitudes (iq_tables.c) plus sign bits; a 4-bit (or 3-bit) sub-scale per
 * 32 elements multiplies an fp16 super-scale. Float operations keep ggml's
 * order: sub-scale first, then scale * grid value, then the sign. */
#include "quant_internal.h"

/* Byte j of a packed grid entry (element j of the group). */
static inline int grid8(uint64_t e, int j)
{
	return (int)((e >> (8 * j)) & 0xff);
}

/* Eight elements db * grid[j], negated where bit j of signs is set.
 * Negation is a flip of the sign bit (exactly what -v is, -0.0 included),
 * done without a branch. */
static inline void put8(float *y, float db, uint64_t grid, uint8_t signs)
{
	for (int j = 0; j < 8; j++) {
		const float v = db * grid8(grid, j);

		y[j] = f32_from_bits(f32_bits(v) ^ ((uint32_t)(signs >> j) & 1u) << 31);
	}
}

/* Two 4-element grid entries (iq3 grids) as one group of 8. */
static inline uint64_t join4(uint32_t a, uint32_t b)
{
	return (uint64_t)a | ((uint64_t)b << 32);
}

int dequant_iq2_xxs(const void *src, float *dst, int64_t n)
{
	const block_iq2_xxs *b = src;

	for (int64_t i = 0; i < n / QK_K; i++, b++) {
		const float d = half_le(b->d);

		for (int ib = 0; ib < 8; ib++) {
			const uint8_t *g = b->qs + 8 * ib;  /* 4 grid indices */
			const uint32_t aux = le32(g + 4);   /* 4 x 7 sign bits, scale in 28..31 */
			const float db = d * (0.5f + (aux >> 28)) * 0.25f;

			for (int l = 0; l < 4; l++, dst += 8)
				put8(dst, db, iq2xxs_grid[g[l]], iq_ksigns[(aux >> (7 * l)) & 127]);
		}
	}
	return 0;
}

int dequant_iq2_xs(const void *src, float *dst, int64_t n)
{
	const block_iq2_xs *b = src;

	for (int64_t i = 0; i < n / QK_K; i++, b++) {
		const float d = half_le(b->d);

		for (int ib = 0; ib < 8; ib++) {
			const float db[2] = {
				d * (0.5f + (b->scales[ib] & 0x0f)) * 0.25f,
				d * (0.5f + (b->scales[ib] >> 4)) * 0.25f,
			};

			for (int l = 0; l < 4; l++, dst += 8) {
				const uint16_t v = le16(b->qs + 2 * (4 * ib + l));

				put8(dst, db[l / 2], iq2xs_grid[v & 511], iq_ksigns[v >> 9]);
			}
		}
	}
	return 0;
}

int dequant_iq2_s(const void *src, float *dst, int64_t n)
{
	const block_iq2_s *b = src;

	for (int64_t i = 0; i < n / QK_K; i++, b++) {
		const float d = half_le(b->d);
		const uint8_t *signs = b->qs + QK_K / 8;

		for (int ib = 0; ib < 8; ib++) {
			const float db[2] = {
				d * (0.5f + (b->scales[ib] & 0x0f)) * 0.25f,
				d * (0.5f + (b->scales[ib] >> 4)) * 0.25f,
			};

			for (int l = 0; l < 4; l++, dst += 8) {
				/* 10-bit index: 8 bits in qs, 2 bits of qh per group. */
				const int idx = b->qs[4 * ib + l] |
						((b->qh[ib] << (8 - 2 * l)) & 0x300);

				put8(dst, db[l / 2], iq2s_grid[idx], signs[4 * ib + l]);
			}
		}
	}
	return 0;
}

int dequant_iq3_xxs(const void *src, float *dst, int64_t n)
{
	const block_iq3_xxs *b = src;

	for (int64_t i = 0; i < n / QK_K; i++, b++) {
		const float d = half_le(b->d);
		const uint8_t *sas = b->qs + QK_K / 4; /* scales and signs */

		for (int ib = 0; ib < 8; ib++) {
			const uint8_t *g = b->qs + 8 * ib;
			const uint32_t aux = le32(sas + 4 * ib);
			const float db = d * (0.5f + (aux >> 28)) * 0.5f;

			for (int l = 0; l < 4; l++, dst += 8)
				put8(dst, db,
				     join4(iq3xxs_grid[g[2 * l]], iq3xxs_grid[g[2 * l + 1]]),
				     iq_ksigns[(aux >> (7 * l)) & 127]);
		}
	}
	return 0;
}

int dequant_iq3_s(const void *src, float *dst, int64_t n)
{
	const block_iq3_s *b = src;

	for (int64_t i = 0; i < n / QK_K; i++, b++) {
		const float d = half_le(b->d);

		/* ib: 32-element group (0..7); scales hold one nibble per group,
		 * qh one byte per group (the 9th bit of its 8 grid indices). */
		for (int ib = 0; ib < 8; ib++) {
			const int s = (b->scales[ib / 2] >> (4 * (ib % 2))) & 0x0f;
			const float db = d * (1 + 2 * s);
			const uint8_t *qs = b->qs + 8 * ib;
			const uint8_t qh = b->qh[ib];

			for (int l = 0; l < 4; l++, dst += 8) {
				const int i1 = qs[2 * l] | ((qh << (8 - 2 * l)) & 256);
				const int i2 = qs[2 * l + 1] | ((qh << (7 - 2 * l)) & 256);

				put8(dst, db, join4(iq3s_grid[i1], iq3s_grid[i2]),
				     b->signs[4 * ib + l]);
			}
		}
	}
	return 0;
}

/* Eight elements dl * (grid[j] + delta), grid bytes being int8 -1/0/1. */
static inline void put8_iq1(float *y, float dl, uint64_t grid, float delta)
{
	for (int j = 0; j < 8; j++)
		y[j] = dl * ((int8_t)grid8(grid, j) + delta);
}

#define IQ1_DELTA 0.125f

int dequant_iq1_s(const void *src, float *dst, int64_t n)
{
	const block_iq1_s *b = src;

	for (int64_t i = 0; i < n / QK_K; i++, b++) {
		const float d = half_le(b->d);

		for (int ib = 0; ib < 8; ib++) {
			const uint16_t qh = le16(b->qh + 2 * ib);
			const float dl = d * (2 * ((qh >> 12) & 7) + 1);
			const float delta = qh & 0x8000 ? -IQ1_DELTA : IQ1_DELTA;

			for (int l = 0; l < 4; l++, dst += 8) {
				const int idx = b->qs[4 * ib + l] | (((qh >> (3 * l)) & 7) << 8);

				put8_iq1(dst, dl, iq1s_grid[idx], delta);
			}
		}
	}
	return 0;
}

int dequant_iq1_m(const void *src, float *dst, int64_t n)
{
	const block_iq1_m *b = src;

	for (int64_t i = 0; i < n / QK_K; i++, b++) {
		uint16_t sc[4];

		for (int k = 0; k < 4; k++)
			sc[k] = le16(b->scales + 2 * k);
		/* No scale field: the fp16 super-scale is the top nibbles of sc[0..3]. */
		const uint16_t dbits = (uint16_t)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) |
						  ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000));
		const float d = infer_fp16_to_fp32(dbits);

		for (int ib = 0; ib < 8; ib++) {
			const int sh = 6 * (ib % 2);
			const float dl[2] = {
				d * (2 * ((sc[ib / 2] >> sh) & 7) + 1),
				d * (2 * ((sc[ib / 2] >> (sh + 3)) & 7) + 1),
			};
			const uint8_t *qs = b->qs + 4 * ib;
			const uint8_t *qh = b->qh + 2 * ib;

			/* Group l: index high bits and delta sign from nibble l%2 of qh[l/2]. */
			for (int l = 0; l < 4; l++, dst += 8) {
				const uint8_t h = (uint8_t)(qh[l / 2] >> (4 * (l % 2)));
				const int idx = qs[l] | ((h & 7) << 8);
				const float delta = h & 0x08 ? -IQ1_DELTA : IQ1_DELTA;

				put8_iq1(dst, dl[l / 2], iq1s_grid[idx], delta);
			}
		}
	}
	return 0;
}
