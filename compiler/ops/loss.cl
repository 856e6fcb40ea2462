/* Losses, one work-item per sample.  Each writes the per-sample loss (and top-k hit) so the
 * host reads one small vector per step; the backward kernels write the gradient of the batch
 * mean, as SINGA's loss layers do. */

/* softmax_loss: p = softmax(logits); loss = -log p[label]; hit = label among the top k. */
__kernel void softmax_loss_fwd(__global const float *logits, __global const int *label,
                               __global float *prob, __global float *loss,
                               __global float *hit, const int batch, const int classes,
                               const int topk) {
    int r = get_global_id(0);
    if (r >= batch) return;
    __global const float *x = logits + r * classes;
    __global float *p = prob + r * classes;
    float m = x[0];
    for (int c = 1; c < classes; ++c) m = fmax(m, x[c]);
    float s = 0.0f;
    for (int c = 0; c < classes; ++c) { float e = vexp(x[c] - m); p[c] = e; s += e; }
    float inv = 1.0f / s;
    for (int c = 0; c < classes; ++c) p[c] *= inv;
    int t = label[r];
    if (t < 0 || t >= classes) { loss[r] = NAN; hit[r] = 0.0f; return; }
    loss[r] = -log(fmax(p[t], 1e-30f));
    /* rank of the true class: how many classes score strictly higher */
    int higher = 0;
    for (int c = 0; c < classes; ++c) higher += x[c] > x[t];
    hit[r] = higher < topk ? 1.0f : 0.0f;
}

__kernel void softmax_loss_bwd(__global const float *prob, __global const int *label,
                               __global float *dx, const int batch, const int classes,
                               const float scale, const int acc) {
    int j = get_global_id(0);
    if (j >= batch * classes) return;
    int r = j / classes, c = j - r * classes;
    float g = (prob[j] - (c == label[r] ? 1.0f : 0.0f)) * scale / batch;
    dx[j] = acc ? dx[j] + g : g;
}

/* euclidean_loss: loss = ½ Σ (x − t)² per sample, gradient (x − t)/batch: SINGA's gradient,
 * and the loss whose derivative it is. */
__kernel void euclidean_loss_fwd(__global const float *x, __global const float *t,
                                 __global float *loss, const int batch, const int dim) {
    int r = get_global_id(0);
    if (r >= batch) return;
    float s = 0.0f;
    for (int c = 0; c < dim; ++c) { float d = x[r * dim + c] - t[r * dim + c]; s += d * d; }
    loss[r] = 0.5f * s;
}

__kernel void euclidean_loss_bwd(__global const float *x, __global const float *t,
                                 __global float *dx, __global float *dt, const int n,
                                 const int batch, const int want_dx, const int acc_dx,
                                 const int want_dt, const int acc_dt) {
    int j = get_global_id(0);
    if (j >= n) return;
    float g = (x[j] - t[j]) / batch;
    if (want_dx) dx[j] = acc_dx ? dx[j] + g : g;
    if (want_dt) dt[j] = acc_dt ? dt[j] - g : -g;
}
