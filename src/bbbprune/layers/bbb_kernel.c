/* Fused Bayes-by-Backprop weight sampling with its Monte Carlo KL (CPU, float32).
 *
 * For every element j: sigma_j = softplus(rho_j), eps_j ~ N(0,1), w_j = mu_j + sigma_j eps_j and
 *   KL ≈ Σ_j [log q(w_j) − log p(w_j)],  log q(w_j) = −½ log 2π − log sigma_j − eps_j² / 2,
 *   log p(w) = logaddexp(h1 w² + c1, h2 w² + c2)   (scale mixture; Gaussian: one component),
 * with h_k = −1/(2 s_k²) and c_k = log(pi_k) − log s_k − ½ log 2π.
 *
 * eps comes from a counter-based generator: a 32-bit hash of (pair index, key) per uniform, two
 * uniforms per pair, Box–Muller giving both R·cos θ and R·sin θ (block layout in
 * normals_block). The forward pass stores eps for the backward pass, which recomputes
 * t = e^−|rho| (one exp per weight costs less than writing and reading t back) and returns
 *   d/dmu  = g + c · dKL/dw,
 *   d/drho = (g + c · dKL/dw) · eps · sigmoid(rho) − c · sigmoid(rho) / sigma,
 * with g = (dL/dw_out) · mask, c = dL/dKL and dKL/dw = −2 w (h1 r1 + h2 r2), r the mixture
 * responsibilities. One pass over memory each way; OpenMP threads; vectorised by the compiler.
 *
 * The elementary functions are written out below (exp, log, sin/cos of 2πu, and polynomials
 * for log(1 + t)/t and its log on [0, 1]), so the loops vectorise with no vector math library
 * and give the same bits wherever the compiler emits the same instructions. Accuracy, measured
 * against double precision over their whole input ranges: exp ≤ 1.01 ulp, log ≤ 0.77 ulp,
 * sin/cos ≤ 1.1e-7 absolute, log(1 + t)/t ≤ 1.5e-7 relative, its log ≤ 8e-8 absolute.
 *
 * The kernel is built without -ffast-math: with it gcc links crtfastmath, which switches on
 * flush-to-zero and denormals-are-zero for the whole process that loads the library.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float float_from_bits(uint32_t b) {
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

static inline uint32_t bits_of_float(float f) {
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

/* e^x for x clamped to [−87, 88]: x = n·ln 2 + r with |r| ≤ ½ ln 2 (ln 2 split in two parts),
 * e^r by a degree-6 polynomial (Cephes expf), 2^n put into the exponent bits. */
static inline float exp_f(float x) {
    x = fminf(fmaxf(x, -87.0f), 88.0f);
    float n = __builtin_rintf(x * 1.44269504088896341f);
    float r = fmaf(n, -0.693359375f, x);
    r = fmaf(n, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    p = fmaf(p, r * r, r) + 1.0f;
    return p * float_from_bits((uint32_t)((int32_t)n + 127) << 23);
}

/* log x for finite, normal x > 0: x = m·2^e with m in [√½, √2), log(1 + f) with f = m − 1 by a
 * degree-9 polynomial (Cephes logf), e·ln 2 added in two parts. */
static inline float log_f(float x) {
    uint32_t b = bits_of_float(x);
    int32_t e = (int32_t)(b >> 23) - 126; /* x = m·2^e, m in [½, 1) */
    float m = float_from_bits((b & 0x007fffffu) | 0x3f000000u);
    int below = m < 0.707106781186547524f;
    float f = below ? m + m - 1.0f : m - 1.0f;
    float fe = (float)(below ? e - 1 : e);
    float z = f * f;
    float y = 7.0376836292e-2f;
    y = fmaf(y, f, -1.1514610310e-1f);
    y = fmaf(y, f, 1.1676998740e-1f);
    y = fmaf(y, f, -1.2420140846e-1f);
    y = fmaf(y, f, 1.4249322787e-1f);
    y = fmaf(y, f, -1.6668057665e-1f);
    y = fmaf(y, f, 2.0000714765e-1f);
    y = fmaf(y, f, -2.4999993993e-1f);
    y = fmaf(y, f, 3.3333331174e-1f);
    y = y * f * z;
    y = fmaf(fe, -2.12194440e-4f, y);
    y = fmaf(z, -0.5f, y);
    return fmaf(fe, 0.693359375f, f + y);
}

/* cos 2πu and sin 2πu for u in [0, 1]: the quadrant from round(4u), then Cephes' minimax
 * polynomials for sin and cos on [−π/4, π/4]. */
static inline void sincos_2pi(float u, float *c, float *s) {
    float q = __builtin_rintf(4.0f * u);
    float a = (u - 0.25f * q) * 6.28318530717958648f;
    float z = a * a;
    float sa = fmaf(a * z, fmaf(z, fmaf(z, -1.9515295891e-4f, 8.3321608736e-3f), -1.6666654611e-1f), a);
    float ca = fmaf(z * z, fmaf(z, fmaf(z, 2.443315711809948e-5f, -1.388731625493765e-3f), 4.166664568298827e-2f),
                    fmaf(z, -0.5f, 1.0f));
    int k = (int)q & 3;
    float cc = (k & 1) ? sa : ca, ss = (k & 1) ? ca : sa;
    *c = (k == 1 || k == 2) ? -cc : cc;
    *s = (k >= 2) ? -ss : ss;
}

/* log(1 + t) / t for t in [0, 1] (1 at t = 0): a degree-9 least-squares Chebyshev fit, relative
 * error ≤ 1.5e-7 in float. log(1 + t) = t · log1p_ratio(t) keeps full relative precision for
 * small t, which log(1 + t) computed as written does not. */
static inline float log1p_ratio(float t) {
    float p = -3.122631926e-03f;
    p = fmaf(p, t, 1.923410036e-02f);
    p = fmaf(p, t, -5.564564094e-02f);
    p = fmaf(p, t, 1.045168936e-01f);
    p = fmaf(p, t, -1.520185471e-01f);
    p = fmaf(p, t, 1.963349283e-01f);
    p = fmaf(p, t, -2.494404614e-01f);
    p = fmaf(p, t, 3.332868516e-01f);
    p = fmaf(p, t, -4.999983013e-01f);
    return fmaf(p, t, 1.0f);
}

/* log(log(1 + t) / t) for t in [0, 1]: degree-8 fit, absolute error ≤ 8e-8. For x ≤ 0,
 * softplus(x) = t · log1p_ratio(t) with t = e^x, so log softplus(x) = x + log_log1p_ratio(t). */
static inline float log_log1p_ratio(float t) {
    float p = 1.933194115e-03f;
    p = fmaf(p, t, -1.105653495e-02f);
    p = fmaf(p, t, 3.012859449e-02f);
    p = fmaf(p, t, -5.525406078e-02f);
    p = fmaf(p, t, 8.384789526e-02f);
    p = fmaf(p, t, -1.243868023e-01f);
    p = fmaf(p, t, 2.082722038e-01f);
    p = fmaf(p, t, -4.999973774e-01f);
    return fmaf(p, t, -2.804130972e-08f);
}

/* e^−|x| with the exponent clamped at −80 (e^−80 ≈ 1.8e−35, still a normal float) */
static inline float exp_neg_abs(float x) { return exp_f(fmaxf(-fabsf(x), -80.0f)); }

/* softplus(x) = max(x, 0) + log(1 + t), t = e^−|x| */
static inline float softplus_t(float x, float t) { return fmaxf(x, 0.0f) + t * log1p_ratio(t); }

/* sigmoid(x) from t = e^−|x| */
static inline float sigmoid_t(float x, float t) { return (x >= 0.0f ? 1.0f : t) / (1.0f + t); }

/* log(e^a + e^b) */
static inline float logaddexp_f(float a, float b) {
    float t = exp_neg_abs(a - b);
    return fmaxf(a, b) + t * log1p_ratio(t);
}

/* 1 / (1 + e^x), the exponent clamped to [−80, 80] */
static inline float inv1p_exp(float x) { return 1.0f / (1.0f + exp_f(fminf(fmaxf(x, -80.0f), 80.0f))); }

static inline uint32_t hash32(uint32_t x) { /* "lowbias32": a bijection on 32-bit integers */
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

#define BLOCK 2048

/* The standard normal draws of elements [start, stop), start a multiple of BLOCK, into buf.
 * With m = stop − start and half = ⌈m/2⌉, pair p = start/2 + k (k < half) gives
 * R = √(−2 log u1) and θ = 2π u2, from uniforms u1 in (0, 1) and u2 in [0, 1) hashed from
 * (2p, key) and (2p + 1, key); element start + k gets R cos θ and element start + half + k gets
 * R sin θ. For a fixed key, p -> (2p + lane)·φ XOR key is a bijection, and different keys are
 * not shifted copies of one another along p (as key + p would be). */
static inline void normals_block(uint32_t key, int64_t start, int64_t stop, float *buf) {
    int64_t half = (stop - start + 1) / 2;
    uint32_t first = (uint32_t)(start / 2);
#pragma omp simd
    for (int64_t k = 0; k < half; k++) {
        uint32_t pair = first + (uint32_t)k;
        uint32_t a = hash32(((2u * pair) * 0x9E3779B9U) ^ key);
        uint32_t b = hash32(((2u * pair + 1u) * 0x9E3779B9U) ^ key);
        float u1 = ((float)(a >> 8) + 0.5f) * 5.9604644775390625e-08f; /* (0, 1) */
        float u2 = (float)(b >> 8) * 5.9604644775390625e-08f;          /* [0, 1) */
        float radius = sqrtf(-2.0f * log_f(u1)), c, s;
        sincos_2pi(u2, &c, &s);
        buf[k] = radius * c;
        buf[half + k] = radius * s; /* buf[m] when m is odd: written, never read */
    }
}

void bbb_normal(float *out, int64_t n, uint32_t key, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t start = 0; start < n; start += BLOCK) {
        int64_t stop = start + BLOCK < n ? start + BLOCK : n;
        float buf[BLOCK];
        normals_block(key, start, stop, buf);
        memcpy(out + start, buf, (size_t)(stop - start) * sizeof(float));
    }
}

/* The loops are written once as macros and instantiated with and without a mask (and a
 * gradient), so that no branch on a possibly-NULL pointer stops the compiler vectorising.
 * Sums are accumulated in float within blocks of BLOCK elements (vectorised) and in double
 * across blocks, which keeps the KL accurate over millions of weights.
 * log sigma: for rho ≤ 0, sigma = t·log1p_ratio(t) with t = e^rho, so log sigma =
 * rho + log_log1p_ratio(t) needs no log; a block where some rho > 0 takes the same loop with
 * log_f(sigma) for those elements (the other elements get the same bits either way). */
#define FORWARD_LOOP(STORE)                                                          \
    _Pragma("omp parallel for num_threads(threads) schedule(static) reduction(+ : d_logsig, d_eps2, d_logp)") \
    for (int64_t start = 0; start < n; start += BLOCK) {                                     \
        int64_t stop = start + BLOCK < n ? start + BLOCK : n;                                \
        float buf[BLOCK];                                                                    \
        normals_block(key, start, stop, buf);                                                \
        float rho_max = -INFINITY;                                                           \
        _Pragma("omp simd reduction(max : rho_max)")                                         \
        for (int64_t j = start; j < stop; j++) rho_max = fmaxf(rho_max, rho[j]);             \
        float s_logsig = 0.0f, s_eps2 = 0.0f, s_logp = 0.0f;                                 \
        if (rho_max > 0.0f) {                                                                \
            _Pragma("omp simd reduction(+ : s_logsig, s_eps2, s_logp)")                      \
            for (int64_t j = start; j < stop; j++) {                                         \
                FORWARD_BODY(STORE, r > 0.0f ? log_f(sigma) : LOGSIG_NONPOSITIVE)            \
            }                                                                                \
        } else {                                                                             \
            _Pragma("omp simd reduction(+ : s_logsig, s_eps2, s_logp)")                      \
            for (int64_t j = start; j < stop; j++) {                                         \
                FORWARD_BODY(STORE, LOGSIG_NONPOSITIVE)                                      \
            }                                                                                \
        }                                                                                    \
        d_logsig += s_logsig;                                                                \
        d_eps2 += s_eps2;                                                                    \
        d_logp += s_logp;                                                                    \
    }

#define LOGSIG_NONPOSITIVE (fmaxf(r, -80.0f) + log_log1p_ratio(t))

#define FORWARD_BODY(STORE, LOGSIG)                                                          \
    float e = buf[j - start];                                                                \
    float r = rho[j];                                                                        \
    float t = exp_neg_abs(r);                                                                \
    float sigma = softplus_t(r, t);                                                          \
    float wj = mu[j] + sigma * e;                                                            \
    float w2 = wj * wj;                                                                      \
    float a1 = h1 * w2 + c1, a2 = h2 * w2 + c2;                                              \
    float logp = mixture ? logaddexp_f(a1, a2) : a1;                                         \
    s_logsig += (LOGSIG);                                                                    \
    s_eps2 += e * e;                                                                         \
    s_logp += logp;                                                                          \
    eps[j] = e;                                                                              \
    w[j] = STORE;

void bbb_forward(const float *mu, const float *rho, const float *mask, float *w, float *eps,
                 int64_t n, uint32_t key, int mixture, float h1, float c1, float h2, float c2,
                 int threads, double *sums /* [Σ log sigma, Σ eps², Σ log p(w)] */) {
    double d_logsig = 0.0, d_eps2 = 0.0, d_logp = 0.0;
    if (mask) {
        FORWARD_LOOP(wj * mask[j])
    } else {
        FORWARD_LOOP(wj)
    }
    sums[0] = d_logsig;
    sums[1] = d_eps2;
    sums[2] = d_logp;
}

#define BACKWARD_LOOP(GRAD)                                                                  \
    _Pragma("omp parallel for simd num_threads(threads) schedule(static)")                  \
    for (int64_t j = 0; j < n; j++) {                                                        \
        float e = eps[j];                                                                    \
        float r = rho[j];                                                                    \
        float t = exp_neg_abs(r); /* the forward's t, recomputed: cheaper than storing it */ \
        float sigma = softplus_t(r, t);                                                      \
        float dsig = sigmoid_t(r, t); /* d softplus / d rho */                               \
        float wj = mu[j] + sigma * e;                                                        \
        float w2 = wj * wj;                                                                  \
        float a1 = h1 * w2 + c1, a2 = h2 * w2 + c2;                                          \
        float hbar = mixture ? h2 + (h1 - h2) * inv1p_exp(a2 - a1) : h1; /* r1 = 1/(1+e^(a2−a1)) */ \
        float gw = (GRAD) + grad_kl * (-2.0f * wj * hbar);                                   \
        grad_mu[j] = gw;                                                                     \
        grad_rho[j] = gw * e * dsig - grad_kl * dsig / sigma;                                \
    }

void bbb_backward(const float *mu, const float *rho, const float *mask, const float *eps,
                  const float *grad_w, float grad_kl, int64_t n, int mixture, float h1, float c1,
                  float h2, float c2, int threads, float *grad_mu, float *grad_rho) {
    if (grad_w && mask) {
        BACKWARD_LOOP(grad_w[j] * mask[j])
    } else if (grad_w) {
        BACKWARD_LOOP(grad_w[j])
    } else {
        BACKWARD_LOOP(0.0f)
    }
}

/* Sparse variational dropout's KL over n weights (Molchanov, Ashukha & Vetrov 2017), and its
 * gradient, in one pass. Per weight
 *   la = clip(ls2 − log(theta² + 1e-8), −8, 8),
 *   log-uniform prior (their Eq. 14, constants k1, k2, k3 passed in):
 *       KL = k1 − k1·s + ½·softplus(−la), s = sigmoid(k2 + k3·la),
 *       dKL/dla = −(k1·k3·s·(1 − s) + ½·sigmoid(−la));
 *   ARD (ard = 1): KL = ½·softplus(−la), dKL/dla = −½·sigmoid(−la);
 * dKL/dls2 = dKL/dla and dKL/dtheta = dKL/dla · (−2·theta / (theta² + 1e-8)) where the clip is
 * inactive (−8 ≤ raw ≤ 8, as torch.clamp's gradient), 0 elsewhere. Returns Σ KL in *sum. */
#define SVD_KL_LOOP(ARD)                                                                     \
    _Pragma("omp parallel for num_threads(threads) schedule(static) reduction(+ : total)")  \
    for (int64_t start = 0; start < n; start += BLOCK) {                                     \
        int64_t stop = start + BLOCK < n ? start + BLOCK : n;                                \
        float acc = 0.0f;                                                                    \
        _Pragma("omp simd reduction(+ : acc)")                                               \
        for (int64_t j = start; j < stop; j++) {                                             \
            float t = theta[j];                                                              \
            float t2 = t * t + 1e-8f;                                                        \
            float raw = ls2[j] - log_f(t2);                                                  \
            float la = fminf(fmaxf(raw, -8.0f), 8.0f);                                       \
            float inside = (raw >= -8.0f && raw <= 8.0f) ? 1.0f : 0.0f;                      \
            float tl = exp_neg_abs(la);                                                      \
            float half_sp = 0.5f * softplus_t(-la, tl);                                      \
            float half_sn = 0.5f * sigmoid_t(-la, tl);                                       \
            float s = inv1p_exp(-(k2 + k3 * la));                                            \
            float kl = ARD ? half_sp : k1 - k1 * s + half_sp;                                \
            float dla = ARD ? -half_sn : -(k1 * k3 * s * (1.0f - s) + half_sn);              \
            float g = dla * inside;                                                          \
            acc += kl;                                                                       \
            grad_ls2[j] = g;                                                                 \
            grad_theta[j] = g * (-2.0f * t / t2);                                            \
        }                                                                                    \
        total += acc;                                                                        \
    }

void svd_kl(const float *theta, const float *ls2, int64_t n, int ard, float k1, float k2,
            float k3, int threads, float *grad_theta, float *grad_ls2, double *sum) {
    double total = 0.0;
    if (ard) {
        SVD_KL_LOOP(1)
    } else {
        SVD_KL_LOOP(0)
    }
    *sum = total;
}
