/* Connection kernels: strided block copies (concat, slice), embedding, onehot, argmax. */

/* dst[d_off + r·d_ld + c] (+)= src[s_off + r·s_ld + c] for r < rows, c < cols. */
__kernel void block_copy(__global const float *src, const int s_off, const int s_ld,
                         __global float *dst, const int d_off, const int d_ld, const int rows,
                         const int cols, const int acc) {
    const int i = get_global_id(0);
    if (i >= rows * cols) return;
    const int r = i / cols, c = i - r * cols;
    const float v = src[(size_t)s_off + (size_t)r * s_ld + c];
    __global float *d = dst + (size_t)d_off + (size_t)r * d_ld + c;
    *d = acc ? *d + v : v;
}

/* The same for integer tensors (ids, labels): no gradient, so no accumulation. */
__kernel void block_copy_int(__global const int *src, const int s_off, const int s_ld,
                             __global int *dst, const int d_off, const int d_ld, const int rows,
                             const int cols) {
    const int i = get_global_id(0);
    if (i >= rows * cols) return;
    const int r = i / cols, c = i - r * cols;
    dst[(size_t)d_off + (size_t)r * d_ld + c] = src[(size_t)s_off + (size_t)r * s_ld + c];
}

/* y[r, d] = w[ids[r], d]; an id outside 0..V-1 gives a zero row. */
__kernel void embedding_fwd(__global const int *ids, __global const float *w,
                            __global float *y, const int n, const int D, const int V) {
    const int i = get_global_id(0);
    if (i >= n * D) return;
    const int r = i / D, d = i - r * D;
    const int id = ids[r];
    y[i] = (id >= 0 && id < V) ? w[(size_t)id * D + d] : 0.0f;
}

/* dw[v, d] (+)= Σ_{r: ids[r] == v} dy[r, d]: one work-item per (v, d) scanning the ids in
 * order, so the sum is deterministic and needs no atomics. */
__kernel void embedding_bwd(__global const int *ids, __global const float *dy,
                            __global float *dw, const int n, const int D, const int V,
                            const int acc) {
    const int d = get_global_id(0), v = get_global_id(1);
    if (d >= D || v >= V) return;
    float s = 0.0f;
    for (int r = 0; r < n; ++r)
        if (ids[r] == v) s += dy[(size_t)r * D + d];
    const size_t o = (size_t)v * D + d;
    dw[o] = acc ? dw[o] + s : s;
}

__kernel void onehot_fwd(__global const int *ids, __global float *y, const int n, const int V) {
    const int i = get_global_id(0);
    if (i >= n * V) return;
    const int r = i / V, j = i - r * V;
    y[i] = ids[r] == j ? 1.0f : 0.0f;
}

/* The index of the first largest feature of each sample. */
__kernel void argmax_fwd(__global const float *x, __global int *y, const int batch,
                         const int D) {
    const int r = get_global_id(0);
    if (r >= batch) return;
    __global const float *p = x + (size_t)r * D;
    float m = p[0];
    int best = 0;
    for (int c = 1; c < D; ++c) if (p[c] > m) { m = p[c]; best = c; }
    y[r] = best;
}

/* dst[d_off + r·d_ld + c] (+)= alpha·src[s_off + r·s_ld + c]: a block copy that scales, for
 * the partitioned executor (a loss copy's gradient is the mean over its rows; scaled by
 * rows/batch it is its share of the mean over the whole batch). */
__kernel void block_copy_scaled(__global const float *src, const int s_off, const int s_ld,
                                __global float *dst, const int d_off, const int d_ld,
                                const int rows, const int cols, const int acc,
                                const float alpha) {
    const int i = get_global_id(0);
    if (i >= rows * cols) return;
    const int r = i / cols, c = i - r * cols;
    const float v = alpha * src[(size_t)s_off + (size_t)r * s_ld + c];
    __global float *d = dst + (size_t)d_off + (size_t)r * d_ld + c;
    *d = acc ? *d + v : v;
}
