/* UTF-8, code point classes and the GPT-2 byte-level mapping. */
#include "unicode.h"

enum uclass ucd_class(uint32_t cp)
{
	size_t lo = 0, hi = ucd_n_ranges;

	/* Binary search over the sorted, disjoint ranges. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (cp < ucd_ranges[mid].lo)
			hi = mid;
		else if (cp > ucd_ranges[mid].hi)
			lo = mid + 1;
		else
			return (enum uclass)ucd_ranges[mid].cls;
	}
	return UCLASS_OTHER;
}

static int is_cont(unsigned char c)
{
	return (c & 0xC0) == 0x80;
}

uint32_t utf8_decode_lenient(const unsigned char *s, size_t n, size_t *len)
{
	unsigned char c = s[0];
	size_t need, i;
	uint32_t cp;

	*len = 1;
	if (c < 0x80)
		return c;
	if ((c & 0xE0) == 0xC0) {
		need = 2;
		cp = c & 0x1F;
	} else if ((c & 0xF0) == 0xE0) {
		need = 3;
		cp = c & 0x0F;
	} else if ((c & 0xF8) == 0xF0) {
		need = 4;
		cp = c & 0x07;
	} else {
		return UNICODE_REPLACEMENT; /* continuation byte or 0xF8.. as lead */
	}
	if (need > n)
		return UNICODE_REPLACEMENT;
	for (i = 1; i < need; i++) {
		if (!is_cont(s[i]))
			return UNICODE_REPLACEMENT;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if (cp > 0x10FFFF)
		return UNICODE_REPLACEMENT;
	*len = need;
	return cp;
}

int utf8_valid_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the 2nd byte */
	size_t need, i;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		need = 2;
	} else if (c >= 0xE0 && c <= 0xEF) {
		need = 3;
		if (c == 0xE0)
			lo = 0xA0; /* overlong */
		if (c == 0xED)
			hi = 0x9F; /* surrogates */
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 4;
		if (c == 0xF0)
			lo = 0x90; /* overlong */
		if (c == 0xF4)
			hi = 0x8F; /* > U+10FFFF */
	} else {
		return 0;
	}
	for (i = 1; i < need; i++) {
		if (i >= n)
			return -1;
		if (i == 1 ? (s[i] < lo || s[i] > hi) : !is_cont(s[i]))
			return 0;
	}
	return (int)need;
}

size_t unicode_utf8_encode(uint32_t cp, char out[4])
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* GPT-2's bytes_to_unicode(): printable Latin-1 bytes stand for themselves,
 * the other 68 bytes are numbered 256, 257, ... in byte order: 0x00-0x20
 * (33 of them), 0x7F-0xA0 (34) and 0xAD (soft hyphen). So no token text has
 * whitespace or control characters in it. Closed forms keep both directions
 * O(1): decoding a 151k-token vocabulary calls them for every character. */
uint32_t bytelevel_cp(uint8_t b)
{
	if (b <= 0x20)
		return 256 + b;
	if (b >= 0x7F && b <= 0xA0)
		return 256 + 33 + (b - 0x7F);
	if (b == 0xAD)
		return 256 + 67;
	return b;
}

int bytelevel_byte(uint32_t cp)
{
	if (cp < 256)
		return (cp <= 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0xAD) ? -1 : (int)cp;
	if (cp < 256 + 33)
		return (int)(cp - 256);
	if (cp < 256 + 67)
		return (int)(0x7F + cp - 256 - 33);
	if (cp == 256 + 67)
		return 0xAD;
	return -1;
}
