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

/* ---- gru (SINGA's gru.cc) ----------------------------------------------------------------
 * z = σ(az), r = σ(ar), c = tanh(r ⊙ hc + ac) with hc = h·W_chᵀ, h' = z ⊙ (h − c) + c. */
__kernel void gru_fwd(__global float *az, __global float *ar, __global float *ac,
                      __global const float *hc, __global const float *hprev,
                      __global float *y, const int n, const int has_prev) {
    int i = get_global_id(0);
    if (i >= n) return;
    float h = has_prev ? hprev[i] : 0.0f;
    float q = has_prev ? hc[i] : 0.0f;
    float z = sigm(az[i]), r = sigm(ar[i]);
    float c = ftanh(r * q + ac[i]);
    az[i] = z; ar[i] = r; ac[i] = c;
    y[i] = z * (h - c) + c;
}

/* Gradients of the gate pre-activations from dy = ∂L/∂h':
 *   daz = dy (h − c) z (1 − z),  dac = dy (1 − z)(1 − c²),  dar = dac · hc · r (1 − r),
 *   dhc = dac · r (the gradient of hc = h·W_chᵀ),  dh_prev (+)= dy · z (the direct path;
 *   the GEMMs add daz·W_zh + dar·W_rh + dhc·W_ch). */
__kernel void gru_bwd(__global const float *dy, __global const float *z,
                      __global const float *r, __global const float *c,
                      __global const float *hc, __global const float *hprev,
                      __global float *daz, __global float *dar, __global float *dac,
                      __global float *dhc, __global float *dhprev, const int n,
                      const int has_prev, const int want_dh, const int acc_dh) {
    int i = get_global_id(0);
    if (i >= n) return;
    float g = dy[i], zi = z[i], ri = r[i], ci = c[i];
    float h = has_prev ? hprev[i] : 0.0f;
    float q = has_prev ? hc[i] : 0.0f;
    float a_c = g * (1.0f - zi) * (1.0f - ci * ci);
    daz[i] = g * (h - ci) * zi * (1.0f - zi);
    dac[i] = a_c;
    dar[i] = a_c * q * ri * (1.0f - ri);
    dhc[i] = a_c * ri;
    if (want_dh) dhprev[i] = acc_dh ? dhprev[i] + g * zi : g * zi;
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
