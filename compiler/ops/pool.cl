/* Max and average pooling over square windows, Caffe's rules (see pool.py):
 *   window of output (ph, pw): rows [ph·S − P, ph·S − P + K), columns likewise;
 *   max:  clipped to the real input, padding never wins, the first maximum in row-major order
 *         is kept (its index h·W + w within the plane is stored for the backward pass);
 *   avg:  sum over the real input divided by the window area clipped to the padded input.
 * Forward: one work-item per output; backward: one per input row (below). */

#define OUT_INDEX                                                          \
    const int pw = o % OW, t = o / OW, ph = t % OH, plane = t / OH;        \
    const int hs0 = ph * S - P, ws0 = pw * S - P;                          \
    const int hs = max(hs0, 0), he = min(hs0 + K, H);                      \
    const int ws = max(ws0, 0), we = min(ws0 + K, W);                      \
    __global const float *xp = x + (size_t)plane * H * W;

__kernel void max_pool_fwd(__global const float *x, __global float *y, __global int *arg,
                           const int H, const int W, const int K, const int S, const int P,
                           const int OH, const int OW, const int total) {
    const int o = get_global_id(0);
    if (o >= total) return;
    OUT_INDEX
    float m = xp[hs * W + ws];
    int best = hs * W + ws;
    for (int h = hs; h < he; ++h)
        for (int w = ws; w < we; ++w) {
            const float v = xp[h * W + w];
            if (v > m) { m = v; best = h * W + w; }
        }
    y[o] = m;
    arg[o] = best;
}

__kernel void avg_pool_fwd(__global const float *x, __global float *y,
                           const int H, const int W, const int K, const int S, const int P,
                           const int OH, const int OW, const int total) {
    const int o = get_global_id(0);
    if (o >= total) return;
    OUT_INDEX
    const int area = (min(hs0 + K, H + P) - hs0) * (min(ws0 + K, W + P) - ws0);
    float s = 0.0f;
    for (int h = hs; h < he; ++h)
        for (int w = ws; w < we; ++w) s += xp[h * W + w];
    y[o] = s / (float)area;
}

/* Backward: one work-item per input row (plane, h), adding into its own row only (no atomics,
 * a fixed order); the outputs whose windows cover row h are ph in [ph0, ph1]. */
#define IN_ROW                                                             \
    const int h = i % H, plane = i / H;                                    \
    const int hp = h + P;                                                  \
    const int ph0 = hp >= K ? (hp - K) / S + 1 : 0, ph1 = min(hp / S, OH - 1); \
    const size_t base = (size_t)plane * OH * OW;                           \
    __global float *d = dx + (size_t)i * W;                                \
    if (!acc)                                                              \
        for (int w = 0; w < W; ++w) d[w] = 0.0f;

__kernel void max_pool_bwd(__global const int *arg, __global const float *dy,
                           __global float *dx, const int H, const int W, const int K,
                           const int S, const int P, const int OH, const int OW,
                           const int nrows, const int acc) {
    const int i = get_global_id(0);
    if (i >= nrows) return;
    IN_ROW
    const int row0 = h * W;
    for (int ph = ph0; ph <= ph1; ++ph)
        for (int pw = 0; pw < OW; ++pw) {
            const size_t o = base + ph * OW + pw;
            const int w = arg[o] - row0;            /* the window's maximum, if in this row */
            if (w >= 0 && w < W) d[w] += dy[o];
        }
}

__kernel void avg_pool_bwd(__global const float *dy, __global float *dx, const int H,
                           const int W, const int K, const int S, const int P, const int OH,
                           const int OW, const int nrows, const int acc) {
    const int i = get_global_id(0);
    if (i >= nrows) return;
    IN_ROW
    for (int ph = ph0; ph <= ph1; ++ph) {
        const int hs0 = ph * S - P, ah = min(hs0 + K, H + P) - hs0;
        for (int pw = 0; pw < OW; ++pw) {
            const int ws0 = pw * S - P, aw = min(ws0 + K, W + P) - ws0;
            const float g = dy[base + ph * OW + pw] / (float)(ah * aw);
            for (int w = max(ws0, 0); w < min(ws0 + K, W); ++w) d[w] += g;
        }
    }
}
