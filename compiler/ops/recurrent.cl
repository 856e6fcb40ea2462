/* Recurrent cells over a whole sequence batch, one launch per time step and direction, and
 * the sequence helpers.  Sequence buffers are batch-major: row b·T + t holds step t of
 * sequence b (a text field [B, T] as uploaded), so step t's rows of a buffer `width` floats
 * wide start at t·width and lie T·width apart; each step kernel takes (offset, row stride)
 * for them.  Per-step state that no later layer reads (dh, dc of the step being
 * back-propagated) is a plain [B, H] buffer.  The GEMMs (x·W_gxᵀ + b_g over all steps at
 * once, h·W_ghᵀ per step, their gradients) go through the shared sgemm programs; these
 * kernels are the element-wise rest.  `has_prev` = 0 is step 0 without a carried state: h_prev
 * (and c_prev) are zeros and their buffers are not read.  Gate buffers hold pre-activations
 * after the GEMMs and the gate values after the forward kernel (the backward reads those). */

/* dst[b] = scale · Σ_t src[b·T + t]: a per-row loss of every step, summed per sequence. */
__kernel void seq_sum(__global const float *src, __global float *dst, const int rows,
                      const int T, const float scale) {
    int b = get_global_id(0);
    if (b >= rows) return;
    float s = 0.0f;
    for (int t = 0; t < T; ++t) s += src[(size_t)b * T + t];
    dst[b] = scale * s;
}

/* dst[g·spacing + i] = src_g[i], i < n: three params side by side (one stacked operand).
 * Eight values a work-item, as vectors. */
typedef float8 f8u __attribute__((aligned(4)));      /* any float offset */
__kernel void stack3(__global const float *s0, __global const float *s1,
                     __global const float *s2, __global float *dst, const int n,
                     const int spacing) {
    const int i = get_global_id(0) * 8;
    if (i >= n) return;
    if (i + 8 <= n) {
        *(__global f8u *)(dst + i) = *(__global const f8u *)(s0 + i);
        *(__global f8u *)(dst + spacing + i) = *(__global const f8u *)(s1 + i);
        *(__global f8u *)(dst + 2 * spacing + i) = *(__global const f8u *)(s2 + i);
        return;
    }
    for (int j = i; j < n; ++j) {
        dst[j] = s0[j];
        dst[spacing + j] = s1[j];
        dst[2 * spacing + j] = s2[j];
    }
}

/* out[j] (+)= Σ_r x[r·ld + off + j], j < cols: a bias gradient from a column block of a
 * history buffer.  One work-item per 8 columns, reading each row's 8 as one vector (rows are
 * ld apart: one work-item per column would touch every row's cache line 8 times). */
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
 * g holds, per row, the input parts az | ar | ac at columns 0, w, 2w (each gate at a
 * panel-aligned column, see recurrent_cl.py), hh the recurrent parts h·W_ghᵀ at columns 0,
 * wh, 2wh; z, r, c replace az, ar, ac in g (the backward reads them).  g's rows are at
 * (goff, gld), hh's at (hoff, hld); y and hist (h_prev of each step, for the dW GEMMs and
 * the backward; written with `keep`) share (yoff, yld); h_prev is read at (poff, pld).
 * A work-item of either gru kernel takes 8 hidden units of every row of the step, as float8
 * vectors (fastmath's exp written on 8 lanes), a scalar tail past the last whole 8. */
#define LD8(p) (*(__global const f8u *)(p))
#define ST8(p, v) (*(__global f8u *)(p) = (v))
#define LD1(p) (*(p))
#define ST1(p, v) (*(p) = (v))

#define GRU_FWD_BODY(T, LOAD, SIGM, TANH, STORE, o)                                      \
    {                                                                                     \
    const T h = has_prev ? LOAD(hp + o) : (T)0.0f;                                       \
    const T z = SIGM(LOAD(gr + o) + (has_prev ? LOAD(hr + o) : (T)0.0f));                \
    const T r = SIGM(LOAD(gr + w + o) + (has_prev ? LOAD(hr + wh + o) : (T)0.0f));       \
    const T q = has_prev ? LOAD(hr + 2 * wh + o) : (T)0.0f;                              \
    const T c = TANH(r * q + LOAD(gr + 2 * w + o));                                      \
    STORE(gr + o, z); STORE(gr + w + o, r); STORE(gr + 2 * w + o, c);                    \
    STORE(yr + o, z * (h - c) + c);                                                      \
    if (keep) STORE(kr + o, h);                                                          \
    }

#define GRU_FWD_ROW(row)                                                                  \
    __global float *gr = g + goff + (size_t)(row) * gld + j0;                            \
    __global const float *hr = hh + hoff + (size_t)(row) * hld + j0;                     \
    __global const float *hp = hprev + poff + (size_t)(row) * pld + j0;                  \
    __global float *yr = y + yoff + (size_t)(row) * yld + j0;                            \
    __global float *kr = hist + yoff + (size_t)(row) * yld + j0;

__kernel void gru_fwd(__global float *g, const int goff, const int gld, const int w,
                      __global const float *hh, const int hoff, const int hld, const int wh,
                      __global const float *hprev, const int poff, const int pld,
                      __global float *y, __global float *hist, const int yoff, const int yld,
                      const int rows, const int H, const int has_prev, const int keep) {
    const int j0 = get_global_id(0) * 8;
    if (j0 >= H) return;
    if (j0 + 8 <= H) {
        for (int row = 0; row < rows; ++row) {
            GRU_FWD_ROW(row)
            GRU_FWD_BODY(float8, LD8, sigm8, ftanh8, ST8, 0)
        }
        return;
    }
    for (int row = 0; row < rows; ++row) {
        GRU_FWD_ROW(row)
        for (int o = 0; o < H - j0; ++o) GRU_FWD_BODY(float, LD1, sigm, ftanh, ST1, o)
    }
}

/* Gradients of the gate pre-activations from gy = ∂L/∂h' (dy of this step, + dnext: the
 * gradient reaching h' through the next step, when there is one):
 *   daz = gy (h − c) z (1 − z),  dac = gy (1 − z)(1 − c²),  dar = dac · hc · r (1 − r),
 *   dhc = dac · r (the gradient of hc = h·W_chᵀ),  dh_prev = gy · z (the direct path; the
 *   GEMM adds [daz | dar | dhc]·[W_zh; W_rh; W_ch]).
 * z, r, c and hc come from the forward's g and hh, h_prev from hist; the gradients go to
 * the row of da (doff, dld), 4H wide: [dac | daz | dar | dhc] — the input side's three
 * (c, z, r) and the recurrent side's three (z, r, hc) each contiguous.  dnext and dhprev
 * are [rows, H].  The biases' gradients are the sums of daz, dar, dac over all rows of all
 * steps: a work-item owns 8 units and loops over the step's rows, so it adds its sums to
 * db_z, db_r, db_c itself (steps run one after another; add_* = 0 overwrites: the first
 * step the backward reaches, when that param's gradient starts there). */
#define GRU_BWD_BODY(T, LOAD, STORE, o)                                                   \
    {                                                                                     \
    const T gy = LOAD(dyr + o) + (has_next ? LOAD(dn + o) : (T)0.0f);                    \
    const T zi = LOAD(gr + o), ri = LOAD(gr + w + o), ci = LOAD(gr + 2 * w + o);          \
    const T h = has_prev ? LOAD(hp + o) : (T)0.0f;                                       \
    const T q = has_prev ? LOAD(hr + 2 * wh + o) : (T)0.0f;                              \
    const T a_c = gy * (1.0f - zi) * (1.0f - ci * ci);                                   \
    const T a_z = gy * (h - ci) * zi * (1.0f - zi);                                      \
    const T a_r = a_c * q * ri * (1.0f - ri);                                            \
    STORE(d + o, a_c); STORE(d + H + o, a_z); STORE(d + 2 * H + o, a_r);                 \
    STORE(d + 3 * H + o, a_c * ri);                                                      \
    if (want_dh) STORE(dp + o, gy * zi);                                                 \
    sz += a_z; sr += a_r; sc += a_c;                                                     \
    }

#define GRU_BWD_ROW(row)                                                                  \
    __global const float *dyr = dy + yoff + (size_t)(row) * yld + j0;                    \
    __global const float *hp = hist + yoff + (size_t)(row) * yld + j0;                   \
    __global const float *dn = dnext + (size_t)(row) * H + j0;                           \
    __global const float *gr = g + goff + (size_t)(row) * gld + j0;                      \
    __global const float *hr = hh + hoff + (size_t)(row) * hld + j0;                     \
    __global float *d = da + doff + (size_t)(row) * dld + j0;                            \
    __global float *dp = dhprev + (size_t)(row) * H + j0;

__kernel void gru_bwd(__global const float *dy, __global const float *hist, const int yoff,
                      const int yld, __global const float *dnext, const int has_next,
                      __global const float *g, const int goff, const int gld, const int w,
                      __global const float *hh, const int hoff, const int hld, const int wh,
                      __global float *da, const int doff, const int dld,
                      __global float *dhprev, const int want_dh, const int rows, const int H,
                      const int has_prev, __global float *db_z, __global float *db_r,
                      __global float *db_c, const int add_z, const int add_r,
                      const int add_c) {
    const int j0 = get_global_id(0) * 8;
    if (j0 >= H) return;
    if (j0 + 8 <= H) {
        float8 sz = 0.0f, sr = 0.0f, sc = 0.0f;
        for (int row = 0; row < rows; ++row) {
            GRU_BWD_ROW(row)
            GRU_BWD_BODY(float8, LD8, ST8, 0)
        }
        ST8(db_z + j0, add_z ? LD8(db_z + j0) + sz : sz);
        ST8(db_r + j0, add_r ? LD8(db_r + j0) + sr : sr);
        ST8(db_c + j0, add_c ? LD8(db_c + j0) + sc : sc);
        return;
    }
    for (int o = 0; o < H - j0; ++o) {
        float sz = 0.0f, sr = 0.0f, sc = 0.0f;
        for (int row = 0; row < rows; ++row) {
            GRU_BWD_ROW(row)
            GRU_BWD_BODY(float, LD1, ST1, o)
        }
        db_z[j0 + o] = add_z ? db_z[j0 + o] + sz : sz;
        db_r[j0 + o] = add_r ? db_r[j0 + o] + sr : sr;
        db_c[j0 + o] = add_c ? db_c[j0 + o] + sc : sc;
    }
}

/* ---- lstm and rnn: one work-item per (row, unit) of a step ---------------------------------
 * Element i of the step (row r = i / H, unit j) sits at off + r·ld + j of the sequence
 * buffers (gates, c, y, hist, dy, the gates' gradients: all [B·T, H]); h_prev and c_prev at
 * poff + r·pld + j; the per-step state gradients (dnext, dcnext, dcprev) at i. */
#define SEQ(i) (off + (size_t)((i) / H) * ld + (i) % H)
#define PREV(i) (poff + (size_t)((i) / H) * pld + (i) % H)

/* i, f, o = σ(·), g = tanh(·), c' = f ⊙ c + i ⊙ g, h' = o ⊙ tanh(c'); with `keep`, h_prev
 * goes to hist. */
__kernel void lstm_fwd(__global float *ai, __global float *af, __global float *ao,
                       __global float *ag, __global float *c, __global float *y,
                       __global float *hist, const int off, const int ld,
                       __global const float *cprev, __global const float *hprev,
                       const int poff, const int pld, const int n, const int H,
                       const int has_prev, const int keep) {
    int e = get_global_id(0);
    if (e >= n) return;
    const size_t k = SEQ(e), p = PREV(e);
    float i = sigm(ai[k]), f = sigm(af[k]), o = sigm(ao[k]), g = ftanh(ag[k]);
    float cn = f * (has_prev ? cprev[p] : 0.0f) + i * g;
    ai[k] = i; af[k] = f; ao[k] = o; ag[k] = g;
    c[k] = cn;
    y[k] = o * ftanh(cn);
    if (keep) hist[k] = has_prev ? hprev[p] : 0.0f;
}

/* dh = dy + dnext (the gradient through the next step), dc = dh·o·(1 − tanh²c') + dcnext;
 * the gates' pre-activation gradients; dc_prev = dc·f for the previous step. */
__kernel void lstm_bwd(__global const float *dy, __global const float *dnext,
                       const int has_next, __global const float *ig, __global const float *fg,
                       __global const float *og, __global const float *gg,
                       __global const float *c, const int off, const int ld,
                       __global const float *cprev, const int poff, const int pld,
                       __global const float *dcnext, __global float *dai, __global float *daf,
                       __global float *dao, __global float *dag, __global float *dcprev,
                       const int n, const int H, const int has_prev, const int want_dc) {
    int e = get_global_id(0);
    if (e >= n) return;
    const size_t k = SEQ(e);
    float d = dy[k] + (has_next ? dnext[e] : 0.0f);
    float i = ig[k], f = fg[k], o = og[k], g = gg[k];
    float tc = ftanh(c[k]);
    float cp = has_prev ? cprev[PREV(e)] : 0.0f;
    float dc = d * o * (1.0f - tc * tc) + (has_next ? dcnext[e] : 0.0f);
    dai[k] = dc * g * i * (1.0f - i);
    daf[k] = dc * cp * f * (1.0f - f);
    dao[k] = d * tc * o * (1.0f - o);
    dag[k] = dc * i * (1.0f - g * g);
    if (want_dc) dcprev[e] = dc * f;
}

/* rnn: h' = act(a), a = x·W_hxᵀ + h·W_hhᵀ + b (act: tanh, or relu when relu = 1), in place
 * of a's row; with `keep`, h_prev goes to hist. */
__kernel void rnn_fwd(__global const float *a, __global float *y, __global float *hist,
                      const int off, const int ld, __global const float *hprev,
                      const int poff, const int pld, const int n, const int H,
                      const int has_prev, const int relu, const int keep) {
    int e = get_global_id(0);
    if (e >= n) return;
    const size_t k = SEQ(e);
    float v = a[k];
    y[k] = relu ? (v > 0.0f ? v : 0.0f) : ftanh(v);
    if (keep) hist[k] = has_prev ? hprev[PREV(e)] : 0.0f;
}

__kernel void rnn_bwd(__global const float *dy, __global const float *dnext,
                      const int has_next, __global const float *y, __global float *da,
                      const int off, const int ld, const int n, const int H, const int relu) {
    int e = get_global_id(0);
    if (e >= n) return;
    const size_t k = SEQ(e);
    float g = dy[k] + (has_next ? dnext[e] : 0.0f);
    float o = y[k];
    da[k] = relu ? (o > 0.0f ? g : 0.0f) : g * (1.0f - o * o);
}
