/* Math every op program starts with (prepended by compiler/emit.py). */

/* exp(v) in plain arithmetic that PoCL 3.0 vectorizes: its exp(), floor(), clamp(), fmin()
 * and fmax() are scalar library calls (exp ~7 ns an element; this is ~8x faster in the
 * gates).  2^t = 2^k·2^f with t = v·log2(e), k = round(t), |f| <= 1/2, 2^f by its degree-7
 * Taylor polynomial (relative error < 1e-7 in float); v is clamped to ±87. */
#define EXP2_POLY(f) (((((((1.525273380e-05f * (f) + 1.540353039e-04f) * (f) \
    + 1.333355815e-03f) * (f) + 9.618129108e-03f) * (f) + 5.550410866e-02f) * (f) \
    + 2.402265070e-01f) * (f) + 6.931471806e-01f) * (f) + 1.0f)   /* 2^f, |f| <= 1/2 */

inline float vexp(float v) {
    v = v < -87.0f ? -87.0f : (v > 87.0f ? 87.0f : v);
    float t = v * 1.44269504088896341f;
    int k = (int)(t + 128.5f) - 128;                 /* round(t), without floor() */
    float f = t - (float)k;
    return EXP2_POLY(f) * as_float((k + 127) << 23);
}
inline float sigm(float v) { return 1.0f / (1.0f + vexp(-v)); }
/* tanh through exp: PoCL's tanh() is a slow library call; saturates cleanly to ±1. */
inline float ftanh(float v) { return 1.0f - 2.0f / (vexp(2.0f * v) + 1.0f); }

/* The same on 8 lanes (PoCL does not vectorize the scalar ones across work-items in the
 * RBM's and the GRU's element-wise kernels). */
inline float8 vexp8(float8 v) {
    v = select(v, (float8)-87.0f, v < -87.0f);
    v = select(v, (float8)87.0f, v > 87.0f);
    const float8 t = v * 1.44269504088896341f;
    const int8 k = convert_int8(t + 128.5f) - 128;
    const float8 f = t - convert_float8(k);
    return EXP2_POLY(f) * as_float8((k + 127) << 23);
}
inline float8 sigm8(float8 v) { return 1.0f / (1.0f + vexp8(-v)); }
inline float8 ftanh8(float8 v) { return 1.0f - 2.0f / (vexp8(2.0f * v) + 1.0f); }
