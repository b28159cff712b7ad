/*
 * Multibase: text encodings of binary CIDs, selected by a one-character
 * prefix (b/B base32, z base58btc, f/F base16, k/K base36).
 *
 * base32 and base16 are bit-packing encodings and run in linear time.
 * base58 and base36 are positional (the bytes read as one big number), done
 * here with the usual quadratic carry loop; that is fine for CIDs, and the
 * input length is capped so a hostile string cannot make it slow. Decoders
 * name the base and the offending character's offset in the whole string.
 */
#include <stdlib.h>
#include <string.h>

#include "ipfs/ipfs_internal.h"

#define POSITIONAL_MAX_CHARS 4096

static const char b32_lower[] = "abcdefghijklmnopqrstuvwxyz234567";
static const char b32_upper[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
static const char b58_alpha[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
static const char b36_lower[] = "0123456789abcdefghijklmnopqrstuvwxyz";
static const char b36_upper[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
static const char hex_lower[] = "0123456789abcdef";
static const char hex_upper[] = "0123456789ABCDEF";

/* Index of c in alphabet (of `radix` characters), or -1. */
static int alpha_index(const char *alphabet, int radix, char c) {
    for (int i = 0; i < radix; i++)
        if (alphabet[i] == c)
            return i;
    return -1;
}

/* ---- positional bases (58, 36) ------------------------------------------------ */

static ia_status positional_encode(const char *alphabet, int radix, char prefix,
                                   const uint8_t *data, size_t len, char **out) {
    size_t zeros = 0;
    while (zeros < len && data[zeros] == 0)
        zeros++;
    /* log(256)/log(36) < 1.55: a generous bound for both radixes. */
    size_t cap = (len - zeros) * 155 / 100 + 1;
    uint8_t *digits = ia_calloc(cap ? cap : 1, 1);
    char *s = NULL;
    if (!digits)
        return IA_ENOMEM;
    size_t n = 0; /* digits used, little-endian */
    for (size_t i = zeros; i < len; i++) {
        unsigned carry = data[i];
        for (size_t j = 0; j < n; j++) {
            carry += (unsigned)digits[j] << 8;
            digits[j] = (uint8_t)(carry % (unsigned)radix);
            carry /= (unsigned)radix;
        }
        while (carry) {
            digits[n++] = (uint8_t)(carry % (unsigned)radix);
            carry /= (unsigned)radix;
        }
    }
    size_t total = (prefix ? 1 : 0) + zeros + n;
    if (!(s = ia_malloc(total + 1))) {
        free(digits);
        return IA_ENOMEM;
    }
    size_t k = 0;
    if (prefix)
        s[k++] = prefix;
    for (size_t i = 0; i < zeros; i++)
        s[k++] = alphabet[0];
    for (size_t i = 0; i < n; i++)
        s[k++] = alphabet[(unsigned char)digits[n - 1 - i]];
    s[k] = 0;
    free(digits);
    *out = s;
    return IA_OK;
}

/* str (len characters) without its prefix; `offset` is where it starts in
 * the caller's string, for messages. */
static ia_status positional_decode(const char *name, const char *alphabet, int radix,
                                   const char *str, size_t len, size_t offset, uint8_t **out,
                                   size_t *out_len) {
    if (len > POSITIONAL_MAX_CHARS)
        return ia_error_set(IA_ERANGE, "%s: %zu characters is longer than the %d we decode", name,
                            len, POSITIONAL_MAX_CHARS);
    size_t zeros = 0;
    while (zeros < len && str[zeros] == alphabet[0])
        zeros++;
    size_t cap = len + 1; /* each character adds less than one byte */
    uint8_t *bytes = ia_calloc(cap, 1);
    if (!bytes)
        return IA_ENOMEM;
    size_t n = 0; /* bytes used, little-endian */
    for (size_t i = zeros; i < len; i++) {
        int d = alpha_index(alphabet, radix, str[i]);
        if (d < 0) {
            free(bytes);
            unsigned char c = (unsigned char)str[i];
            if (c >= 0x20 && c < 0x7f)
                return ia_error_set(IA_EPARSE, "%s: invalid character '%c' at offset %zu", name, c,
                                    offset + i);
            return ia_error_set(IA_EPARSE, "%s: invalid byte 0x%02x at offset %zu", name, c,
                                offset + i);
        }
        unsigned carry = (unsigned)d;
        for (size_t j = 0; j < n; j++) {
            carry += (unsigned)bytes[j] * (unsigned)radix;
            bytes[j] = (uint8_t)carry;
            carry >>= 8;
        }
        while (carry) {
            bytes[n++] = (uint8_t)carry;
            carry >>= 8;
        }
    }
    uint8_t *res = ia_malloc(zeros + n ? zeros + n : 1);
    if (!res) {
        free(bytes);
        return IA_ENOMEM;
    }
    memset(res, 0, zeros);
    for (size_t i = 0; i < n; i++)
        res[zeros + i] = bytes[n - 1 - i];
    free(bytes);
    *out = res;
    *out_len = zeros + n;
    return IA_OK;
}

/* ---- base32 (RFC 4648, no padding) ---------------------------------------------- */

static ia_status base32_encode(const uint8_t *data, size_t len, char **out) {
    size_t chars = (len * 8 + 4) / 5;
    char *s = ia_malloc(chars + 2);
    if (!s)
        return IA_ENOMEM;
    size_t k = 0;
    s[k++] = 'b';
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | data[i];
        bits += 8;
        while (bits >= 5) {
            s[k++] = b32_lower[(acc >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0)
        s[k++] = b32_lower[(acc << (5 - bits)) & 31];
    s[k] = 0;
    *out = s;
    return IA_OK;
}

static ia_status bitwise_decode(const char *name, const char *alphabet, int radix, int width,
                                const char *str, size_t len, size_t offset, uint8_t **out,
                                size_t *out_len) {
    size_t nbytes = len * (size_t)width / 8;
    size_t rem_bits = len * (size_t)width % 8;
    /* A final group that cannot hold a whole byte's worth of bits is not a
     * length any encoder produces (base32: 1, 3 or 6 characters mod 8). */
    if (rem_bits >= (size_t)width)
        return ia_error_set(IA_EPARSE, "%s: %zu characters is not a valid length", name, len);
    uint8_t *res = ia_malloc(nbytes ? nbytes : 1);
    if (!res)
        return IA_ENOMEM;
    uint32_t acc = 0;
    int bits = 0;
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        int d = alpha_index(alphabet, radix, str[i]);
        if (d < 0) {
            free(res);
            unsigned char c = (unsigned char)str[i];
            if (c >= 0x20 && c < 0x7f)
                return ia_error_set(IA_EPARSE, "%s: invalid character '%c' at offset %zu", name, c,
                                    offset + i);
            return ia_error_set(IA_EPARSE, "%s: invalid byte 0x%02x at offset %zu", name, c,
                                offset + i);
        }
        acc = (acc << width) | (uint32_t)d;
        bits += width;
        if (bits >= 8) {
            res[k++] = (uint8_t)(acc >> (bits - 8));
            bits -= 8;
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) {
        free(res);
        return ia_error_set(IA_EPARSE, "%s: the last character has non-zero padding bits", name);
    }
    *out = res;
    *out_len = k;
    return IA_OK;
}

/* ---- base16 ----------------------------------------------------------------------- */

static ia_status base16_encode(const uint8_t *data, size_t len, char **out) {
    size_t total;
    if (!ia_size_mul(len, 2, &total) || !ia_size_add(total, 2, &total))
        return ia_error_set(IA_ENOMEM, "base16: %zu bytes is too long to encode", len);
    char *s = ia_malloc(total);
    if (!s)
        return IA_ENOMEM;
    s[0] = 'f';
    for (size_t i = 0; i < len; i++) {
        s[1 + 2 * i] = hex_lower[data[i] >> 4];
        s[2 + 2 * i] = hex_lower[data[i] & 15];
    }
    s[1 + 2 * len] = 0;
    *out = s;
    return IA_OK;
}

/* ---- public --------------------------------------------------------------------------- */

ia_status ia_multibase_encode(ia_multibase base, const uint8_t *data, size_t len, char **out) {
    switch (base) {
    case IA_BASE32:
        return base32_encode(data, len, out);
    case IA_BASE58BTC:
        return positional_encode(b58_alpha, 58, 'z', data, len, out);
    case IA_BASE16:
        return base16_encode(data, len, out);
    case IA_BASE36:
        return positional_encode(b36_lower, 36, 'k', data, len, out);
    }
    return ia_error_set(IA_EINVAL, "multibase: unsupported base '%c'", (char)base);
}

ia_status ia_multibase_decode(const char *str, uint8_t **out, size_t *out_len, ia_multibase *base) {
    size_t len = strlen(str);
    if (len == 0)
        return ia_error_set(IA_EPARSE, "multibase: empty string");
    const char *body = str + 1;
    size_t n = len - 1;
    ia_status st;
    ia_multibase b;
    switch (str[0]) {
    case 'b':
        b = IA_BASE32;
        st = bitwise_decode("base32", b32_lower, 32, 5, body, n, 1, out, out_len);
        break;
    case 'B':
        b = IA_BASE32;
        st = bitwise_decode("base32upper", b32_upper, 32, 5, body, n, 1, out, out_len);
        break;
    case 'z':
        b = IA_BASE58BTC;
        st = positional_decode("base58btc", b58_alpha, 58, body, n, 1, out, out_len);
        break;
    case 'f':
        b = IA_BASE16;
        st = bitwise_decode("base16", hex_lower, 16, 4, body, n, 1, out, out_len);
        break;
    case 'F':
        b = IA_BASE16;
        st = bitwise_decode("base16upper", hex_upper, 16, 4, body, n, 1, out, out_len);
        break;
    case 'k':
        b = IA_BASE36;
        st = positional_decode("base36", b36_lower, 36, body, n, 1, out, out_len);
        break;
    case 'K':
        b = IA_BASE36;
        st = positional_decode("base36upper", b36_upper, 36, body, n, 1, out, out_len);
        break;
    default: {
        unsigned char c = (unsigned char)str[0];
        if (c >= 0x20 && c < 0x7f)
            return ia_error_set(IA_EUNSUPPORTED,
                                "multibase: unknown or unsupported prefix '%c' (supported: b, B, "
                                "z, f, F, k, K)",
                                c);
        return ia_error_set(IA_EUNSUPPORTED, "multibase: unknown prefix byte 0x%02x", c);
    }
    }
    if (st == IA_OK && base)
        *base = b;
    return st;
}

ia_status ia_base58btc_encode(const uint8_t *data, size_t len, char **out) {
    return positional_encode(b58_alpha, 58, 0, data, len, out);
}

ia_status ia_base58btc_decode(const char *str, uint8_t **out, size_t *out_len) {
    return positional_decode("base58btc", b58_alpha, 58, str, strlen(str), 0, out, out_len);
}
