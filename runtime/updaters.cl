/* Parameter updaters: SINGA's server-side update rules (src/utils/updater.cc, v0.3).
 *
 * One kernel per rule, all with the same arguments so one launcher serves them all:
 *
 *   update_<kind>(__global float *w,        parameter values, updated in place
 *                 __global const float *g,  gradient (not modified)
 *                 __global float *h,        "history" state (SINGA's Param::history)
 *                 __global float *u,        "update" state  (SINGA's Param::update)
 *                 const int n,              number of elements
 *                 const float lr,           schedule(step) * lr_scale
 *                 const float wd,           weight_decay * wd_scale
 *                 const float grad_scale,   1 / number of gradients summed (server side)
 *                 const float clip_lo, const float clip_hi,
 *                                           clip g into [clip_lo, clip_hi] first, only when
 *                                           clip_hi > clip_lo (and only for sgd, nesterov,
 *                                           adagrad, rmsprop, as in SINGA)
 *                 const float hyper0,       momentum (sgd, nesterov), rho (rmsprop,
 *                                           adadelta), beta1 (adam, adamax); else unused
 *                 const float hyper1,       beta2 (adam, adamax); else unused
 *                 const float delta)        the epsilon added under square roots / to U
 *
 * A rule that needs no h or u buffer never reads or writes it: pass one dummy buffer
 * (of any size) in its place.  Unused: u for sgd, nesterov, adagrad, rmsprop; h too for
 * sgd without momentum.
 *
 * Work split: work-item i handles the UPD_CHUNK contiguous elements starting at
 * i * UPD_CHUNK; a whole chunk is loaded as one float8 (plain vector arithmetic, which
 * PoCL compiles to straight SIMD code), the ragged tail element by element.  Launch with
 * global size = round_up(ceil(n / UPD_CHUNK), local) and an explicit local size (e.g. 64):
 * work-items past the end return at once.  Buffers must start 32-byte aligned, which every
 * cl.Buffer and sub-buffer is (CL_DEVICE_MEM_BASE_ADDR_ALIGN is larger).
 *
 * Every rule is first the common prologue, then its own formula:
 *   g = clip(g); g = g * grad_scale; if (wd > 0) g = g + wd * w;
 * The formulas are written once as macros over a type T so the float8 body and the
 * scalar tail cannot drift apart.
 */

/* float8 is one AVX2 register.  float16 measured no faster (the update is memory-bound)
 * and, on machines without AVX-512, makes clang warn about the ABI of every builtin call
 * (sqrt, clamp, fmax) at each build.  Keep UPDATE_CHUNK in updaters.py equal to this. */
#define UPD_CHUNK 8
typedef float8 updvec;

#define UPD_ARGS __global float *w, __global const float *g, __global float *h, \
    __global float *u, const int n, const float lr, const float wd,             \
    const float grad_scale, const float clip_lo, const float clip_hi,           \
    const float hyper0, const float hyper1, const float delta

/* CLIPS is 1 for the rules SINGA clips, 0 for the others. */
#define PROLOGUE(CLIPS, W, G)                                  \
    if ((CLIPS) && clip_hi > clip_lo) G = clamp(G, clip_lo, clip_hi); \
    G = G * grad_scale;                                        \
    if (wd > 0.0f) G = W * wd + G;

/* Rules: W, G, H, U are lvalues (vectors or scalars) of type T. */

#define RULE_SGD(T, W, G, H, U)                                \
    if (hyper0 > 0.0f) { H = H * hyper0 - lr * G; W = W + H; } \
    else { W = W - lr * G; }

#define RULE_NESTEROV(T, W, G, H, U)                           \
    { T prev = H;                                              \
      H = H * hyper0 + lr * G;                                 \
      W = W - ((1.0f + hyper0) * H - hyper0 * prev); }

#define RULE_ADAGRAD(T, W, G, H, U)                            \
    H = H + G * G;                                             \
    W = W - lr * G / sqrt(H + delta);

#define RULE_RMSPROP(T, W, G, H, U)                            \
    H = H * hyper0 + (1.0f - hyper0) * (G * G);                \
    W = W - lr * G / sqrt(H + delta);

#define RULE_ADADELTA(T, W, G, H, U)                           \
    { H = H * hyper0 + (1.0f - hyper0) * (G * G);              \
      T t = G * sqrt(U + delta) / sqrt(H + delta);             \
      U = U * hyper0 + (1.0f - hyper0) * (t * t);              \
      W = W - lr * t; }

#define RULE_ADAM(T, W, G, H, U)                               \
    H = H * hyper0 + (1.0f - hyper0) * G;                      \
    U = U * hyper1 + (1.0f - hyper1) * (G * G);                \
    W = W - lr * H / sqrt(U + delta);

#define RULE_ADAMAX(T, W, G, H, U)                             \
    H = H * hyper0 + (1.0f - hyper0) * G;                      \
    U = fmax(U * hyper1, fabs(G)) + delta;                     \
    W = W - lr * H / U;

/* One kernel: a float8 body for whole chunks, a scalar loop for the tail.
 * USES_H / USES_U say which state buffers the rule reads and writes, so rules without
 * them never touch the dummy buffer passed in their place. */
#define UPDATE_KERNEL(NAME, RULE, CLIPS, USES_H, USES_U)                        \
__kernel void NAME(UPD_ARGS)                                                    \
{                                                                               \
    const int chunk = (int)get_global_id(0);                                    \
    const int first = chunk * UPD_CHUNK;                                        \
    if (first >= n) return;                                                     \
    if (first + UPD_CHUNK <= n) {                                               \
        updvec wv = ((__global updvec *)w)[chunk];                              \
        updvec gv = ((__global const updvec *)g)[chunk];                        \
        updvec hv = (updvec)(0.0f), uv = (updvec)(0.0f);                        \
        if (USES_H) hv = ((__global updvec *)h)[chunk];                         \
        if (USES_U) uv = ((__global updvec *)u)[chunk];                         \
        PROLOGUE(CLIPS, wv, gv)                                                 \
        RULE(updvec, wv, gv, hv, uv)                                            \
        ((__global updvec *)w)[chunk] = wv;                                     \
        if (USES_H) ((__global updvec *)h)[chunk] = hv;                         \
        if (USES_U) ((__global updvec *)u)[chunk] = uv;                         \
    } else {                                                                    \
        const int end = min(first + UPD_CHUNK, n);                              \
        for (int i = first; i < end; ++i) {                                     \
            float ws = w[i], gs = g[i];                                         \
            float hs = USES_H ? h[i] : 0.0f, us = USES_U ? u[i] : 0.0f;         \
            PROLOGUE(CLIPS, ws, gs)                                             \
            RULE(float, ws, gs, hs, us)                                         \
            w[i] = ws;                                                          \
            if (USES_H) h[i] = hs;                                              \
            if (USES_U) u[i] = us;                                              \
        }                                                                       \
    }                                                                           \
}

/* sgd keeps a history only with momentum (hyper0 > 0); without, h is never touched and
 * may be a dummy buffer of any size. */
UPDATE_KERNEL(update_sgd,      RULE_SGD,      1, (hyper0 > 0.0f), 0)
UPDATE_KERNEL(update_nesterov, RULE_NESTEROV, 1, 1, 0)
UPDATE_KERNEL(update_adagrad,  RULE_ADAGRAD,  1, 1, 0)
UPDATE_KERNEL(update_rmsprop,  RULE_RMSPROP,  1, 1, 0)
UPDATE_KERNEL(update_adadelta, RULE_ADADELTA, 0, 1, 1)
UPDATE_KERNEL(update_adam,     RULE_ADAM,     0, 1, 1)
UPDATE_KERNEL(update_adamax,   RULE_ADAMAX,   0, 1, 1)
