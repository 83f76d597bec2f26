/* 2×2 max pooling with stride 2 (floor mode) over float32 planes, forward and backward, with
 * the results of torch's CPU max_pool2d to the last bit.
 *
 * torch's kernel (aten/src/ATen/native/cpu/MaxPoolKernel.cpp) scans a window row by row and
 * takes an entry when it is larger than the running maximum or NaN; its backward pass adds each
 * output's gradient to the entry taken, into zeros (so a gradient of −0 arrives as +0). Here a
 * window's entries a = x[2i][2j], b = x[2i][2j+1], c = x[2i+1][2j], d = x[2i+1][2j+1] are
 * scanned in that order by the same rule. The backward pass scans the input again to find the
 * entry taken instead of reading it from memory (storing it slowed the forward loop eightfold)
 * and writes all four entries of a window: the gradient at the one taken, +0 at the others.
 * NaN tests and the sign of zero are handled on the bits, since the library is built with
 * -ffinite-math-only and -fno-signed-zeros. The loops are branch-free, so they vectorise.
 *
 * torch's CPU max_pool2d spent about 5 ms of a 19 ms LeNet-5 training step (batch 100, 2
 * threads) on the first pooling layer alone.
 */
#include <stdint.h>

typedef union {
    float f;
    uint32_t u;
} float_bits; /* a float's bits: reading the other member of a union is defined in C */

static inline uint32_t bits_of(float v) { return ((float_bits){.f = v}).u; }

static inline int is_nan_bits(float v) { return (bits_of(v) & 0x7fffffffu) > 0x7f800000u; }

/* The index k (0-3) of the entry torch's scan takes in window j of rows r0 and r1, and its
 * value m. */
#define SCAN_WINDOW                                                                          \
    float m = r0[2 * j], b = r0[2 * j + 1], c = r1[2 * j], d = r1[2 * j + 1];               \
    int k = 0, take;                                                                         \
    take = (b > m) | is_nan_bits(b);                                                         \
    m = take ? b : m;                                                                        \
    k = take ? 1 : k;                                                                        \
    take = (c > m) | is_nan_bits(c);                                                         \
    m = take ? c : m;                                                                        \
    k = take ? 2 : k;                                                                        \
    take = (d > m) | is_nan_bits(d);                                                         \
    m = take ? d : m;                                                                        \
    k = take ? 3 : k;

/* x: planes × h × w (contiguous); out: planes × (h/2) × (w/2). No two arrays overlap. */
void maxpool2x2_forward(const float *restrict x, int64_t planes, int64_t h, int64_t w,
                        float *restrict out, int threads) {
    int64_t oh = h / 2, ow = w / 2;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t p = 0; p < planes; p++) {
        const float *restrict xp = x + p * h * w;
        float *restrict op = out + p * oh * ow;
        for (int64_t i = 0; i < oh; i++) {
            const float *restrict r0 = xp + 2 * i * w, *restrict r1 = r0 + w;
#pragma omp simd
            for (int64_t j = 0; j < ow; j++) {
                SCAN_WINDOW
                (void)k;
                op[i * ow + j] = m;
            }
        }
    }
}

/* grad_in (planes × h × w) = 0 everywhere, plus 0 + grad_out at the entry each window takes of
 * x; h and w even. The two entries of a window's row are written as one 64-bit word (the first in
 * the low half: little-endian), so the stores are contiguous and the loop vectorises. */
void maxpool2x2_backward(const float *restrict x, const float *restrict grad_out, int64_t planes,
                         int64_t h, int64_t w, float *restrict grad_in, int threads) {
    int64_t oh = h / 2, ow = w / 2;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t p = 0; p < planes; p++) {
        const float *restrict xp = x + p * h * w;
        const float *restrict go = grad_out + p * oh * ow;
        float *restrict gp = grad_in + p * h * w;
        for (int64_t i = 0; i < oh; i++) {
            const float *restrict r0 = xp + 2 * i * w, *restrict r1 = r0 + w;
            const float *restrict gr = go + i * ow;
            uint64_t *restrict g0 = (uint64_t *)(gp + 2 * i * w);
            uint64_t *restrict g1 = (uint64_t *)(gp + (2 * i + 1) * w);
#pragma omp simd
            for (int64_t j = 0; j < ow; j++) {
                SCAN_WINDOW
                (void)m;
                uint32_t gb = bits_of(gr[j]);
                uint64_t v = (gb & 0x7fffffffu) ? gb : 0u; /* 0 + (−0) = +0 */
                g0[j] = (k == 0 ? v : 0u) | (k == 1 ? v << 32 : 0u);
                g1[j] = (k == 2 ? v : 0u) | (k == 3 ? v << 32 : 0u);
            }
        }
    }
}
