/* Baseline RMSNorm: one accumulator in double, a division per element. */
#include <math.h>

void rmsnorm(float *out, const float *x, const float *w, int rows, int cols, float eps) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (long)r * cols;
        double sum = 0.0;
        for (int c = 0; c < cols; c++) sum += (double)xr[c] * xr[c];
        double rms = sqrt(sum / cols + eps);
        for (int c = 0; c < cols; c++) out[(long)r * cols + c] = (float)(xr[c] / rms * w[c]);
    }
}
