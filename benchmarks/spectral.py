"""Periodic-artefact measure: how far the 2-D power spectrum of images peaks at given frequencies.

A sub-pixel (pixel-shuffle) up-sampling stage of factor 2 whose r*r sub-pixel filters differ
leaves a pattern of period 2 output pixels (the checkerboard): spectral lines at 1/2 cycle per
pixel in x, y or both; a second stage (x4) adds lines at multiples of 1/4. Natural images have
smooth spectra there, so the ratio of the power at such a frequency to the median power of the
surrounding bins is about 1 for a clean image and large for a periodic artefact.

All functions are pure (NumPy in, NumPy/float out).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from facegen.colour import luma

PEAK_RADIUS = 6  # the background ring: bins at Chebyshev distance 3..PEAK_RADIUS from the frequency
PEAK_THRESHOLD = 4.0  # a ratio above this (6 dB) is a peak


def power_spectrum(images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Mean 2-D power spectrum (unshifted, ``np.fft.fft2`` bin order) of equal-size images.

    Each image (H, W) grey or (H, W, 3) RGB (reduced to BT.601 luma), any numeric dtype, has its
    mean removed and is multiplied by a 2-D Hann window before the transform, so the image's
    borders do not spread power along the axes.
    """
    arrs = [np.asarray(im, dtype=np.float64) for im in images]
    if not arrs:
        raise ValueError("power_spectrum needs at least one image")
    shape = arrs[0].shape
    if any(a.shape != shape for a in arrs):
        raise ValueError(f"power_spectrum needs images of one size; got {sorted({a.shape for a in arrs})}")
    if len(shape) == 3 and shape[2] == 3:
        arrs = [luma(a) for a in arrs]
    elif len(shape) != 2:
        raise ValueError(f"power_spectrum takes (H, W) or (H, W, 3) images; got {shape}")
    h, w = arrs[0].shape
    if min(h, w) < 2 * PEAK_RADIUS + 1:
        raise ValueError(f"images of {w}x{h} are too small for the peak measure (at least {2 * PEAK_RADIUS + 1})")
    window = np.outer(np.hanning(h), np.hanning(w))
    power = np.zeros((h, w))
    for a in arrs:
        power += np.abs(np.fft.fft2((a - a.mean()) * window)) ** 2
    return power / len(arrs)


def peak_ratio(power: np.ndarray, fy: float, fx: float) -> float:
    """Power at frequency (fy, fx) (cycles per pixel) over the median of its neighbourhood.

    The power at the frequency is the mean over its 3x3 bins (the Hann window spreads a pure line
    over +-1 bin). The background is the largest of three medians over bins at distance 3 to
    :data:`PEAK_RADIUS`: the square ring around it, the band of its own 3 rows, the band of its own
    3 columns; so a ridge through the frequency (the axes of a face spectrum carry one) is not
    taken for a peak, while a periodic pattern, a point, stands above all three. Indices wrap, as
    the spectrum is periodic. Frequencies must fall on a bin.
    """
    h, w = power.shape
    ky, kx = fy * h, fx * w
    if abs(ky - round(ky)) > 1e-9 or abs(kx - round(kx)) > 1e-9:
        raise ValueError(f"frequency ({fy}, {fx}) does not fall on a bin of a {w}x{h} spectrum")
    ky, kx = int(round(ky)), int(round(kx))
    d = np.arange(-PEAK_RADIUS, PEAK_RADIUS + 1)
    block = power[np.ix_((ky + d) % h, (kx + d) % w)]
    dy, dx = np.meshgrid(np.abs(d), np.abs(d), indexing="ij")
    cheb = np.maximum(dy, dx)
    centre = block[cheb <= 1].mean()
    background = max(np.median(block[cheb >= 3]), np.median(block[(dy <= 1) & (dx >= 3)]),
                     np.median(block[(dx <= 1) & (dy >= 3)]))
    return float(centre / max(background, 1e-30))


def shuffle_frequencies(period: int) -> list[tuple[float, float]]:
    """The frequencies (fy, fx) in [0, 1/2] where a pattern of ``period`` pixels puts its lines,
    except (0, 0): multiples of 1/period in each axis."""
    if period < 2:
        raise ValueError(f"period must be at least 2; got {period}")
    steps = [k / period for k in range(period // 2 + 1)]
    return [(fy, fx) for fy in steps for fx in steps if (fy, fx) != (0.0, 0.0)]


def periodic_peaks(images: Sequence[np.ndarray] | np.ndarray, period: int) -> dict[tuple[float, float], float]:
    """:func:`peak_ratio` of the images' mean spectrum at every frequency of ``period``."""
    power = power_spectrum(images)
    return {f: peak_ratio(power, *f) for f in shuffle_frequencies(period)}
