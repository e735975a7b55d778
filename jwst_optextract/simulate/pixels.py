"""The pixel model: one slit's pixels from a configuration, with noise, defects and variances.

`simulate_slit` builds the arrays of one slit in named steps, in the order in which they draw
from the random generator (the order is part of what a seed means): the geometry (widths,
jittered trace, pixel-integrated profile), the expected rate, the observed (noisy) data and
its true variance, the pipeline-like variances derived from the data, the defects (unflagged
cosmic rays and hot pixels, flagged NaN pixels and columns), the units, and the output
layout (float32 model arrays, transposed for ``dispersion_axis=2``, and the float64 truth).
numpy and scipy only: the datamodels are filled in `jwst_optextract.simulate.metadata`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import special

from ..io.dq import DO_NOT_USE
from .scene import (
    SceneConfig,
    SceneTruth,
    as_rng,
    column_coordinate,
    nominal_trace,
    source_spectrum,
    wavelength_canonical,
)

log = logging.getLogger(__name__)


def _gauss_pixel(z: np.ndarray) -> np.ndarray:
    """Pixel integrals of the unit normal density between consecutive edges.

    Parameters
    ----------
    z : numpy.ndarray
        ``(..., ny + 1, nx)`` standardised pixel edges, increasing along
        axis -2.

    Returns
    -------
    numpy.ndarray
        ``(..., ny, nx)`` integrals, accurate in both tails (only one upper
        tail probability is evaluated per edge).
    """
    q = special.ndtr(-np.abs(z))  # upper-tail probability of |z|
    lo, hi = z[..., :-1, :], z[..., 1:, :]
    qlo, qhi = q[..., :-1, :], q[..., 1:, :]
    return np.where(lo >= 0, qlo - qhi, np.where(hi <= 0, qhi - qlo, 1.0 - qlo - qhi))


def _moffat_cdf(t: np.ndarray, alpha: np.ndarray, beta: float) -> np.ndarray:
    """Normalised antiderivative of ``(1 + (t/alpha)**2) ** -beta`` in ``[-1, 1]``.

    Uses ``int_0^t (1 + s**2/a**2)**-b ds = a/2 B(1/2, b-1/2) I_z(1/2, b-1/2)``
    with ``z = t**2 / (a**2 + t**2)``.
    """
    z = t**2 / (alpha**2 + t**2)
    return np.sign(t) * special.betainc(0.5, beta - 0.5, z)


def _pixel_profile(cfg: SceneConfig, trace: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Pixel-integrated, column-normalised profile.

    Parameters
    ----------
    cfg : SceneConfig
        Configuration (profile kind and shape parameters).
    trace : numpy.ndarray
        ``(nx,)`` or ``(nints, nx)`` trace rows.
    width : numpy.ndarray
        ``(nx,)`` widths.

    Returns
    -------
    numpy.ndarray
        ``(ny, nx)`` or ``(nints, ny, nx)`` profile summing to one per column.
    """
    edges = np.arange(cfg.ny + 1, dtype=float)[:, None] - 0.5
    centre = np.expand_dims(trace, -2)  # (..., 1, nx)
    if cfg.profile == "gaussian":
        prof = _gauss_pixel((edges - centre) / width)
    elif cfg.profile == "double":
        r, sep = cfg.double_ratio, cfg.double_separation
        prof = _gauss_pixel((edges - (centre - r * sep / (1.0 + r))) / width)
        prof += r * _gauss_pixel((edges - (centre + sep / (1.0 + r))) / width)
    else:  # moffat
        cdf = _moffat_cdf(edges - centre, width, cfg.moffat_beta)
        prof = np.diff(cdf, axis=-2)
    norm = prof.sum(axis=-2, keepdims=True)
    if np.any(norm <= 1e-12):
        raise ValueError("The trace falls outside the slit: the profile vanishes in some columns")
    prof /= norm
    return prof


def _choose(rng: np.random.Generator, eligible: np.ndarray, count: int) -> np.ndarray:
    """Boolean mask with ``count`` random True pixels among ``eligible``."""
    mask = np.zeros(eligible.shape, dtype=bool)
    if count <= 0:
        return mask
    candidates = np.flatnonzero(eligible)
    if count > candidates.size:
        raise ValueError("Too many defects requested for the number of pixels")
    pick = candidates[rng.choice(candidates.size, size=count, replace=False)]
    mask.reshape(-1)[pick] = True
    return mask


@dataclass
class Realisation:
    """Arrays of one simulated slit in the output layout."""

    cfg: SceneConfig
    data: np.ndarray
    dq: np.ndarray
    err: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray
    var_flat: np.ndarray
    wavelength: np.ndarray
    truth: SceneTruth
    extras: dict[str, Any] = field(default_factory=dict)


def simulate_slit(cfg: SceneConfig, white: np.ndarray | None = None) -> Realisation:
    """Simulate one slit; see the package docstring for the model.

    Parameters
    ----------
    cfg : SceneConfig
        Validated configuration.
    white : numpy.ndarray, optional
        ``(nints,)`` multiplicative white-light factors (3D data only).

    Returns
    -------
    Realisation
        Float32 model arrays plus the float64 truth, in the output layout.
    """
    rng = as_rng(cfg.seed)
    width, trace, profile = _geometry(cfg, rng)
    flux, background, rate = _expected_rate(cfg, rng, profile, white)
    data, true_var = _observe(cfg, rng, rate)
    del rate  # overwritten by _observe: free it before the variances are allocated
    var_poisson, var_flat = _pipeline_variances(cfg, data)
    flagged, spiked = _inject_defects(cfg, rng, data, true_var, var_poisson, var_flat)
    _convert_units(cfg, values=(data, flux, background), variances=(true_var, var_poisson, var_flat))
    return _output_layout(
        cfg, data=data, var_poisson=var_poisson, var_flat=var_flat, flagged=flagged, spiked=spiked,
        true_var=true_var, flux=flux, profile=profile, trace=trace, width=width, background=background,
    )


def _geometry(cfg: SceneConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Widths ``(nx,)``, trace (jittered per integration for 3D data) and the pixel-integrated profile."""
    cube = cfg.nints is not None
    nints = cfg.nints if cube else 1
    w_lo, w_hi = cfg.width_range
    width = np.linspace(w_lo, w_hi, cfg.nx)
    trace = nominal_trace(cfg)
    if cube and cfg.jitter_rms > 0:
        trace = trace[None, :] + rng.normal(0.0, cfg.jitter_rms, nints)[:, None]
    profile = _pixel_profile(cfg, trace, width)
    return width, trace, profile


def _expected_rate(
    cfg: SceneConfig, rng: np.random.Generator, profile: np.ndarray, white: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source signal per column, background image and expected rate ``R``, all in DN/s.

    Returns ``flux`` (``(nx,)``, or ``(nints, nx)`` scaled by ``white`` for 3D data), the
    ``(ny, nx)`` background and ``R = flux * profile + background``, ``(nints, ny, nx)``
    (``nints = 1`` for 2D data).
    """
    nx, ny = cfg.nx, cfg.ny
    cube = cfg.nints is not None
    nints = cfg.nints if cube else 1
    flux = source_spectrum(cfg, rng if cfg.spectrum_seed is None else np.random.default_rng(cfg.spectrum_seed))
    if cube:
        factors = np.ones(nints) if white is None else np.asarray(white, dtype=float)
        flux = factors[:, None] * flux[None, :]
    ucol = column_coordinate(nx)
    vrow = (np.arange(ny, dtype=float) - 0.5 * (ny - 1)) / (ny - 1)
    gy, gx = cfg.background_gradient
    background = cfg.background * (1.0 + gy * vrow[:, None]) * (1.0 + gx * ucol[None, :])

    shape3 = (nints, ny, nx)
    rate = np.empty(shape3)
    np.multiply(np.expand_dims(flux, -2), profile, out=rate)
    rate += background
    return flux, background, rate


def _observe(cfg: SceneConfig, rng: np.random.Generator, rate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Observed data (Poisson, read noise, flat-field error) and the true variance of every pixel.

    ``rate`` (the expected rate) is overwritten: the arrays can be large, so its buffer
    serves the flat-field term of the variance.
    """
    tg = cfg.exptime * cfg.gain
    true_var = np.maximum(rate, 0.0)  # max(R, 0); becomes the true variance below

    # --- noise (buffers are reused: the arrays can be large) ------------------
    if cfg.noise:
        data = np.multiply(true_var, tg)  # expected electrons
        counts = rng.poisson(data)
        np.divide(counts, tg, out=data)
        gauss = counts.view(np.float64)  # recycle the int64 buffer
        del counts
        if cfg.read_noise > 0:
            rng.standard_normal(out=gauss)
            gauss *= cfg.read_noise / tg
            data += gauss
        if cfg.flat_error > 0:
            rng.standard_normal(out=gauss)
            gauss *= cfg.flat_error
            gauss += 1.0
            data *= gauss
        del gauss
    else:
        data = rate.copy()
    rn_var = cfg.read_noise**2 / tg**2
    f2 = cfg.flat_error**2
    true_var /= tg
    true_var += rn_var
    if f2 > 0:
        true_var *= 1.0 + f2
        rate *= rate
        rate *= f2
        true_var += rate
    return data, true_var


def _pipeline_variances(cfg: SceneConfig, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``var_poisson`` and ``var_flat`` (float32) derived from the data, as the pipeline does."""
    tg = cfg.exptime * cfg.gain
    shape3 = data.shape
    var_poisson = np.empty(shape3, dtype=np.float32)
    np.maximum(data, 0.0, out=var_poisson, casting="same_kind")
    var_poisson /= np.float32(tg)
    if cfg.flat_error > 0:
        var_flat = np.empty(shape3, dtype=np.float32)
        np.multiply(data, cfg.flat_error, out=var_flat, casting="same_kind")
        var_flat *= var_flat
    else:
        var_flat = np.zeros(shape3, dtype=np.float32)
    return var_poisson, var_flat


def _inject_defects(
    cfg: SceneConfig, rng: np.random.Generator, data: np.ndarray, true_var: np.ndarray,
    var_poisson: np.ndarray, var_flat: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Flagged NaN columns and pixels, unflagged cosmic rays and hot pixels, in place.

    The spiked pixels' ``var_poisson`` and ``var_flat`` are recomputed from the spiked
    data; flagged pixels become NaN in ``data`` and 0 in the variances.

    Returns
    -------
    flagged, spiked : numpy.ndarray
        Boolean ``(nints, ny, nx)``: the flagged pixels, and those hit by a cosmic ray or
        hot pixel.
    """
    tg = cfg.exptime * cfg.gain
    shape3 = data.shape
    total = data.size
    n_nan = int(round(cfg.nan_fraction * total))
    n_cr = int(round(cfg.cosmic_ray_fraction * total))
    flagged = np.zeros(shape3, dtype=bool)
    if cfg.nan_columns:
        cols = rng.choice(cfg.nx, size=cfg.nan_columns, replace=False)
        flagged[..., cols] = True
    hot2d = _choose(rng, ~flagged[0], cfg.hot_pixels)
    hot = np.broadcast_to(hot2d, shape3)
    if n_nan:
        flagged |= _choose(rng, ~(flagged | hot), n_nan)
    crs = _choose(rng, ~(flagged | hot), n_cr) if n_cr else np.zeros(shape3, dtype=bool)
    if crs.any():
        data[crs] += rng.uniform(20.0, 200.0, int(crs.sum())) * np.sqrt(true_var[crs])
    if hot2d.any():
        sigma_hot = np.sqrt(true_var.mean(axis=0)[hot2d])
        data[:, hot2d] += rng.uniform(20.0, 200.0, int(hot2d.sum())) * sigma_hot
    spiked = crs | hot
    if n_cr or cfg.hot_pixels:
        var_poisson[spiked] = np.maximum(data[spiked], 0.0) / tg
        var_flat[spiked] = (cfg.flat_error * data[spiked]) ** 2
    data[flagged] = np.nan
    var_poisson[flagged] = 0.0
    var_flat[flagged] = 0.0
    log.debug(
        "Simulated %s: %d flagged, %d cosmic-ray and %d hot pixels",
        shape3,
        int(flagged.sum()),
        int(crs.sum()),
        int(hot2d.sum()),
    )
    return flagged, spiked


def _convert_units(cfg: SceneConfig, values: tuple[np.ndarray, ...], variances: tuple[np.ndarray, ...]) -> None:
    """Convert DN/s to the configured units in place: values by ``k``, variances by ``k**2``."""
    k = cfg.unit_factor
    if k != 1.0:
        for arr in values:
            arr *= k
        for var in variances:
            var *= k * k


def _output_layout(
    cfg: SceneConfig, *, data: np.ndarray, var_poisson: np.ndarray, var_flat: np.ndarray, flagged: np.ndarray,
    spiked: np.ndarray, true_var: np.ndarray, flux: np.ndarray, profile: np.ndarray, trace: np.ndarray,
    width: np.ndarray, background: np.ndarray,
) -> Realisation:
    """The float32 model arrays and the float64 truth in the output layout.

    2D data lose the leading axis of one integration; ``dispersion_axis=2`` transposes every
    image-shaped array. ``err`` and ``var_rnoise`` are built here, from the (converted)
    variances.
    """
    cube = cfg.nints is not None
    k = cfg.unit_factor
    tg = cfg.exptime * cfg.gain
    rn_var = cfg.read_noise**2 / tg**2

    def out(arr: np.ndarray, dtype: Any = None, squeeze: bool = not cube) -> np.ndarray:
        if squeeze and arr.ndim == 3:
            arr = arr[0]
        if cfg.dispersion_axis == 2:
            arr = np.swapaxes(arr, -1, -2)
        return np.ascontiguousarray(arr, dtype=dtype)

    # Transpose (if needed) only what cannot be rebuilt in the output layout.
    flagged = out(flagged, bool)
    var_poisson = out(var_poisson, np.float32)
    var_flat = (
        out(var_flat, np.float32) if cfg.flat_error > 0 else np.zeros(flagged.shape, np.float32)
    )
    rn_var_out = np.float32(rn_var * k * k)
    var_rnoise = np.full(flagged.shape, rn_var_out, dtype=np.float32)
    var_rnoise[flagged] = 0.0
    err = var_poisson + var_flat
    err += rn_var_out
    np.sqrt(err, out=err)
    err[flagged] = np.nan
    dq = flagged.astype(np.uint32)
    dq *= np.uint32(DO_NOT_USE)

    wavelength = wavelength_canonical(cfg)
    truth = SceneTruth(
        flux=flux,
        profile=out(profile, float, squeeze=False),
        trace=trace,
        width=width,
        background=out(background, float),
        variance=out(true_var, float),
        wavelength=out(wavelength, float),
        cosmic_rays=out(spiked, bool),
        flagged=flagged,
        dispersion_axis=cfg.dispersion_axis,
    )
    return Realisation(
        cfg=cfg,
        data=out(data, np.float32),
        dq=dq,
        err=err,
        var_poisson=var_poisson,
        var_rnoise=var_rnoise,
        var_flat=var_flat,
        wavelength=out(wavelength, np.float32),
        truth=truth,
    )
