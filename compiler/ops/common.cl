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

/* out[j] (+)= sum over rows of x[rows, cols] column j (bias gradients). */
__kernel void col_sum(__global const float *x, __global float *out, const int rows,
                      const int cols, const int acc) {
    int j = get_global_id(0);
    if (j >= cols) return;
    float s = 0.0f;
    for (int r = 0; r < rows; ++r) s += x[r * cols + j];
    out[j] = acc ? out[j] + s : s;
}
