"""NumPy reference for RMSNorm, computed in float64 and returned as float32."""

import numpy as np


def rmsnorm(x: np.ndarray, w: np.ndarray, rows: int, cols: int, eps: float) -> np.ndarray:
    x64 = x.astype(np.float64)
    rms = np.sqrt(np.mean(x64 * x64, axis=-1, keepdims=True) + eps)
    return (x64 / rms * w.astype(np.float64)).astype(np.float32)
