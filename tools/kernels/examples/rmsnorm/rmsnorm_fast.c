/* Candidate RMSNorm: eight independent float accumulators (the compiler vectorizes them
   without -ffast-math, since the order of additions is now explicit) and one reciprocal
   multiply per element instead of a division. */
#include <math.h>

void rmsnorm(float *out, const float *x, const float *w, int rows, int cols, float eps) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (long)r * cols;
        float *yr = out + (long)r * cols;
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int c = 0;
        for (; c + 8 <= cols; c += 8)
            for (int k = 0; k < 8; k++) acc[k] += xr[c + k] * xr[c + k];
        float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        for (; c < cols; c++) sum += xr[c] * xr[c];
        float inv = 1.0f / sqrtf(sum / cols + eps);
        for (c = 0; c < cols; c++) yr[c] = xr[c] * inv * w[c];
    }
}
