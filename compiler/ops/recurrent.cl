/* Recurrent cells, one time step of one unrolled copy, and the per-step input slicing.
 * The GEMMs (x·W_gxᵀ + b_g, h·W_ghᵀ and their gradients) go through the shared sgemm
 * programs; these kernels are the element-wise rest, one fused kernel per step and
 * direction.  `has_prev` = 0 is step 0 without a carried state: h_prev (and c_prev) are
 * zeros and their buffers are not read.  Gate buffers hold pre-activations after the GEMMs
 * and the gate values after the forward kernel (the backward pass reads those). */

/* dst[r, j] = src[r, t, j]: step t of a [rows, steps, inner] field (uploaded once a batch). */
__kernel void take_step_int(__global const int *src, __global int *dst, const int rows,
                            const int steps, const int inner, const int t) {
    int i = get_global_id(0);
    if (i >= rows * inner) return;
    int r = i / inner, j = i - r * inner;
    dst[i] = src[((size_t)r * steps + t) * inner + j];
}

__kernel void take_step_float(__global const float *src, __global float *dst, const int rows,
                              const int steps, const int inner, const int t) {
    int i = get_global_id(0);
    if (i >= rows * inner) return;
    int r = i / inner, j = i - r * inner;
    dst[i] = src[((size_t)r * steps + t) * inner + j];
}

/* dst[off + i] = src[i]: a step's rows into a layer's history buffer (see recurrent_cl.py). */
__kernel void stash(__global const float *src, __global float *dst, const int n,
                    const int off) {
    int i = get_global_id(0);
    if (i < n) dst[off + i] = src[i];
}

/* out[j] (+)= Σ_r x[r·ld + off + j], j < cols: a bias gradient from a column block of a
 * history buffer.  One work-item per 8 columns, reading each row's 8 as one vector (rows are
 * ld apart: one work-item per column would touch every row's cache line 8 times). */
typedef float8 f8u __attribute__((aligned(4)));      /* any float offset */
__kernel void col_sum_ld(__global const float *x, __global float *out, const int rows,
                         const int cols, const int ld, const int off, const int acc) {
    const int j = get_global_id(0) * 8;
    if (j >= cols) return;
    __global const float *p = x + off + j;
    if (j + 8 <= cols) {
        float8 s0 = 0.0f, s1 = 0.0f;
        int r = 0;
        for (; r + 2 <= rows; r += 2) {
            s0 += *(__global const f8u *)(p + (size_t)r * ld);
            s1 += *(__global const f8u *)(p + (size_t)(r + 1) * ld);
        }
        if (r < rows) s0 += *(__global const f8u *)(p + (size_t)r * ld);
        const float8 s = s0 + s1;
        __global f8u *o = (__global f8u *)(out + j);
        *o = acc ? *o + s : s;
        return;
    }
    for (int c = j; c < cols; ++c) {
        float s = 0.0f;
        for (int r = 0; r < rows; ++r) s += x[off + c + (size_t)r * ld];
        out[c] = acc ? out[c] + s : s;
    }
}

/* ---- gru (SINGA's gru.cc) ----------------------------------------------------------------
 * z = σ(az), r = σ(ar), c = tanh(r ⊙ hc + ac) with hc = h·W_chᵀ, h' = z ⊙ (h − c) + c.
 * g holds, per row (ld floats), the input parts az | ar | ac at columns 0, ld/3, 2·ld/3 (each
 * gate at a panel-aligned column, see recurrent_cl.py), hh the recurrent parts h·W_ghᵀ at
 * the same columns; z, r, c replace az, ar, ac in g (the backward reads them).
 * With `keep`, h' also goes to hist[hoff + i] (the next copy's h_prev, for the dW GEMMs).
 * Both gru kernels run on a 2-D grid (j/8, row): 8 hidden units of one row per work-item as
 * float8 vectors (fastmath's exp written on 8 lanes), a scalar tail past the last whole 8. */
#define LD8(p) (*(__global const f8u *)(p))
#define ST8(p, v) (*(__global f8u *)(p) = (v))


#define GRU_FWD_BODY(T, LOAD, SIGM, TANH, STORE)                                           \
    const T h = has_prev ? LOAD(hprev + i) : (T)0.0f;                                    \
    const T z = SIGM(LOAD(gr) + (has_prev ? LOAD(hr) : (T)0.0f));                        \
    const T r = SIGM(LOAD(gr + w) + (has_prev ? LOAD(hr + w) : (T)0.0f));                \
    const T q = has_prev ? LOAD(hr + 2 * w) : (T)0.0f;                                   \
    const T c = TANH(r * q + LOAD(gr + 2 * w));                                           \
    STORE(gr, z); STORE(gr + w, r); STORE(gr + 2 * w, c);                                 \
    const T o = z * (h - c) + c;                                                          \
    STORE(y + i, o);                                                                      \
    if (keep) STORE(hist + hoff + i, o);

#define LD1(p) (*(p))
#define ST1(p, v) (*(p) = (v))

__kernel void gru_fwd(__global float *g, __global const float *hh,
                      __global const float *hprev, __global float *y, __global float *hist,
                      const int hoff, const int n, const int H, const int ld,
                      const int has_prev, const int keep) {
    const int j0 = get_global_id(0) * 8, row = get_global_id(1);
    if (j0 >= H || row * H >= n) return;
    const int w = ld / 3;
    if (j0 + 8 <= H) {
        const int i = row * H + j0;
        __global float *gr = g + (size_t)row * ld + j0;
        __global const float *hr = hh + (size_t)row * ld + j0;
        GRU_FWD_BODY(float8, LD8, sigm8, ftanh8, ST8)
        return;
    }
    for (int j = j0; j < H; ++j) {
        const int i = row * H + j;
        __global float *gr = g + (size_t)row * ld + j;
        __global const float *hr = hh + (size_t)row * ld + j;
        GRU_FWD_BODY(float, LD1, sigm, ftanh, ST1)
    }
}

/* Gradients of the gate pre-activations from dy = ∂L/∂h':
 *   daz = dy (h − c) z (1 − z),  dac = dy (1 − z)(1 − c²),  dar = dac · hc · r (1 − r),
 *   dhc = dac · r (the gradient of hc = h·W_chᵀ),  dh_prev (+)= dy · z (the direct path;
 *   the GEMMs add daz·W_zh + dar·W_rh + dhc·W_ch).
 * z, r, c and hc come from the forward's g and hh (ld floats a row); the gradients go to
 * row `row` of da at `off`, 4H wide: [daz | dar | dac | dhc]. */
#define GRU_BWD_BODY(T, LOAD, STORE)                                                      \
    const T gy = LOAD(dy + i), zi = LOAD(gr), ri = LOAD(gr + w), ci = LOAD(gr + 2 * w);   \
    const T h = has_prev ? LOAD(hprev + i) : (T)0.0f;                                    \
    const T q = has_prev ? LOAD(hr + 2 * w) : (T)0.0f;                                   \
    const T a_c = gy * (1.0f - zi) * (1.0f - ci * ci);                                   \
    STORE(d, gy * (h - ci) * zi * (1.0f - zi));                                          \
    STORE(d + H, a_c * q * ri * (1.0f - ri));                                            \
    STORE(d + 2 * H, a_c);                                                               \
    STORE(d + 3 * H, a_c * ri);                                                          \
    if (want_dh) STORE(dhprev + i, acc_dh ? LOAD(dhprev + i) + gy * zi : gy * zi);

__kernel void gru_bwd(__global const float *dy, __global const float *g,
                      __global const float *hh, __global const float *hprev,
                      __global float *da, const int off, const int H, const int ld,
                      __global float *dhprev, const int n,
                      const int has_prev, const int want_dh, const int acc_dh) {
    const int j0 = get_global_id(0) * 8, row = get_global_id(1);
    if (j0 >= H || row * H >= n) return;
    const int w = ld / 3;
    if (j0 + 8 <= H) {
        const int i = row * H + j0;
        __global const float *gr = g + (size_t)row * ld + j0;
        __global const float *hr = hh + (size_t)row * ld + j0;
        __global float *d = da + off + (size_t)row * 4 * H + j0;
        GRU_BWD_BODY(float8, LD8, ST8)
        return;
    }
    for (int j = j0; j < H; ++j) {
        const int i = row * H + j;
        __global const float *gr = g + (size_t)row * ld + j;
        __global const float *hr = hh + (size_t)row * ld + j;
        __global float *d = da + off + (size_t)row * 4 * H + j;
        GRU_BWD_BODY(float, LD1, ST1)
    }
}

/* ---- lstm ----------------------------------------------------------------------------------
 * i, f, o = σ(·), g = tanh(·), c' = f ⊙ c + i ⊙ g, h' = o ⊙ tanh(c'). */
__kernel void lstm_fwd(__global float *ai, __global float *af, __global float *ao,
                       __global float *ag, __global const float *cprev, __global float *c,
                       __global float *y, const int n, const int has_prev) {
    int k = get_global_id(0);
    if (k >= n) return;
    float i = sigm(ai[k]), f = sigm(af[k]), o = sigm(ao[k]), g = ftanh(ag[k]);
    float cn = f * (has_prev ? cprev[k] : 0.0f) + i * g;
    ai[k] = i; af[k] = f; ao[k] = o; ag[k] = g;
    c[k] = cn;
    y[k] = o * ftanh(cn);
}

/* dc = dy·o·(1 − tanh²c') + dc_next (from step t+1, when there is one); the gates'
 * pre-activation gradients; dc_prev = dc·f for step t−1. */
__kernel void lstm_bwd(__global const float *dy, __global const float *ig,
                       __global const float *fg, __global const float *og,
                       __global const float *gg, __global const float *c,
                       __global const float *cprev, __global const float *dcnext,
                       __global float *dai, __global float *daf, __global float *dao,
                       __global float *dag, __global float *dcprev, const int n,
                       const int has_prev, const int has_next, const int want_dc) {
    int k = get_global_id(0);
    if (k >= n) return;
    float d = dy[k], i = ig[k], f = fg[k], o = og[k], g = gg[k];
    float tc = ftanh(c[k]);
    float cp = has_prev ? cprev[k] : 0.0f;
    float dc = d * o * (1.0f - tc * tc) + (has_next ? dcnext[k] : 0.0f);
    dai[k] = dc * g * i * (1.0f - i);
    daf[k] = dc * cp * f * (1.0f - f);
    dao[k] = d * tc * o * (1.0f - o);
    dag[k] = dc * i * (1.0f - g * g);
    if (want_dc) dcprev[k] = dc * f;
}

/* ---- rnn: h' = act(a), a = x·W_hxᵀ + h·W_hhᵀ + b (act: tanh, or relu when relu = 1) ------- */
__kernel void rnn_fwd(__global const float *a, __global float *y, const int n, const int relu) {
    int i = get_global_id(0);
    if (i >= n) return;
    float v = a[i];
    y[i] = relu ? (v > 0.0f ? v : 0.0f) : ftanh(v);
}

__kernel void rnn_bwd(__global const float *dy, __global const float *y, __global float *da,
                      const int n, const int relu) {
    int i = get_global_id(0);
    if (i >= n) return;
    float o = y[i];
    da[i] = relu ? (o > 0.0f ? dy[i] : 0.0f) : dy[i] * (1.0f - o * o);
}
