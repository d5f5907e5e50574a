"""Domain drift made with OpenCV: rotation, Gaussian blur, Gaussian noise, contrast/brightness.

`permutation` (Permuted-MNIST, Goodfellow et al. 2013) is not a level but one fixed
pixel permutation per task: see `permute_pixels` and learning/federated_data.py.

A drift is a (kind, level) pair; `level` in [0, 1] scales each kind to its strongest form
(180 degrees, blur sigma 2.5, noise std 0.4 of the range, contrast 0.3 and brightness +70).
Transforms take uint8 images (N, H, W, C) and an explicit Generator (noise is the only
random part), so the same seed gives the same pixels; callers cache the result per client
and task instead of transforming per batch.
"""

from __future__ import annotations

import cv2
import numpy as np

KINDS = ("rotation", "blur", "noise", "contrast")
MAX_ANGLE = 180.0
MAX_BLUR_SIGMA = 2.5
MAX_NOISE_STD = 0.4 * 255.0
MIN_CONTRAST = 0.3
MAX_BRIGHTNESS = 70.0


def _per_image(x: np.ndarray, fn) -> np.ndarray:
    out = np.empty_like(x)
    for i in range(len(x)):
        img = fn(x[i])
        out[i] = img.reshape(x.shape[1:])  # OpenCV drops a single channel axis
    return out


def rotate(x: np.ndarray, angle: float) -> np.ndarray:
    """Rotate every image by `angle` degrees about its centre (black corners)."""
    if angle == 0:
        return x.copy()
    h, w = x.shape[1:3]
    m = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), float(angle), 1.0)
    return _per_image(x, lambda img: cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR))


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with standard deviation `sigma` pixels (kernel sized by OpenCV)."""
    if sigma <= 0:
        return x.copy()
    return _per_image(x, lambda img: cv2.GaussianBlur(img, (0, 0), float(sigma)))


def noise(x: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian pixel noise of standard deviation `std` (0-255 scale), clipped."""
    if std <= 0:
        return x.copy()
    noisy = x.astype(np.float32) + rng.normal(0.0, std, size=x.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def contrast(x: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """Pixel values scaled by `alpha` and shifted by `beta` (cv2.convertScaleAbs), saturated."""
    return _per_image(x, lambda img: cv2.convertScaleAbs(img, alpha=float(alpha), beta=float(beta)))


def permute_pixels(x: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Permuted-MNIST style drift: every image's pixels (all channels of a pixel move
    together) reordered by one fixed permutation `perm` of the H*W positions."""
    n, h, w = x.shape[:3]
    flat = x.reshape(n, h * w, -1)
    return np.ascontiguousarray(flat[:, perm]).reshape(x.shape)


def apply_drift(x: np.ndarray, kind: str, level: float, rng: np.random.Generator) -> np.ndarray:
    """`x` (N, H, W, C uint8) under drift `kind` at `level` in [0, 1]; `mixed` applies all four.

    Never mutates `x`. Level 0 is the identity (a copy).
    """
    level = float(level)
    if kind == "mixed":
        out = x
        for k in KINDS:
            out = apply_drift(out, k, level, rng)
        return out if out is not x else x.copy()
    if kind == "rotation":
        return rotate(x, MAX_ANGLE * level)
    if kind == "blur":
        return blur(x, MAX_BLUR_SIGMA * level)
    if kind == "noise":
        return noise(x, MAX_NOISE_STD * level, rng)
    if kind == "contrast":
        if level == 0:
            return x.copy()
        return contrast(x, 1.0 - (1.0 - MIN_CONTRAST) * level, MAX_BRIGHTNESS * level)
    raise ValueError(f"unknown drift kind {kind!r}; expected one of {[*KINDS, 'mixed']}")
