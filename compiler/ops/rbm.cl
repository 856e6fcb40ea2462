/* RBM kernels: the encoder's sigmoid, Gibbs sampling and CD's statistics (SINGA kCD).
 * The GEMMs (v·Wᵀ, h·W, hᵀ·v) go through the shared sgemm programs. */

/* The counter-based generator of activation.cl, repeated here (each .cl file is its own
 * program): a 32-bit integer hash of seed, layer, step and index — reproducible, no state,
 * independent per element, per Gibbs step and per training step. */
inline uint mix32(uint h) {
    h ^= h >> 16; h *= 0x7feb352dU; h ^= h >> 15; h *= 0x846ca68bU; h ^= h >> 16;
    return h;
}
inline float uniform01(uint seed, uint layer, uint step, uint i) {
    uint h = mix32(seed ^ mix32(layer * 0x9e3779b9U ^ mix32(step + 0x632be5abU * i)));
    return (h >> 8) * (1.0f / 16777216.0f);
}


/* x = σ(x) in place, 8 values per work-item. */
__kernel void rbm_sigmoid(__global float *x, const int n) {
    const int i0 = get_global_id(0) * 8;
    if (i0 + 8 <= n) {
        typedef float8 f8u __attribute__((aligned(4)));
        __global f8u *p = (__global f8u *)(x + i0);
        *p = sigm8(*p);
        return;
    }
    for (int i = i0; i < n; ++i) x[i] = sigm(x[i]);
}

/* da (+)= dy·σ'(pre) from y = σ(pre) (BP through an rbm used as an encoder). */
__kernel void rbm_sigmoid_bwd(__global const float *y, __global const float *dy,
                              __global float *da, const int n, const int gaussian) {
    int i = get_global_id(0);
    if (i >= n) return;
    float o = y[i];
    da[i] = gaussian ? dy[i] : dy[i] * o * (1.0f - o);
}

/* uniform01 for the 8 indices i..i+7, in uint8 lanes (the same numbers, bit for bit). */
inline uint8 mix32x8(uint8 h) {
    h ^= h >> 16; h *= 0x7feb352dU; h ^= h >> 15; h *= 0x846ca68bU; h ^= h >> 16;
    return h;
}

/* One Gibbs sample of the hidden units h (n = batch·hidden values).  Binary units: 1 where
 * u < h, with u = uniform01(seed, layer, step, gibbs·total + offset + i) (total: the values
 * of the global batch; offset: where this plan's rows start in it — n and 0 for one worker).
 * Gaussian units (h is the pre-activation): h + N(0, 1), the normal from Box–Muller on the
 * uniforms of indices 2·idx and 2·idx + 1.  One work-item per 8 values: binary units hash
 * them in vector lanes (PoCL does not vectorize the scalar hash across work-items). */
__kernel void rbm_sample(__global const float *h, __global float *s, const int n,
                         const int gaussian, const uint seed, const uint layer,
                         __global const int *step, const int gibbs, const uint total,
                         const uint offset) {
    const int i0 = get_global_id(0) * 8;
    if (i0 >= n) return;
    uint st = (uint)step[0];
    /* counted in the global batch (total values; this plan's rows start at offset) */
    const uint base = (uint)gibbs * total + offset;
    if (!gaussian && i0 + 8 <= n) {
        const uint8 idx = (uint8)(base + (uint)i0)
                          + (uint8)(0u, 1u, 2u, 3u, 4u, 5u, 6u, 7u);
        const uint8 hash = mix32x8((uint8)seed ^ mix32x8((uint8)(layer * 0x9e3779b9U)
                                   ^ mix32x8((uint8)st + 0x632be5abU * idx)));
        const float8 u = convert_float8(hash >> 8) * (1.0f / 16777216.0f);
        typedef float8 f8u __attribute__((aligned(4)));
        const float8 hv = *(__global const f8u *)(h + i0);
        *(__global f8u *)(s + i0) = select((float8)0.0f, (float8)1.0f, u < hv);
        return;
    }
    for (int i = i0; i < min(n, i0 + 8); ++i) {
        uint idx = base + (uint)i;
        if (gaussian) {
            float u1 = uniform01(seed, layer, st, 2u * idx);
            float u2 = uniform01(seed, layer, st, 2u * idx + 1u);
            float r = sqrt(-2.0f * log(1.0f - u1));
            s[i] = h[i] + r * cos(6.2831853071795865f * u2);
        } else {
            s[i] = uniform01(seed, layer, st, idx) < h[i] ? 1.0f : 0.0f;
        }
    }
}

/* err[r] = Σ_c (a[r, c] − b[r, c])²: SINGA's squared reconstruction error, per sample. */
__kernel void rbm_sq_error(__global const float *a, __global const float *b,
                           __global float *err, const int rows, const int cols) {
    int r = get_global_id(0);
    if (r >= rows) return;
    float s = 0.0f;
    for (int c = 0; c < cols; ++c) {
        float d = a[(size_t)r * cols + c] - b[(size_t)r * cols + c];
        s += d * d;
    }
    err[r] = s;
}

/* out[j] = scale · Σ_r (neg[r, j] − pos[r, j]): a bias gradient of CD. */
__kernel void rbm_bias_grad(__global const float *neg, __global const float *pos,
                            __global float *out, const int rows, const int cols,
                            const float scale) {
    int j = get_global_id(0);
    if (j >= cols) return;
    float s = 0.0f;
    for (int r = 0; r < rows; ++r) s += neg[(size_t)r * cols + j] - pos[(size_t)r * cols + j];
    out[j] = scale * s;
}

/* The positive phase under the negative one, v⁺ negated: hh = [h⁻; h⁺], vv = [v⁻; −v⁺]
 * (nh, nv: the values of one half), so that the one GEMM hhᵀ·vv over k = 2B rows is
 * h⁻ᵀv⁻ − h⁺ᵀv⁺, CD's weight statistics, written once. */
__kernel void rbm_stack_positive(__global const float *h, __global const float *v,
                                 __global float *hh, __global float *vv, const int nh,
                                 const int nv) {
    const int i = get_global_id(0);
    if (i < nh) hh[nh + i] = h[i];
    if (i < nv) vv[nv + i] = -v[i];
}
