/* Convolution as Caffe does it (im2col + one GEMM), over the whole batch at once.
 *
 *   col[K, N]   K = C·k·k rows in (c, kh, kw) order, N = B·OH·OW columns in (b, oh, ow) order
 *   Y'[F, N]    = W[F, K] · col          (the GEMM, in gemm.py)
 *   y[B, F, OH·OW] = Y' permuted to NCHW, plus the bias
 *
 * Backward: dY' = dy permuted back, db = row sums of dY', dW = dY'·colᵀ, dcol = Wᵀ·dY', and
 * col2im as a gather (one work-item per input pixel summing the columns that read it, so no
 * atomics and a deterministic order).  Sizes are ints: every buffer here holds < 2³¹ floats. */

/* One work-item per (column row r = (c, kh, kw), output row (b, oh)): OW contiguous writes,
 * reading input row h with stride S; the columns that fall in the padding get zeros. */
__kernel void im2col(__global const float *x, __global float *col, const int C, const int H,
                     const int W, const int K, const int S, const int P, const int OH,
                     const int OW, const int N, const int rows) {
    const int bo = get_global_id(0), r = get_global_id(1);
    if (bo >= N / OW || r >= rows) return;
    const int oh = bo % OH, b = bo / OH;
    const int kw = r % K, t2 = r / K, kh = t2 % K, c = t2 / K;
    const int h = oh * S - P + kh;
    __global float *dst = col + (size_t)r * N + bo * OW;
    if (h < 0 || h >= H) {
        for (int ow = 0; ow < OW; ++ow) dst[ow] = 0.0f;
        return;
    }
    __global const float *src = x + ((size_t)(b * C + c) * H + h) * W;
    const int w0 = kw - P;                       /* input column of ow = 0 */
    const int lo = w0 >= 0 ? 0 : (S - 1 - w0) / S;            /* first ow inside the row */
    const int hi = w0 >= W ? 0 : min(OW, (W - 1 - w0) / S + 1);  /* one past the last */
    int ow = 0;
    for (; ow < min(lo, OW); ++ow) dst[ow] = 0.0f;
    for (; ow < hi; ++ow) dst[ow] = src[ow * S + w0];
    for (; ow < OW; ++ow) dst[ow] = 0.0f;
}

typedef float8 f8u __attribute__((aligned(4)));      /* any float offset */
#define LD8(p) (*(__global const f8u *)(p))
#define ST8(p, v) (*(__global f8u *)(p) = (v))

/* y[b, f, :] = yp[f, b·HW : (b+1)·HW] (+ bias[f]): one work-item per (f, b), copying HW
 * contiguous floats as float8s. */
__kernel void conv_to_nchw(__global const float *yp, __global const float *bias,
                           __global float *y, const int F, const int HW, const int N,
                           const int B, const int has_bias) {
    const int f = get_global_id(0), b = get_global_id(1);
    if (f >= F || b >= B) return;
    __global const float *src = yp + (size_t)f * N + (size_t)b * HW;
    __global float *dst = y + ((size_t)b * F + f) * HW;
    const float bv = has_bias ? bias[f] : 0.0f;
    int p = 0;
    for (; p + 8 <= HW; p += 8) ST8(dst + p, LD8(src + p) + bv);
    for (; p < HW; ++p) dst[p] = src[p] + bv;
}

/* dyp[f, b·HW : (b+1)·HW] = dy[b, f, :], one work-item per (f, b). */
__kernel void conv_from_nchw(__global const float *dy, __global float *dyp, const int F,
                             const int HW, const int N, const int B) {
    const int f = get_global_id(0), b = get_global_id(1);
    if (f >= F || b >= B) return;
    __global const float *src = dy + ((size_t)b * F + f) * HW;
    __global float *dst = dyp + (size_t)f * N + (size_t)b * HW;
    int p = 0;
    for (; p + 8 <= HW; p += 8) ST8(dst + p, LD8(src + p));
    for (; p < HW; ++p) dst[p] = src[p];
}

/* out[r] (+)= Σ_j x[r, j]: the bias gradient from dY'. */
__kernel void row_sum(__global const float *x, __global float *out, const int rows,
                      const int cols, const int acc) {
    const int r = get_global_id(0);
    if (r >= rows) return;
    __global const float *p = x + (size_t)r * cols;
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    int j = 0;
    for (; j + 4 <= cols; j += 4) { s0 += p[j]; s1 += p[j + 1]; s2 += p[j + 2]; s3 += p[j + 3]; }
    for (; j < cols; ++j) s0 += p[j];
    const float s = (s0 + s1) + (s2 + s3);
    out[r] = acc ? out[r] + s : s;
}

/* dx[b, c, h, :] (+)= every column entry read from input row h: one work-item per input row
 * (b, c, h), adding into its own row only (no atomics, a fixed order), im2col's loops run
 * backwards. */
__kernel void col2im(__global const float *dcol, __global float *dx, const int C, const int H,
                     const int W, const int K, const int S, const int P, const int OH,
                     const int OW, const int N, const int nrows, const int acc) {
    const int i = get_global_id(0);
    if (i >= nrows) return;
    const int h = i % H, t = i / H, c = t % C, b = t / C;
    __global float *d = dx + (size_t)i * W;
    if (!acc)
        for (int w = 0; w < W; ++w) d[w] = 0.0f;
    const int hp = h + P;
    const int oh0 = hp >= K ? (hp - K) / S + 1 : 0, oh1 = min(hp / S, OH - 1);
    for (int oh = oh0; oh <= oh1; ++oh) {
        const int kh = hp - oh * S;
        for (int kw = 0; kw < K; ++kw) {
            __global const float *src = dcol + (size_t)((c * K + kh) * K + kw) * N
                                        + (size_t)(b * OH + oh) * OW;
            const int w0 = kw - P;
            const int lo = w0 >= 0 ? 0 : (S - 1 - w0) / S;
            const int hi = w0 >= W ? 0 : min(OW, (W - 1 - w0) / S + 1);
            int ow = lo;
            if (S == 1)                      /* contiguous: float8 at a time */
                for (; ow + 8 <= hi; ow += 8) ST8(d + ow + w0, LD8(d + ow + w0) + LD8(src + ow));
            for (; ow < hi; ++ow) d[ow * S + w0] += src[ow];
        }
    }
}
