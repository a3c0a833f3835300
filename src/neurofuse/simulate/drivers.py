"""Neural drivers: the slow band-power fluctuations shared by the EEG and the BOLD.

One driver per band (``alpha``, ``beta``, plus any other band a custom coupling layout uses) is a smooth random process on a fine time
grid, z-scored (mean 0, SD 1 over the grid). The EEG rhythm of the band has the
amplitude envelope ``A * exp(ENVELOPE_GAIN * driver(t))``; the BOLD of the band's
regions changes by ``coupling * (HRF * driver)(t)`` (relative to baseline), with
nilearn's SPM canonical HRF normalised to unit sum.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

#: Bands whose power drives the BOLD.
BANDS: tuple[str, ...] = ("alpha", "beta")

#: Log-amplitude gain: EEG envelope = amplitude * exp(ENVELOPE_GAIN * driver).
ENVELOPE_GAIN = 0.4

#: Spacing (s) of the fine time grid on which drivers and regressors are defined.
DRIVER_DT = 0.05


@dataclass(frozen=True)
class Drivers:
    """Drivers and HRF-convolved regressors on a fine grid (BOLD time, s)."""

    times: np.ndarray
    drivers: dict[str, np.ndarray]
    regressors: dict[str, np.ndarray]

    def driver_at(self, band: str, t: np.ndarray) -> np.ndarray:
        """Driver of ``band`` at BOLD times ``t`` (linear interpolation)."""
        return np.interp(t, self.times, self.drivers[band])

    def regressor_at(self, band: str, t: np.ndarray) -> np.ndarray:
        """HRF-convolved driver of ``band`` at BOLD times ``t`` (linear interpolation)."""
        return np.interp(t, self.times, self.regressors[band])


@lru_cache(maxsize=8)
def hrf_kernel(dt: float, time_length: float = 32.0) -> np.ndarray:
    """nilearn's SPM canonical HRF sampled every ``dt`` s from 0, unit sum.

    ``spm_hrf`` samples its kernel on ``linspace(0, time_length, n)``, whose step is
    slightly larger than ``dt``; the kernel is interpolated onto the exact ``dt`` grid.
    """
    from nilearn.glm.first_level import spm_hrf

    oversampling = 20
    hrf = np.asarray(spm_hrf(dt * oversampling, oversampling=oversampling, time_length=time_length), float)
    stamps = np.linspace(0.0, time_length, hrf.size)
    grid = np.arange(0.0, time_length, dt)
    kernel = np.interp(grid, stamps, hrf)
    return kernel / kernel.sum()


def convolve_hrf(signal: np.ndarray, dt: float) -> np.ndarray:
    """Causal convolution of a regularly sampled signal with :func:`hrf_kernel`."""
    kernel = hrf_kernel(float(dt))
    return np.convolve(signal, kernel)[: signal.size]


def make_drivers(t_start: float, t_stop: float, rng: np.random.Generator, dt: float = DRIVER_DT,
                 bands: tuple[str, ...] = BANDS) -> Drivers:
    """Random drivers for ``bands`` (default :data:`BANDS`) on ``[t_start, t_stop]`` (BOLD time, s).

    Each driver mixes a fast (Gaussian smoothing SD 2 s) and a slow (SD 8 s) smoothed
    white noise, so that it fluctuates on the time scales the HRF passes; it is then
    z-scored. ``t_start`` should lie at least 32 s before the first BOLD volume so the
    HRF-convolved regressors have no start-up transient during the run.
    """
    n = int(np.floor((t_stop - t_start) / dt)) + 2
    times = np.round(t_start + dt * np.arange(n), 9)
    drivers: dict[str, np.ndarray] = {}
    regressors: dict[str, np.ndarray] = {}
    for band in bands:
        fast = ndimage.gaussian_filter1d(rng.standard_normal(times.size), 2.0 / dt, mode="reflect")
        slow = ndimage.gaussian_filter1d(rng.standard_normal(times.size), 8.0 / dt, mode="reflect")
        x = fast / fast.std() + 1.2 * slow / slow.std()
        x = (x - x.mean()) / x.std()
        drivers[band] = x
        regressors[band] = convolve_hrf(x, dt)
    return Drivers(times=times, drivers=drivers, regressors=regressors)
