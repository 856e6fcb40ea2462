/* Element-wise activations and dropout.  Forward: y = f(x).  Backward: dx (+)= dy·f'(x),
 * written from y where that is cheaper (sigmoid, tanh, stanh).  `acc` selects += (a tensor
 * read by several layers) over = (its first consumer in the backward sweep).
 *
 * Each work-item does 8 elements as float8 (EXPR8 on vectors, the scalar EXPR on a tail):
 * PoCL 3.0 does not vectorize these across work-items, and on the MLP's tensors the float8
 * form was 1.35x (stanh forward) to 2.9x (its backward) the one-element kernels. */
typedef float8 act8u __attribute__((aligned(4)));   /* any float offset */
#define LD8(p) (*(__global const act8u *)(p))
#define ST8(p, v) (*(__global act8u *)(p) = (v))

#define EW_FWD(NAME, EXPR, EXPR8)                                                \
__kernel void NAME##_fwd(__global const float *x, __global float *y, const int n, \
                         const float p0) {                                      \
    const int i0 = (int)get_global_id(0) * 8;                                   \
    if (i0 + 8 <= n) { const float8 v = LD8(x + i0); ST8(y + i0, (EXPR8)); }    \
    else for (int i = i0; i < n; ++i) { const float v = x[i]; y[i] = (EXPR); }  \
}

#define EW_BWD(NAME, EXPR, EXPR8)                                                \
__kernel void NAME##_bwd(__global const float *x, __global const float *y,       \
                         __global const float *dy, __global float *dx,          \
                         const int n, const float p0, const int acc) {          \
    const int i0 = (int)get_global_id(0) * 8;                                   \
    if (i0 + 8 <= n) {                                                          \
        const float8 v = LD8(x + i0), o = LD8(y + i0), g = LD8(dy + i0);        \
        const float8 r = (EXPR8);                                               \
        ST8(dx + i0, acc ? LD8(dx + i0) + r : r);                               \
    } else for (int i = i0; i < n; ++i) {                                       \
        const float v = x[i], o = y[i], g = dy[i];                              \
        const float r = (EXPR);                                                 \
        dx[i] = acc ? dx[i] + r : r;                                            \
    }                                                                           \
}

EW_FWD(relu, v > 0.0f ? v : p0 * v, select(p0 * v, v, v > 0.0f))
EW_BWD(relu, v > 0.0f ? g : p0 * g, select(p0 * g, g, v > 0.0f))
EW_FWD(sigmoid, sigm(v), sigm8(v))
EW_BWD(sigmoid, g * o * (1.0f - o), g * o * (1.0f - o))
EW_FWD(tanh, ftanh(v), ftanh8(v))
EW_BWD(tanh, g * (1.0f - o * o), g * (1.0f - o * o))
/* SINGA's kSTanh: 1.7159047 tanh(0.6666667 x); f' = 0.6666667/1.7159047 (1.7159047² − y²). */
#define STANH_BWD(g, o) ((g) * (0.6666667f / 1.7159047f) * (1.7159047f * 1.7159047f - (o) * (o)))
EW_FWD(stanh, 1.7159047f * ftanh(0.6666667f * v), 1.7159047f * ftanh8(0.6666667f * v))
EW_BWD(stanh, STANH_BWD(g, o), STANH_BWD(g, o))

/* Counter-based random numbers (a 32-bit integer hash of seed, layer, step and index):
 * reproducible, no state to store, and independent per element and per step. */
inline uint mix32(uint h) {
    h ^= h >> 16; h *= 0x7feb352dU; h ^= h >> 15; h *= 0x846ca68bU; h ^= h >> 16;
    return h;
}
inline float uniform01(uint seed, uint layer, uint step, uint i) {
    uint h = mix32(seed ^ mix32(layer * 0x9e3779b9U ^ mix32(step + 0x632be5abU * i)));
    return (h >> 8) * (1.0f / 16777216.0f);
}

/* Inverted dropout: keep with probability 1-rate and scale by 1/(1-rate); the mask (0 or the
 * scale) is stored for the backward pass.  step[0] is written by the host once per step. */
__kernel void dropout_fwd(__global const float *x, __global float *y, __global float *mask,
                          const int n, const float rate, const uint seed, const uint layer,
                          __global const int *step, const uint offset) {
    int i = get_global_id(0);
    if (i >= n) return;
    /* offset: the index of this plan's first element in the global batch (a worker's rows) */
    float keep = uniform01(seed, layer, (uint)step[0], offset + (uint)i) >= rate
                 ? 1.0f / (1.0f - rate) : 0.0f;
    mask[i] = keep;
    y[i] = x[i] * keep;
}

__kernel void dropout_bwd(__global const float *mask, __global const float *dy,
                          __global float *dx, const int n, const int acc) {
    int i = get_global_id(0);
    if (i >= n) return;
    float r = dy[i] * mask[i];
    dx[i] = acc ? dx[i] + r : r;
}
