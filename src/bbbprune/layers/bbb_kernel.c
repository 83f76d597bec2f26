/* Fused Bayes-by-Backprop weight sampling with its Monte Carlo KL (CPU, float32).
 *
 * For every element j: sigma_j = softplus(rho_j), eps_j ~ N(0,1), w_j = mu_j + sigma_j eps_j and
 *   KL ≈ Σ_j [log q(w_j) − log p(w_j)],  log q(w_j) = −½ log 2π − log sigma_j − eps_j² / 2,
 *   log p(w) = logaddexp(h1 w² + c1, h2 w² + c2)   (scale mixture; Gaussian: one component),
 * with h_k = −1/(2 s_k²) and c_k = log(pi_k) − log s_k − ½ log 2π.
 *
 * eps comes from a counter-based generator: a 32-bit hash of (element index, key) per uniform,
 * two uniforms per draw, Box–Muller. The forward pass stores eps and sigma for the backward
 * pass, which
 * returns
 *   d/dmu  = g + c · dKL/dw,
 *   d/drho = (g + c · dKL/dw) · eps · sigmoid(rho) − c · sigmoid(rho) / sigma,
 * with g = (dL/dw_out) · mask, c = dL/dKL and dKL/dw = −2 w (h1 r1 + h2 r2), r the mixture
 * responsibilities. One pass over memory each way; OpenMP threads; vectorised by the compiler
 * (glibc's libmvec supplies the vector exp/log/cos).
 */
#include <math.h>
#include <stdint.h>

/* The kernel is built without -ffast-math: with it gcc links crtfastmath, which switches on
 * flush-to-zero and denormals-are-zero for the whole process that loads the library. glibc only
 * declares its vector math (libmvec) under __FAST_MATH__, so the declarations are repeated here
 * for the three functions the loops call; the compiler then vectorises them as before. */
#if defined(__x86_64__) && defined(_OPENMP) && !defined(__FAST_MATH__)
#pragma omp declare simd notinbranch
float expf(float);
#pragma omp declare simd notinbranch
float logf(float);
#pragma omp declare simd notinbranch
float cosf(float);
#endif

static inline uint32_t hash32(uint32_t x) { /* "lowbias32": a bijection on 32-bit integers */
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

/* For a fixed key, i -> (2i + lane)·φ XOR key is a bijection, and different keys are not shifted
 * copies of one another along i (as key + i would be). */
static inline float std_normal(uint32_t key, uint32_t i) {
    uint32_t a = hash32(((2u * i) * 0x9E3779B9U) ^ key);
    uint32_t b = hash32(((2u * i + 1u) * 0x9E3779B9U) ^ key);
    float u1 = ((float)(a >> 8) + 0.5f) * 5.9604644775390625e-08f; /* (0, 1) */
    float u2 = (float)(b >> 8) * 5.9604644775390625e-08f;          /* [0, 1) */
    return sqrtf(-2.0f * logf(u1)) * cosf(6.283185307179586f * u2);
}

/* log(1 + t) for t in (0, 1]: a series where 1 + t would round, log otherwise. */
static inline float log1p_small(float t) {
    return t < 1e-3f ? t * (1.0f - t * (0.5f - t * 0.33333333f)) : logf(1.0f + t);
}

/* exp(−|x|) with the argument clamped at −80: exp(−80) ≈ 1.8e−35 is still a normal float, and
 * vector exp falls back to slow scalar code for arguments that underflow. */
static inline float exp_neg_abs(float x) { return expf(fmaxf(-fabsf(x), -80.0f)); }

static inline float softplusf(float x) { return fmaxf(x, 0.0f) + log1p_small(exp_neg_abs(x)); }

/* 1 / (1 + exp(x)), clamped for the same reason */
static inline float inv1p_exp(float x) { return 1.0f / (1.0f + expf(fminf(fmaxf(x, -80.0f), 80.0f))); }

void bbb_normal(float *out, int64_t n, uint32_t key, int threads) {
#pragma omp parallel for simd num_threads(threads) schedule(static)
    for (int64_t j = 0; j < n; j++) out[j] = std_normal(key, (uint32_t)j);
}

/* The loops are written once as macros and instantiated with and without a mask (and a
 * gradient), so that no branch on a possibly-NULL pointer stops the compiler vectorising. */
#define BLOCK 2048
/* Sums are accumulated in float within blocks of BLOCK elements (vectorised) and in double
 * across blocks, which keeps the KL accurate over millions of weights. */
#define FORWARD_LOOP(STORE)                                                                  \
    _Pragma("omp parallel for num_threads(threads) schedule(static) reduction(+ : d_logsig, d_eps2, d_logp)") \
    for (int64_t start = 0; start < n; start += BLOCK) {                                     \
        int64_t stop = start + BLOCK < n ? start + BLOCK : n;                                \
        float s_logsig = 0.0f, s_eps2 = 0.0f, s_logp = 0.0f;                                 \
        _Pragma("omp simd reduction(+ : s_logsig, s_eps2, s_logp)")                          \
        for (int64_t j = start; j < stop; j++) {                                             \
            float e = std_normal(key, (uint32_t)j);                                          \
            float sigma = softplusf(rho[j]);                                                 \
            float wj = mu[j] + sigma * e;                                                    \
            float w2 = wj * wj;                                                              \
            float a1 = h1 * w2 + c1, a2 = h2 * w2 + c2;                                      \
            float logp = mixture ? fmaxf(a1, a2) + log1p_small(exp_neg_abs(a1 - a2)) : a1;  \
            s_logsig += logf(sigma);                                                         \
            s_eps2 += e * e;                                                                 \
            s_logp += logp;                                                                  \
            eps[j] = e;                                                                      \
            sig[j] = sigma;                                                                  \
            w[j] = STORE;                                                                    \
        }                                                                                    \
        d_logsig += s_logsig;                                                                \
        d_eps2 += s_eps2;                                                                    \
        d_logp += s_logp;                                                                    \
    }

void bbb_forward(const float *mu, const float *rho, const float *mask, float *w, float *eps,
                 float *sig, int64_t n, uint32_t key, int mixture, float h1, float c1, float h2, float c2,
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
        float sigma = sig[j];                                                                \
        float dsig = inv1p_exp(-rho[j]); /* d softplus / d rho = sigmoid(rho) */             \
        float wj = mu[j] + sigma * e;                                                        \
        float w2 = wj * wj;                                                                  \
        float a1 = h1 * w2 + c1, a2 = h2 * w2 + c2;                                          \
        float r1 = inv1p_exp(a2 - a1); /* responsibility of component 1 */                  \
        float hbar = mixture ? h1 * r1 + h2 * (1.0f - r1) : h1;                              \
        float gw = (GRAD) + grad_kl * (-2.0f * wj * hbar);                                   \
        grad_mu[j] = gw;                                                                     \
        grad_rho[j] = gw * e * dsig - grad_kl * dsig / sigma;                                \
    }

void bbb_backward(const float *mu, const float *rho, const float *mask, const float *eps,
                  const float *sig, const float *grad_w, float grad_kl, int64_t n, int mixture, float h1, float c1,
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
            float raw = ls2[j] - logf(t2);                                                   \
            float la = fminf(fmaxf(raw, -8.0f), 8.0f);                                       \
            float inside = (raw >= -8.0f && raw <= 8.0f) ? 1.0f : 0.0f;                      \
            float half_sp = 0.5f * softplusf(-la);                                           \
            float half_sn = 0.5f * inv1p_exp(la); /* ½·sigmoid(−la) */                       \
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
