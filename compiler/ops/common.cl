/* Kernels every lowering may use. */
__kernel void fill(__global float *x, const int n, const float value) {
    int i = get_global_id(0);
    if (i < n) x[i] = value;
}

/* y (+)= x, element-wise. */
__kernel void copy(__global const float *x, __global float *y, const int n, const int acc) {
    int i = get_global_id(0);
    if (i < n) y[i] = acc ? y[i] + x[i] : x[i];
}

/* out[j] (+)= sum over rows of x[rows, cols] column j (bias gradients).  A work-item adds
 * 8 neighbouring columns as one float8 down the rows (emit.py's COL_SUM_COLS): one column
 * a work-item (a scalar load per row) took 3x as long on the MLP's bias gradients. */
typedef float8 colsum8u __attribute__((aligned(4)));
__kernel void col_sum(__global const float *x, __global float *out, const int rows,
                      const int cols, const int acc) {
    const int j0 = (int)get_global_id(0) * 8;
    if (j0 >= cols) return;
    if (j0 + 8 <= cols) {
        float8 s = 0.0f;
        for (int r = 0; r < rows; ++r) s += *(__global const colsum8u *)(x + r * cols + j0);
        __global colsum8u *o = (__global colsum8u *)(out + j0);
        *o = acc ? *o + s : s;
        return;
    }
    for (int j = j0; j < cols; ++j) {
        float s = 0.0f;
        for (int r = 0; r < rows; ++r) s += x[r * cols + j];
        out[j] = acc ? out[j] + s : s;
    }
}
