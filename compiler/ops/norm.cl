/* Normalisation kernels: lrn (across channels), softmax (per sample), batchnorm (per channel).
 * `acc` selects dx += (a tensor read by several layers) over dx = (its first consumer). */

/* ---- lrn: s_c = k + alpha/size·Σ_{j∈[c−before, c+after]} x_j², y_c = x_c·s_c^(−beta) ----
 * x is (B, C, HW).  Each work-item takes 8 neighbouring pixels of one (b, c) plane as a float8
 * (PoCL vectorizes explicit vector code, not loops over work-items with inner loops; a plane
 * whose HW is not a multiple of 8 ends with a scalar tail), and x^p is computed by inline
 * polynomials: PoCL's pow/exp/log are out-of-line scalar calls, ~20x slower here. */
typedef float8 f8u __attribute__((aligned(4)));      /* any float offset */
#define LD8(p) (*(__global const f8u *)(p))
#define ST8(p, v) (*(__global f8u *)(p) = (v))

/* x^p for normal x > 0 with |p·log2 x| < 126: log2 by the series of atanh in t = (m−1)/(m+1),
 * m in [√½, √2), then 2^y = 2^n·e^(f·ln2) with |f| ≤ ½ by Taylor; ≤ 2e-6 relative error. */
#define POWR_BODY(FLOAT, INT, CONVF, CONVI)                                                 \
    const INT bits = as_##INT(x);                                                           \
    const INT big = as_##FLOAT((bits & 0x7fffff) | 0x3f800000) > 1.41421356f;              \
    /* vector comparisons give −1 for true, scalar ones 1 */                               \
    const INT up = big ? (INT)1 : (INT)0;                                                   \
    const INT e = ((bits >> 23) & 0xff) - 127 + up;                                         \
    const FLOAT m = as_##FLOAT(((bits & 0x7fffff) | 0x3f800000) - (up << 23));             \
    const FLOAT t = (m - 1.0f) / (m + 1.0f), t2 = t * t;                                    \
    const FLOAT lg = CONVF(e) + t * (2.88539008f + t2 * (0.961796694f + t2 * (0.577078016f \
                     + t2 * (0.412198583f + t2 * 0.320598898f))));                          \
    const FLOAT y = p * lg;                                                                 \
    const INT n = CONVI(y);                                                                 \
    const FLOAT f = (y - CONVF(n)) * 0.693147181f;                                          \
    const FLOAT ef = 1.0f + f * (1.0f + f * (0.5f + f * (0.166666667f + f * (0.0416666667f \
                     + f * (0.00833333333f + f * (0.00138888889f + f * 0.000198412698f)))))); \
    return ef * as_##FLOAT((n + 127) << 23);

inline float powr1(const float x, const float p) {
    POWR_BODY(float, int, convert_float, convert_int_rte)
}
inline float8 powr8(const float8 x, const float p) {
    POWR_BODY(float8, int8, convert_float8, convert_int8_rte)
}

/* scale holds s (first `total` floats) and s^(−beta) (the next `total`) for the backward. */
__kernel void lrn_fwd(__global const float *x, __global float *y, __global float *scale,
                      const int C, const int HW, const int total, const int before,
                      const int after, const float alpha_n, const float beta, const float k) {
    const int p0 = get_global_id(0) * 8, plane = get_global_id(1);
    if (p0 >= HW || plane >= total / HW) return;
    const int c = plane % C;
    const size_t at = (size_t)plane * HW + p0;
    const int j0 = max(c - before, 0) - c, j1 = min(c + after, C - 1) - c;
    if (p0 + 8 <= HW) {
        float8 s = 0.0f;
        for (int j = j0; j <= j1; ++j) { const float8 v = LD8(x + at + j * HW); s += v * v; }
        s = k + alpha_n * s;
        const float8 pw = powr8(s, -beta);
        ST8(scale + at, s);
        ST8(scale + total + at, pw);
        ST8(y + at, LD8(x + at) * pw);
        return;
    }
    for (int q = 0; q < HW - p0; ++q) {
        float s = 0.0f;
        for (int j = j0; j <= j1; ++j) { const float v = x[at + q + j * HW]; s += v * v; }
        s = k + alpha_n * s;
        const float pw = powr1(s, -beta);
        scale[at + q] = s;
        scale[total + at + q] = pw;
        y[at + q] = x[at + q] * pw;
    }
}

/* dx_i = dy_i·s_i^(−β) − 2αβ/n·x_i·Σ_{c: i∈win(c)} dy_c·y_c/s_c; c ∈ [i − after, i + before]. */
__kernel void lrn_bwd(__global const float *x, __global const float *y,
                      __global const float *scale, __global const float *dy, __global float *dx,
                      const int C, const int HW, const int total, const int before,
                      const int after, const float coef /* 2·alpha·beta/size */,
                      const float beta, const int acc) {
    const int p0 = get_global_id(0) * 8, plane = get_global_id(1);
    if (p0 >= HW || plane >= total / HW) return;
    const int c = plane % C;
    const size_t at = (size_t)plane * HW + p0;
    const int j0 = max(c - after, 0) - c, j1 = min(c + before, C - 1) - c;
    if (p0 + 8 <= HW) {
        float8 s = 0.0f;
        for (int j = j0; j <= j1; ++j) {
            const size_t q = at + j * HW;
            s += LD8(dy + q) * LD8(y + q) / LD8(scale + q);
        }
        float8 r = LD8(dy + at) * LD8(scale + total + at) - coef * LD8(x + at) * s;
        if (acc) r += LD8(dx + at);
        ST8(dx + at, r);
        return;
    }
    for (int q = 0; q < HW - p0; ++q) {
        float s = 0.0f;
        for (int j = j0; j <= j1; ++j) {
            const size_t o = at + q + j * HW;
            s += dy[o] * y[o] / scale[o];
        }
        const float r = dy[at + q] * scale[total + at + q] - coef * x[at + q] * s;
        dx[at + q] = acc ? dx[at + q] + r : r;
    }
}

/* ---- softmax over the D features of each sample: one work-item per sample ---- */
__kernel void softmax_fwd(__global const float *x, __global float *y, const int batch,
                          const int D) {
    const int r = get_global_id(0);
    if (r >= batch) return;
    __global const float *xr = x + (size_t)r * D;
    __global float *yr = y + (size_t)r * D;
    float m = xr[0];
    for (int c = 1; c < D; ++c) m = fmax(m, xr[c]);
    float s = 0.0f;
    for (int c = 0; c < D; ++c) { const float e = vexp(xr[c] - m); yr[c] = e; s += e; }
    const float inv = 1.0f / s;
    for (int c = 0; c < D; ++c) yr[c] *= inv;
}

/* dx = y·(dy − Σ dy·y) */
__kernel void softmax_bwd(__global const float *y, __global const float *dy,
                          __global float *dx, const int batch, const int D, const int acc) {
    const int r = get_global_id(0);
    if (r >= batch) return;
    const size_t o = (size_t)r * D;
    float dot = 0.0f;
    for (int c = 0; c < D; ++c) dot += dy[o + c] * y[o + c];
    for (int c = 0; c < D; ++c) {
        const float g = y[o + c] * (dy[o + c] - dot);
        dx[o + c] = acc ? dx[o + c] + g : g;
    }
}

/* ---- batchnorm over x (B, C, S): statistics per channel over B·S values ----
 * stat = [mean (C), var (C)] used by this phase's normalisation.
 * mode 0 (training): batch mean and biased variance; then the running averages move as
 *   run = momentum·run + (1 − momentum)·batch, starting from mean 0, var 1 while *init == 0.
 * mode 1 (evaluation): the running averages once *init != 0, else the batch statistics (a net
 *   evaluated before its first training step). */
__kernel void bn_stats(__global const float *x, __global float *stat, __global float *run_mean,
                       __global float *run_var, __global const int *init, const int B,
                       const int C, const int S, const float momentum, const int mode) {
    const int c = get_global_id(0);
    if (c >= C) return;
    const int ready = init[0] != 0;
    if (mode == 1 && ready) { stat[c] = run_mean[c]; stat[C + c] = run_var[c]; return; }
    float s = 0.0f;
    for (int b = 0; b < B; ++b) {
        __global const float *p = x + ((size_t)b * C + c) * S;
        for (int j = 0; j < S; ++j) s += p[j];
    }
    const float n = (float)B * (float)S;
    const float mean = s / n;
    float v = 0.0f;
    for (int b = 0; b < B; ++b) {
        __global const float *p = x + ((size_t)b * C + c) * S;
        for (int j = 0; j < S; ++j) { const float d = p[j] - mean; v += d * d; }
    }
    const float var = v / n;
    stat[c] = mean;
    stat[C + c] = var;
    if (mode == 0) {
        const float rm = ready ? run_mean[c] : 0.0f, rv = ready ? run_var[c] : 1.0f;
        run_mean[c] = momentum * rm + (1.0f - momentum) * mean;
        run_var[c] = momentum * rv + (1.0f - momentum) * var;
    }
}

/* Sets the flag: 0 in the "init" list (before training), 1 after each training bn_stats (a
 * launch of its own, so every channel has read the flag before it changes). */
__kernel void bn_mark(__global int *init, const int value) {
    if (get_global_id(0) == 0) init[0] = value;
}

__kernel void bn_fwd(__global const float *x, __global const float *stat,
                     __global const float *gamma, __global const float *beta,
                     __global float *y, const int C, const int S, const int total,
                     const float eps) {
    const int i = get_global_id(0);
    if (i >= total) return;
    const int c = (i / S) % C;
    const float inv = rsqrt(stat[C + c] + eps);
    y[i] = gamma[c] * ((x[i] - stat[c]) * inv) + beta[c];
}

/* Per channel: Σdy and Σdy·x̂ → the gamma/beta gradients (+= when acc_w/acc_b), and kept in
 * sums (2C) for bn_bwd_dx. */
__kernel void bn_bwd_sums(__global const float *x, __global const float *dy,
                          __global const float *stat, __global float *sums,
                          __global float *dgamma, __global float *dbeta, const int B,
                          const int C, const int S, const float eps, const int acc_w,
                          const int acc_b) {
    const int c = get_global_id(0);
    if (c >= C) return;
    const float mean = stat[c], inv = rsqrt(stat[C + c] + eps);
    float sd = 0.0f, sdx = 0.0f;
    for (int b = 0; b < B; ++b) {
        const size_t o = ((size_t)b * C + c) * S;
        for (int j = 0; j < S; ++j) {
            const float g = dy[o + j];
            sd += g;
            sdx += g * ((x[o + j] - mean) * inv);
        }
    }
    sums[c] = sd;
    sums[C + c] = sdx;
    dgamma[c] = acc_w ? dgamma[c] + sdx : sdx;
    dbeta[c] = acc_b ? dbeta[c] + sd : sd;
}

/* dx = gamma·inv/n·(n·dy − Σdy − x̂·Σdy·x̂), the batch statistics depending on x. */
__kernel void bn_bwd_dx(__global const float *x, __global const float *dy,
                        __global const float *stat, __global const float *sums,
                        __global const float *gamma, __global float *dx, const int C,
                        const int S, const int total, const float n, const float eps,
                        const int acc) {
    const int i = get_global_id(0);
    if (i >= total) return;
    const int c = (i / S) % C;
    const float inv = rsqrt(stat[C + c] + eps);
    const float xhat = (x[i] - stat[c]) * inv;
    const float r = gamma[c] * inv / n * (n * dy[i] - sums[c] - xhat * sums[C + c]);
    dx[i] = acc ? dx[i] + r : r;
}
