"""Synthetic JWST slit spectroscopy with known truth.

This module builds realistic JWST calibrated 2D (``*_cal``) and 3D
(``*_calints``) spectroscopic datamodels -- :class:`~stdatamodels.jwst.datamodels.SlitModel`,
:class:`~stdatamodels.jwst.datamodels.MultiSlitModel`,
:class:`~stdatamodels.jwst.datamodels.CubeModel` and (for
:func:`write_example` with MIRI LRS) :class:`~stdatamodels.jwst.datamodels.ImageModel` --
together with a :class:`SceneTruth` describing exactly what was simulated.
It is meant for unit tests (bias and variance of an extraction compared
with the Cramér–Rao bound), documentation demos and benchmarks.

Geometry
--------
All arrays are built in a *canonical* layout ``(ny, nx)`` (``(nints, ny, nx)``
for 3D data) in which the dispersion runs along ``x`` (the last axis).  For
``dispersion_axis=2`` (MIRI LRS-like) every image-shaped array is transposed at
the end, so that the data have shape ``(..., nx, ny)``.  Row ``j`` of the
canonical image covers ``[j - 0.5, j + 0.5]`` (pixel-centre convention).

The trace is ``trace(x) = trace_center + trace_tilt * u + 4 * trace_curvature * u**2``
with ``u = (x - (nx - 1) / 2) / (nx - 1)`` in ``[-1/2, 1/2]``, i.e. the trace
changes by ``trace_tilt`` pixels across the detector and the edges sag by
``trace_curvature`` pixels relative to the middle column.  The
cross-dispersion profile is the Gaussian / Moffat / double-Gaussian profile
*integrated over each pixel* (analytically: Gaussian CDF differences and the
closed-form Moffat CDF, written with the regularised incomplete beta
function) and normalised to sum to one over the ``ny`` rows of each column.

Noise model
-----------
With ``t = exptime`` (seconds), ``g = gain`` (e-/DN), ``sigma_r = read_noise``
(e-), ``f = flat_error`` and the expected rate in DN/s::

    R[y, x] = flux_x[x] * profile[y, x] + background[y, x],

the observed rate is::

    data = (Poisson(t * g * max(R, 0)) + Normal(0, sigma_r)) / (t * g)
    data *= 1 + f * Normal(0, 1)          (only if f > 0)

The *true* variance of every pixel (:attr:`SceneTruth.variance`) is therefore

    V = (max(R, 0) / (t g) + sigma_r**2 / (t g)**2) * (1 + f**2) + (f R)**2,

which equals ``max(R,0)/(t g) + sigma_r**2/(t g)**2 + (f R)**2`` to first order
in ``f**2`` (exactly so for ``f = 0``).  The variance arrays stored in the
model are derived from the *data*, as the JWST pipeline does:
``var_poisson = max(data, 0) / (t g)``, ``var_rnoise = sigma_r**2 / (t g)**2``,
``var_flat = (f * data)**2`` and ``err = sqrt(var_poisson + var_rnoise + var_flat)``.
Because ``var_poisson`` uses the noisy data, it is a noisy (and, for optimal
weighting, slightly biased) estimate of the truth -- exactly the situation an
extraction code faces with real data.

Defects are injected afterwards: cosmic rays and hot pixels are positive
spikes of 20-200 sigma that are *not* flagged in DQ (their ``var_poisson``,
``var_flat`` and ``err`` are recomputed from the spiked data, like the
pipeline would); flagged pixels and whole flagged columns are set to NaN in
``data`` and ``err``, 0 in the variance arrays and get ``DO_NOT_USE`` in DQ.
For calibrated units (``"MJy/sr"``, ``"MJy"``) data are multiplied by a
constant conversion factor ``k`` (:data:`MJYSR_PER_DNS`, :data:`MJY_PER_DNS`)
and variances by ``k**2``; all truth quantities are reported in the final
data units.  The simulation and the truth are float64; the model arrays are
float32 like pipeline products.  With ``noise=False`` the data equal the
expected rate while ``SceneTruth.variance`` still describes the noise model.

Examples
--------
>>> from jwst_optextract.simulate import make_slit, cramer_rao_variance
>>> model, truth = make_slit(nx=512, background=5.0, cosmic_ray_fraction=1e-3, seed=1)
>>> model.data.shape, truth.flux.shape
((32, 512), (512,))
>>> bound = cramer_rao_variance(truth)  # best achievable variance per column

WCS
---
Every model carries a :class:`gwcs.wcs.WCS` with the frames
``detector -> slit_frame -> world``.  ``slit_frame`` is (``x_slit``,
``y_slit``, wavelength) where ``y_slit`` is the cross-dispersion offset from
the nominal (non-jittered) trace in units of the slit length (``1 / ny`` per
pixel), so the source sits at ``source_xpos = source_ypos = 0``; ``world`` is
(ra, dec, wavelength [micron]).  The wavelength is linear in the dispersion
coordinate with a small dependence on the distance from the trace (tilted
iso-wavelength lines), and the ``WAVELENGTH`` array is the same function
evaluated at the pixel centres.  The transform from ``slit_frame`` back to
``detector`` is exact, so :func:`jwst.extract_1d` source-location code works.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy import coordinates as coord
from astropy import units as u
from astropy.modeling import models as am
from gwcs import coordinate_frames as cf
from gwcs import wcs as gwcs_wcs
from scipy import special
from stdatamodels.jwst import datamodels

from ..io.dq import DO_NOT_USE

__all__ = [
    "SceneTruth",
    "SceneConfig",
    "make_slit",
    "make_multislit",
    "make_tso",
    "make_nods",
    "add_background",
    "write_example",
    "cramer_rao_variance",
    "MJYSR_PER_DNS",
    "MJY_PER_DNS",
]

log = logging.getLogger(__name__)

#: Conversion factor from DN/s to MJy/sr used for ``units="MJy/sr"``.
MJYSR_PER_DNS: float = 1.0e-3
#: Conversion factor from DN/s to MJy used for ``units="MJy"`` (point source).
MJY_PER_DNS: float = 1.0e-11


_PROFILES = ("gaussian", "moffat", "double")
_UNITS = ("DN/s", "MJy/sr", "MJy")
#: Change of wavelength per cross-dispersion pixel away from the trace, in
#: units of the dispersion per pixel (tilt of iso-wavelength lines).
_WAVE_TILT = 0.02
#: Reference epoch of the simulated observations (2023-07-01T12:00:00 UTC).
_MJD0 = 60126.5
_DATE, _TIME = "2023-07-01", "12:00:00.000"
_RA0, _DEC0, _PA = 53.16, -27.78, 30.0  # degrees
_PIXSCALE_ARCSEC = 0.1
_SR_PER_ARCSEC2 = (np.pi / 180.0 / 3600.0) ** 2
_NIRSPEC_FS_SLITS = ("S200A1", "S200A2", "S400A1", "S1600A1", "S200B1")
_NIRSPEC_SLIT_WIDTH = {"S200A1": 0.2, "S200A2": 0.2, "S200B1": 0.2, "S400A1": 0.4, "S1600A1": 1.6}


# --------------------------------------------------------------------------- #
# Public dataclasses
# --------------------------------------------------------------------------- #
@dataclass
class SceneTruth:
    """Known truth of a simulated exposure (all in final data units).

    Image-shaped arrays follow the layout of the data: ``(ny, nx)`` for
    ``dispersion_axis=1`` and ``(nx, ny)`` for ``dispersion_axis=2`` (with a
    leading ``nints`` axis where noted).  Per-column quantities are indexed by
    the dispersion pixel ``x`` in both cases.

    Attributes
    ----------
    flux : numpy.ndarray
        ``(nx,)`` for 2D data, ``(nints, nx)`` for 3D data: true source signal
        per column, i.e. the sum over the slit rows of the noise-free source
        image.
    profile : numpy.ndarray
        True pixel-integrated cross-dispersion profile, normalised to sum to
        one over the slit rows in every column.  Image shaped (one frame);
        ``(nints, ...)`` when trace jitter is simulated.
    trace : numpy.ndarray
        ``(nx,)`` true centre row (0-based, pixel-centre convention) or
        ``(nints, nx)`` when jitter is simulated.  For the ``"double"``
        profile this is the flux-weighted centroid of the two components.
    width : numpy.ndarray
        ``(nx,)`` profile width parameter (Gaussian sigma or Moffat alpha).
    background : numpy.ndarray
        True background (image shaped, one frame), zero if none.
    variance : numpy.ndarray
        True expected variance of every pixel (see the module docstring);
        same shape as the data.
    wavelength : numpy.ndarray
        Wavelength of every pixel centre in micron (image shaped, one frame).
    cosmic_rays : numpy.ndarray
        Boolean, data shaped: pixels hit by unflagged cosmic rays or hot
        pixels.
    flagged : numpy.ndarray
        Boolean, data shaped: pixels set to NaN and flagged ``DO_NOT_USE``.
    dispersion_axis : int
        1 if the dispersion runs along the last array axis, 2 if along the
        second-to-last axis (MIRI LRS-like).
    """

    flux: np.ndarray
    profile: np.ndarray
    trace: np.ndarray
    width: np.ndarray
    background: np.ndarray
    variance: np.ndarray
    wavelength: np.ndarray
    cosmic_rays: np.ndarray
    flagged: np.ndarray
    dispersion_axis: int = 1

    @property
    def spatial_axis(self) -> int:
        """Array axis (negative index) running across the slit."""
        return -2 if self.dispersion_axis == 1 else -1

    @property
    def source(self) -> np.ndarray:
        """Noise-free source image ``flux * profile`` (data shaped)."""
        flux = np.expand_dims(self.flux, self.spatial_axis)
        return flux * self.profile

    @property
    def expected(self) -> np.ndarray:
        """Noise-free expected data ``source + background`` (data shaped).

        Cosmic rays, hot pixels and NaNs are *not* included.
        """
        return self.source + self.background


@dataclass
class SceneConfig:
    """All the knobs of a simulated exposure.

    Defaults describe a NIRSpec fixed-slit (S200A1, G140M/F100LP)-like 2D
    exposure in DN/s.

    Attributes
    ----------
    nx, ny : int
        Number of pixels along the dispersion and across the slit.
    nints : int or None
        ``None`` for 2D data, an integer for 3D data ``(nints, ny, nx)``.
    profile : {"gaussian", "moffat", "double"}
        Cross-dispersion profile shape.  ``"double"`` is two Gaussians of the
        same width separated by ``double_separation`` pixels with flux ratio
        ``double_ratio``.
    width : float or tuple of float
        Gaussian sigma (or Moffat alpha) in pixels; a tuple gives a linear
        variation from the first to the last column.
    moffat_beta : float
        Moffat power index (must exceed 0.5).
    double_separation, double_ratio : float
        Peak separation (pixels) and flux ratio (second / first) of the
        ``"double"`` profile.
    trace_center : float or None
        Trace row at the middle column; ``None`` -> ``ny / 2 - 0.5 + 0.3``.
    trace_curvature : float
        Pixels of quadratic sag between the middle and the edge columns.
    trace_tilt : float
        Pixels of linear change of the trace across the detector.
    jitter_rms : float
        RMS of a random per-integration trace shift (pixels), 3D data only.
    flux : float
        Mean source signal per column (data units before conversion, DN/s)
        before the spectral shape is applied.
    continuum_slope : float
        Fractional change of the continuum across the band.
    lines : int
        Number of Gaussian emission lines (1-3 pixels sigma, peak amplitudes
        0.2-2 times the continuum).
    transit_depth : float
        Fractional depth of the transit-like white-light dip (:func:`make_tso`
        only).
    background : float
        Mean background per pixel (DN/s).
    background_gradient : tuple of float
        Fractional linear change of the background (across the slit, along
        the dispersion).
    exptime : float
        Effective exposure time in seconds (of each integration for 3D data).
    gain : float
        Gain in e-/DN.
    read_noise : float
        Read noise in electrons per pixel per exposure (integration).
    flat_error : float
        Fractional flat-field error.
    noise : bool
        If False the data are the noise-free expected rate (defects are still
        injected).
    cosmic_ray_fraction : float
        Fraction of pixels hit by unflagged cosmic rays (20-200 sigma spikes).
    hot_pixels : int
        Number of unflagged hot pixels (same place in every integration).
    nan_fraction : float
        Fraction of random pixels set to NaN and flagged ``DO_NOT_USE``.
    nan_columns : int
        Number of whole flagged (NaN) columns.
    dispersion_axis : {1, 2}
        1: dispersion along x (NIRSpec); 2: along y (MIRI LRS), every image
        array is then transposed to ``(..., nx, ny)``.
    units : {"DN/s", "MJy/sr", "MJy"}
        Data units.
    pixel_area_sr : float
        Nominal pixel area in steradians.
    wavelength_range : tuple of float
        Wavelength (micron) at the first and last column on the trace.
    exp_type : str
        JWST exposure type, e.g. ``NRS_FIXEDSLIT``, ``NRS_MSASPEC``,
        ``NRS_BRIGHTOBJ``, ``MIR_LRS-FIXEDSLIT``, ``MIR_LRS-SLITLESS``.
    slit_name : str
        Slit name.
    source_id : int
        Source identifier.
    seed : int or numpy.random.Generator
        Random seed (or generator, which is then advanced).
    spectrum_seed : int or None
        Seed of the spectrum's emission lines alone; ``None`` draws them from
        ``seed``. Exposures of one source (:func:`make_nods`) share it, so they
        see the same spectrum through independent noise.
    """

    nx: int = 1024
    ny: int = 32
    nints: int | None = None
    profile: str = "gaussian"
    width: float | tuple[float, float] = (0.9, 1.6)
    moffat_beta: float = 2.5
    double_separation: float = 4.0
    double_ratio: float = 0.6
    trace_center: float | None = None
    trace_curvature: float = 2.0
    trace_tilt: float = 0.5
    jitter_rms: float = 0.0
    flux: float = 1000.0
    continuum_slope: float = 0.3
    lines: int = 5
    transit_depth: float = 0.01
    background: float = 0.0
    background_gradient: tuple[float, float] = (0.0, 0.0)
    exptime: float = 1000.0
    gain: float = 1.0
    read_noise: float = 10.0
    flat_error: float = 0.0
    noise: bool = True
    cosmic_ray_fraction: float = 0.0
    hot_pixels: int = 0
    nan_fraction: float = 0.0
    nan_columns: int = 0
    dispersion_axis: int = 1
    units: str = "DN/s"
    pixel_area_sr: float = 2.0e-13
    wavelength_range: tuple[float, float] = (0.97, 1.89)
    exp_type: str = "NRS_FIXEDSLIT"
    slit_name: str = "S200A1"
    source_id: int = 1
    seed: int | np.random.Generator = 0
    spectrum_seed: int | None = None

    @property
    def center(self) -> float:
        """Trace row at the middle column (resolves ``trace_center=None``)."""
        return self.ny / 2.0 - 0.5 + 0.3 if self.trace_center is None else float(self.trace_center)

    @property
    def width_range(self) -> tuple[float, float]:
        """Profile width at the first and last column."""
        if np.ndim(self.width) == 0:
            return float(self.width), float(self.width)  # type: ignore[arg-type]
        w0, w1 = self.width  # type: ignore[misc]
        return float(w0), float(w1)

    @property
    def instrument(self) -> str:
        """``"MIRI"`` for ``MIR_*`` exposure types, ``"NIRSPEC"`` otherwise."""
        return "MIRI" if self.exp_type.upper().startswith("MIR") else "NIRSPEC"

    @property
    def unit_factor(self) -> float:
        """Multiplicative conversion from DN/s to :attr:`units`."""
        return {"DN/s": 1.0, "MJy/sr": MJYSR_PER_DNS, "MJy": MJY_PER_DNS}[self.units]


# --------------------------------------------------------------------------- #
# Small helpers
# --------------------------------------------------------------------------- #
def _as_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """Return a Generator (passing an existing one through)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def _resolve_config(
    config: SceneConfig | None, overrides: dict[str, Any], **defaults: Any
) -> SceneConfig:
    """Merge ``defaults`` (only when ``config`` is None) and ``overrides``."""
    cfg = SceneConfig(**defaults) if config is None else config
    if overrides:
        names = {f.name for f in dataclasses.fields(SceneConfig)}
        unknown = set(overrides) - names
        if unknown:
            raise TypeError(f"Unknown SceneConfig parameter(s): {sorted(unknown)}")
        cfg = dataclasses.replace(cfg, **overrides)
    _validate(cfg)
    return cfg


def _validate(cfg: SceneConfig) -> None:
    """Raise ``ValueError`` for inconsistent configurations."""
    if cfg.nx < 2 or cfg.ny < 2:
        raise ValueError("nx and ny must be >= 2")
    if cfg.nints is not None and cfg.nints < 1:
        raise ValueError("nints must be None or >= 1")
    if cfg.profile not in _PROFILES:
        raise ValueError(f"profile must be one of {_PROFILES}, got {cfg.profile!r}")
    if cfg.units not in _UNITS:
        raise ValueError(f"units must be one of {_UNITS}, got {cfg.units!r}")
    if cfg.dispersion_axis not in (1, 2):
        raise ValueError("dispersion_axis must be 1 or 2")
    if min(cfg.width_range) <= 0:
        raise ValueError("width must be positive")
    if cfg.profile == "moffat" and cfg.moffat_beta <= 0.5:
        raise ValueError("moffat_beta must exceed 0.5")
    if cfg.exptime <= 0 or cfg.gain <= 0:
        raise ValueError("exptime and gain must be positive")
    if cfg.read_noise < 0 or cfg.flat_error < 0:
        raise ValueError("read_noise and flat_error must be non-negative")
    for name in ("cosmic_ray_fraction", "nan_fraction"):
        if not 0.0 <= getattr(cfg, name) < 1.0:
            raise ValueError(f"{name} must be in [0, 1)")
    if not 0 <= cfg.nan_columns < cfg.nx:
        raise ValueError("nan_columns must be in [0, nx)")
    if not 0 <= cfg.hot_pixels <= cfg.nx * cfg.ny:
        raise ValueError("hot_pixels out of range")


def _column_coordinate(nx: int) -> np.ndarray:
    """``u = (x - xmid) / (nx - 1)`` in ``[-1/2, 1/2]``."""
    x = np.arange(nx, dtype=float)
    return (x - 0.5 * (nx - 1)) / (nx - 1)


def _trace_model(cfg: SceneConfig) -> am.Model:
    """Astropy model of the nominal (non-jittered) trace row versus column."""
    return (
        am.Shift(-0.5 * (cfg.nx - 1))
        | am.Scale(1.0 / (cfg.nx - 1))
        | am.Polynomial1D(2, c0=cfg.center, c1=cfg.trace_tilt, c2=4.0 * cfg.trace_curvature)
    )


def _nominal_trace(cfg: SceneConfig) -> np.ndarray:
    """Nominal trace row for every column, ``(nx,)``."""
    uu = _column_coordinate(cfg.nx)
    return cfg.center + cfg.trace_tilt * uu + 4.0 * cfg.trace_curvature * uu**2


def _dispersion(cfg: SceneConfig) -> tuple[float, float]:
    """Return ``(lambda0, dlambda/dx)`` in micron and micron/pixel."""
    w0, w1 = cfg.wavelength_range
    return float(w0), (float(w1) - float(w0)) / (cfg.nx - 1)


def _wavelength_canonical(cfg: SceneConfig) -> np.ndarray:
    """Wavelength (micron) of every pixel centre, canonical ``(ny, nx)``."""
    lam0, dlam = _dispersion(cfg)
    x = np.arange(cfg.nx, dtype=float)
    y = np.arange(cfg.ny, dtype=float)[:, None]
    return lam0 + dlam * x + _WAVE_TILT * dlam * (y - _nominal_trace(cfg))


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


def _spectrum(cfg: SceneConfig, rng: np.random.Generator) -> np.ndarray:
    """Source signal per column (DN/s) with continuum slope and emission lines."""
    x = np.arange(cfg.nx, dtype=float)
    shape = 1.0 + cfg.continuum_slope * _column_coordinate(cfg.nx)
    if cfg.lines > 0:
        centres = rng.uniform(0.05 * cfg.nx, 0.95 * cfg.nx, cfg.lines)
        sigmas = rng.uniform(1.0, 3.0, cfg.lines)
        amps = rng.uniform(0.2, 2.0, cfg.lines)
        lines = amps[:, None] * np.exp(-0.5 * ((x - centres[:, None]) / sigmas[:, None]) ** 2)
        shape = shape * (1.0 + lines.sum(axis=0))
    return cfg.flux * shape


def _transit(nints: int, depth: float) -> np.ndarray:
    """Trapezoidal transit light curve (white-light factor per integration)."""
    if nints == 1:
        return np.ones(1)
    t = np.linspace(-1.0, 1.0, nints)
    half_duration, ingress = 0.45, 0.12  # in units of half the exposure
    shape = np.clip((half_duration - np.abs(t)) / ingress, 0.0, 1.0)
    return 1.0 - depth * shape


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


# --------------------------------------------------------------------------- #
# Core simulation
# --------------------------------------------------------------------------- #
@dataclass
class _Realisation:
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


def _simulate(cfg: SceneConfig, white: np.ndarray | None = None) -> _Realisation:
    """Simulate one slit; see the module docstring for the model.

    Parameters
    ----------
    cfg : SceneConfig
        Validated configuration.
    white : numpy.ndarray, optional
        ``(nints,)`` multiplicative white-light factors (3D data only).

    Returns
    -------
    _Realisation
        Float32 model arrays plus the float64 truth, in the output layout.
    """
    rng = _as_rng(cfg.seed)
    nx, ny = cfg.nx, cfg.ny
    cube = cfg.nints is not None
    nints = cfg.nints if cube else 1
    tg = cfg.exptime * cfg.gain

    # --- geometry ---------------------------------------------------------
    w_lo, w_hi = cfg.width_range
    width = np.linspace(w_lo, w_hi, nx)
    trace = _nominal_trace(cfg)
    if cube and cfg.jitter_rms > 0:
        trace = trace[None, :] + rng.normal(0.0, cfg.jitter_rms, nints)[:, None]
    profile = _pixel_profile(cfg, trace, width)

    # --- source and background (DN/s) ------------------------------------
    flux = _spectrum(cfg, rng if cfg.spectrum_seed is None else np.random.default_rng(cfg.spectrum_seed))
    if cube:
        factors = np.ones(nints) if white is None else np.asarray(white, dtype=float)
        flux = factors[:, None] * flux[None, :]
    ucol = _column_coordinate(nx)
    vrow = (np.arange(ny, dtype=float) - 0.5 * (ny - 1)) / (ny - 1)
    gy, gx = cfg.background_gradient
    background = cfg.background * (1.0 + gy * vrow[:, None]) * (1.0 + gx * ucol[None, :])

    shape3 = (nints, ny, nx)
    rate = np.empty(shape3)
    np.multiply(np.expand_dims(flux, -2), profile, out=rate)
    rate += background
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
    del rate

    # --- pipeline-like, data-derived variances (float32) ----------------------
    var_poisson = np.empty(shape3, dtype=np.float32)
    np.maximum(data, 0.0, out=var_poisson, casting="same_kind")
    var_poisson /= np.float32(tg)
    if cfg.flat_error > 0:
        var_flat = np.empty(shape3, dtype=np.float32)
        np.multiply(data, cfg.flat_error, out=var_flat, casting="same_kind")
        var_flat *= var_flat
    else:
        var_flat = np.zeros(shape3, dtype=np.float32)

    # --- defects ---------------------------------------------------------------
    total = data.size
    n_nan = int(round(cfg.nan_fraction * total))
    n_cr = int(round(cfg.cosmic_ray_fraction * total))
    flagged = np.zeros(shape3, dtype=bool)
    if cfg.nan_columns:
        cols = rng.choice(nx, size=cfg.nan_columns, replace=False)
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

    # --- units ---------------------------------------------------------------
    k = cfg.unit_factor
    if k != 1.0:
        for arr in (data, flux, background):
            arr *= k
        for var in (true_var, var_poisson, var_flat):
            var *= k * k

    # --- output layout -------------------------------------------------------
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

    wavelength = _wavelength_canonical(cfg)
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
    return _Realisation(
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


# --------------------------------------------------------------------------- #
# WCS
# --------------------------------------------------------------------------- #
def _build_wcs(cfg: SceneConfig, ra: float = _RA0, dec: float = _DEC0) -> gwcs_wcs.WCS:
    """Build the ``detector -> slit_frame -> world`` gwcs of a slit cutout.

    Pixel coordinates are 0-based in the cutout.  In the canonical layout
    (dispersion along x), with ``d = y - trace(x)``::

        x_slit = 0
        y_slit = d / ny
        lambda = lambda0 + dlam * x + _WAVE_TILT * dlam * d

    and the inverse ``(y_slit, lambda) -> (x, y)`` is exact.  For
    ``dispersion_axis=2`` the detector inputs are swapped.  ``slit_frame ->
    world`` is an affine map of slit units to the tangent plane (slit length
    ``ny * 0.1`` arcsec, position angle 30 deg) followed by a gnomonic
    projection centred on ``(ra, dec)``.
    """
    lam0, dlam = _dispersion(cfg)
    ny = cfg.ny
    tilt = _WAVE_TILT * dlam
    trace = _trace_model(cfg)
    pick_x = am.Mapping((0,), n_inputs=2)
    pick_y = am.Mapping((1,), n_inputs=2)

    # detector (canonical x, y) -> slit frame
    offset = pick_y - (pick_x | trace)  # d = y - trace(x)
    x_slit = pick_x | am.Const1D(0.0)
    y_slit = offset | am.Scale(1.0 / ny)
    lam = (pick_x | am.Linear1D(slope=dlam, intercept=lam0)) + (offset | am.Scale(tilt))
    det2slit = am.Mapping((0, 1, 0, 1, 0, 1)) | (x_slit & y_slit & lam)

    # slit frame (x_slit, y_slit, lambda) -> canonical detector (x, y)
    # with d = ny * y_slit: x = (lambda - lam0 - tilt * d) / dlam ; y = trace(x) + d
    xdet = (pick_y - (pick_x | am.Scale(tilt * ny))) | am.Shift(-lam0) | am.Scale(1.0 / dlam)
    ydet = (xdet | trace) + (pick_x | am.Scale(float(ny)))
    slit2det = am.Mapping((1, 2, 1, 2)) | (xdet & ydet)

    if cfg.dispersion_axis == 2:
        det2slit = am.Mapping((1, 0)) | det2slit
        slit2det = slit2det | am.Mapping((1, 0))
    det2slit.inverse = slit2det

    width_arcsec = _NIRSPEC_SLIT_WIDTH.get(cfg.slit_name, 0.5)
    length_deg = ny * _PIXSCALE_ARCSEC / 3600.0
    pa = np.deg2rad(_PA)
    rot = np.array([[np.cos(pa), -np.sin(pa)], [np.sin(pa), np.cos(pa)]])
    matrix = rot @ np.diag([width_arcsec / 3600.0, length_deg])
    sky = (
        am.AffineTransformation2D(matrix=matrix, translation=[0.0, 0.0])
        | am.Pix2Sky_TAN()
        | am.RotateNative2Celestial(ra, dec, 180.0)
    )
    slit2world = sky & am.Identity(1)

    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    spectral = cf.SpectralFrame(
        name="spectral", axes_order=(2,), unit=(u.micron,), axes_names=("wavelength",)
    )
    slit_frame = cf.CompositeFrame(
        [
            cf.Frame2D(
                name="slit_spatial",
                axes_order=(0, 1),
                unit=("", ""),
                axes_names=("x_slit", "y_slit"),
            ),
            spectral,
        ],
        name="slit_frame",
    )
    world = cf.CompositeFrame(
        [
            cf.CelestialFrame(
                reference_frame=coord.ICRS(), name="sky", axes_order=(0, 1), unit=(u.deg, u.deg)
            ),
            spectral,
        ],
        name="world",
    )
    wcs = gwcs_wcs.WCS([(detector, det2slit), (slit_frame, slit2world), (world, None)])
    nrows, ncols = (cfg.ny, cfg.nx) if cfg.dispersion_axis == 1 else (cfg.nx, cfg.ny)
    wcs.bounding_box = ((-0.5, ncols - 0.5), (-0.5, nrows - 0.5))
    return wcs


# --------------------------------------------------------------------------- #
# Metadata
# --------------------------------------------------------------------------- #
def _optics(cfg: SceneConfig) -> tuple[str, str, str]:
    """Return ``(detector, filter, grating)`` for the configuration."""
    if cfg.instrument == "MIRI":
        return "MIRIMAGE", "P750L", "N/A"
    mid = 0.5 * sum(cfg.wavelength_range)
    if mid < 1.0:
        return "NRS1", "F070LP", "G140M"
    if mid < 2.0:
        return "NRS1", "F100LP", "G140M"
    if mid < 3.3:
        return "NRS1", "F170LP", "G235M"
    return "NRS1", "F290LP", "G395M"


def _source_type(cfg: SceneConfig) -> str:
    """Source type consistent with the units (NIRSpec MJy/sr means extended)."""
    if cfg.units == "MJy/sr" and cfg.instrument == "NIRSPEC":
        return "EXTENDED"
    return "POINT"


def _int_times(model: datamodels.JwstDataModel, nints: int, int_time: float) -> np.ndarray:
    """INT_TIMES table as in jwst ``calints`` products."""
    table = np.zeros(nints, dtype=model.get_default("int_times").dtype)
    start = _MJD0 + np.arange(nints) * int_time / 86400.0
    end = start + int_time / 86400.0
    table["integration_number"] = np.arange(1, nints + 1)
    table["int_start_MJD_UTC"] = start
    table["int_mid_MJD_UTC"] = 0.5 * (start + end)
    table["int_end_MJD_UTC"] = end
    bjd_offset = (69.184 + 312.0) / 86400.0  # TT-UTC plus a fixed barycentric delay
    table["int_start_BJD_TDB"] = start + bjd_offset
    table["int_mid_BJD_TDB"] = 0.5 * (start + end) + bjd_offset
    table["int_end_BJD_TDB"] = end + bjd_offset
    return table


def _fill_exposure_meta(model: datamodels.JwstDataModel, cfg: SceneConfig) -> None:
    """Top-level (exposure-wide) metadata."""
    meta = model.meta
    detector, filt, grating = _optics(cfg)
    nints = cfg.nints or 1
    meta.telescope = "JWST"
    meta.date = "2024-01-01T00:00:00.000"
    meta.observation.date = _DATE
    meta.observation.time = _TIME
    meta.observation.program_number = "01234"
    meta.observation.observation_number = "001"
    meta.observation.visit_number = "001"
    meta.instrument.name = cfg.instrument
    meta.instrument.detector = detector
    meta.instrument.filter = filt
    if cfg.instrument == "NIRSPEC":
        meta.instrument.grating = grating
        if (
            cfg.exp_type in ("NRS_FIXEDSLIT", "NRS_BRIGHTOBJ")
            and cfg.slit_name in _NIRSPEC_FS_SLITS
        ):
            meta.instrument.fixed_slit = cfg.slit_name
        if cfg.exp_type == "NRS_MSASPEC":
            meta.instrument.msa_metadata_file = "jw01234001001_01_msa.fits"
    exp = meta.exposure
    exp.type = cfg.exp_type
    exp.nints = nints
    exp.integration_start = 1
    exp.integration_end = nints
    exp.ngroups = 20
    exp.nframes = 1
    exp.readpatt = "FASTR1" if cfg.instrument == "MIRI" else "NRSIRS2RAPID"
    exp.integration_time = float(cfg.exptime)
    exp.exposure_time = float(cfg.exptime * nints)
    exp.effective_exposure_time = float(cfg.exptime * nints)
    exp.start_time = _MJD0
    exp.end_time = _MJD0 + cfg.exptime * nints / 86400.0
    exp.mid_time = 0.5 * (exp.start_time + exp.end_time)
    meta.target.catalog_name = "SIMULATED"
    meta.target.proposer_name = "SIMULATED"
    meta.target.ra = _RA0
    meta.target.dec = _DEC0
    meta.target.source_type = _source_type(cfg)
    meta.dither.dithered_ra = _RA0
    meta.dither.dithered_dec = _DEC0
    meta.subarray.name = {
        "NRS_FIXEDSLIT": f"SUBS{cfg.slit_name[1:]}"
        if cfg.slit_name in ("S200A1", "S200A2", "S200B1", "S400A1")  # S1600A1 has no subarray of its own
        else "FULL",
        "NRS_BRIGHTOBJ": "SUB2048",
        "MIR_LRS-SLITLESS": "SLITLESSPRISM",
    }.get(cfg.exp_type, "FULL")
    for step in ("assign_wcs", "flat_field", "srctype"):
        setattr(meta.cal_step, step, "COMPLETE")
    if cfg.instrument == "NIRSPEC":
        meta.cal_step.extract_2d = "COMPLETE"
    meta.cal_step.photom = "SKIPPED" if cfg.units == "DN/s" else "COMPLETE"


def _fill_slit(
    model: datamodels.JwstDataModel, real: _Realisation, slit_attrs: bool = True
) -> None:
    """Arrays, units, photometry and WCS of one slit (or image/cube)."""
    cfg = real.cfg
    model.data = real.data
    model.dq = real.dq
    model.err = real.err
    model.var_poisson = real.var_poisson
    model.var_rnoise = real.var_rnoise
    model.var_flat = real.var_flat
    model.wavelength = real.wavelength
    model.meta.bunit_data = cfg.units
    model.meta.bunit_err = cfg.units
    model.meta.photometry.pixelarea_steradians = float(cfg.pixel_area_sr)
    model.meta.photometry.pixelarea_arcsecsq = float(cfg.pixel_area_sr / _SR_PER_ARCSEC2)
    model.meta.wcsinfo.dispersion_direction = cfg.dispersion_axis
    model.meta.wcsinfo.spectral_order = 1
    ra, dec = real.extras.get("radec", (_RA0, _DEC0))
    model.meta.wcs = _build_wcs(cfg, ra, dec)
    if not slit_attrs:
        return
    nrows, ncols = real.data.shape[-2:]
    model.name = cfg.slit_name
    model.source_id = int(cfg.source_id)
    model.source_name = f"SIM_{cfg.source_id:05d}"
    model.source_alias = f"{cfg.source_id}"
    model.source_type = _source_type(cfg)
    model.stellarity = 1.0 if model.source_type == "POINT" else 0.0
    model.source_ra = float(ra)
    model.source_dec = float(dec)
    model.source_xpos = 0.0
    model.source_ypos = 0.0
    model.xstart = int(real.extras.get("xstart", 1))
    model.ystart = int(real.extras.get("ystart", 1))
    model.xsize = int(ncols)
    model.ysize = int(nrows)
    if cfg.exp_type == "NRS_MSASPEC":
        model.slitlet_id = int(real.extras.get("slitlet_id", cfg.source_id))
        model.shutter_id = int(real.extras.get("shutter_id", 0))
        model.quadrant = int(real.extras.get("quadrant", 1))
        model.shutter_state = "11x"
        model.slit_ymin = -0.55
        model.slit_ymax = 1.55


def _new_model(cls: type, real: _Realisation, slit_attrs: bool = True) -> datamodels.JwstDataModel:
    """Create and fill a standalone model (exposure + slit metadata)."""
    model = cls()
    _fill_exposure_meta(model, real.cfg)
    _fill_slit(model, real, slit_attrs=slit_attrs)
    if real.cfg.nints is not None and hasattr(model, "int_times"):
        model.int_times = _int_times(model, real.cfg.nints, real.cfg.exptime)
    return model


# --------------------------------------------------------------------------- #
# Public builders
# --------------------------------------------------------------------------- #
def make_slit(
    config: SceneConfig | None = None, **overrides: Any
) -> tuple[datamodels.SlitModel, SceneTruth]:
    """Simulate a single-slit exposure.

    Parameters
    ----------
    config : SceneConfig, optional
        Base configuration (defaults to ``SceneConfig()``).
    **overrides
        Any :class:`SceneConfig` field, overriding ``config``.

    Returns
    -------
    model : stdatamodels.jwst.datamodels.SlitModel
        2D (or 3D if ``nints`` is set) calibrated slit model with WCS.
    truth : SceneTruth
        The known truth.

    Examples
    --------
    >>> model, truth = make_slit(nx=256, seed=3)
    >>> model.data.shape
    (32, 256)
    """
    cfg = _resolve_config(config, overrides)
    real = _simulate(cfg)
    real.extras.update(ystart=_default_ystart(cfg))
    return _new_model(datamodels.SlitModel, real), real.truth


def _default_ystart(cfg: SceneConfig) -> int:
    """Plausible 1-based detector row of the cutout."""
    return 1 if cfg.exp_type in ("NRS_BRIGHTOBJ", "MIR_LRS-SLITLESS") else 1000


def make_multislit(
    n_slits: int = 3, config: SceneConfig | None = None, **overrides: Any
) -> tuple[datamodels.MultiSlitModel, list[SceneTruth]]:
    """Simulate a multi-slit exposure (NIRSpec MOS or fixed slits).

    Each slit gets its own name, source id, seed, flux (halving from slit to
    slit), sky position and a trace centre shifted by up to one pixel.  For
    ``exp_type="NRS_MSASPEC"`` the slit names are slitlet numbers and MSA
    attributes (``shutter_state`` etc.) are set; otherwise fixed-slit names
    are used (starting with ``config.slit_name``).

    Parameters
    ----------
    n_slits : int
        Number of slits.
    config : SceneConfig, optional
        Base configuration for all slits.
    **overrides
        Any :class:`SceneConfig` field.

    Returns
    -------
    model : stdatamodels.jwst.datamodels.MultiSlitModel
        The exposure, with ``model.slits[i]`` the slits.
    truths : list of SceneTruth
        Truth of every slit, in the same order.
    """
    if n_slits < 1:
        raise ValueError("n_slits must be >= 1")
    base = _resolve_config(config, overrides)
    rng = _as_rng(base.seed)
    seeds = rng.integers(0, 2**63 - 1, size=n_slits)
    offsets = rng.uniform(-1.0, 1.0, size=n_slits)
    model = datamodels.MultiSlitModel()
    _fill_exposure_meta(model, base)
    mos = base.exp_type == "NRS_MSASPEC"
    if not mos:
        others = [s for s in _NIRSPEC_FS_SLITS if s != base.slit_name]
        fs_names = [base.slit_name, *others]
    truths = []
    for i in range(n_slits):
        if mos:
            name = str(i + 1 + 10 * base.source_id)
        else:
            name = fs_names[i] if i < len(fs_names) else f"SLIT{i + 1}"
        cfg = dataclasses.replace(
            base,
            slit_name=name,
            source_id=base.source_id + i,
            seed=int(seeds[i]),
            flux=base.flux * 0.5**i,
            trace_center=base.center + offsets[i],
        )
        _validate(cfg)
        real = _simulate(cfg)
        real.extras.update(
            radec=(_RA0 + 0.003 * i, _DEC0 - 0.002 * i),
            xstart=1 + 37 * i,
            ystart=150 + 60 * i,
            slitlet_id=int(name) if mos else i + 1,
            shutter_id=1000 + 3 * i,
            quadrant=1 + i % 4,
        )
        slit = datamodels.SlitModel()
        _fill_exposure_meta(slit, cfg)  # as extract_2d does (slit.update(input))
        _fill_slit(slit, real)
        model.slits.append(slit)
        truths.append(real.truth)
    return model, truths


def make_nods(
    n_nods: int = 3, repeats: int = 1, nod_throw: float = 5.0, config: SceneConfig | None = None,
    **overrides: Any,
) -> tuple[list[datamodels.MultiSlitModel], list[SceneTruth]]:
    """Simulate the exposures of one source nodded along its slit (MOS or fixed slit).

    Exposure ``k`` (of ``n_nods * repeats``) is at nod position ``k % n_nods``;
    the source sits ``(position - (n_nods - 1) / 2) * nod_throw`` pixels from
    the slit's centre row. Every exposure sees the same spectrum, background
    and wavelengths through independent noise and defects, as real nods do;
    each WCS is centred on its own source position (as NIRSpec's is on the
    source shutter). MOS exposures say their nod position in
    ``shutter_state`` (``"x11"``, ``"1x1"``, ``"11x"`` for three nods), all in
    ``meta.dither.position_number``.

    Parameters
    ----------
    n_nods, repeats : int
        Nod positions, and exposures at each.
    nod_throw : float
        Pixels between neighbouring nod positions.
    config : SceneConfig, optional
        Base configuration (``exp_type="NRS_MSASPEC"`` for MOS metadata).
    **overrides
        Any :class:`SceneConfig` field.

    Returns
    -------
    models : list of MultiSlitModel
        One exposure each, with one slit.
    truths : list of SceneTruth
        Truth of every exposure, in the same order.
    """
    if n_nods < 1 or repeats < 1:
        raise ValueError("n_nods and repeats must be >= 1")
    base = _resolve_config(config, overrides)
    rng = _as_rng(base.seed)
    spectrum_seed = base.spectrum_seed if base.spectrum_seed is not None else int(rng.integers(0, 2**31))
    seeds = rng.integers(0, 2**63 - 1, size=n_nods * repeats)
    wavelength = _wavelength_canonical(base)
    mos = base.exp_type == "NRS_MSASPEC"
    models, truths = [], []
    for k, seed in enumerate(seeds):
        position = k % n_nods
        cfg = dataclasses.replace(
            base, seed=int(seed), spectrum_seed=spectrum_seed,
            trace_center=base.center + (position - (n_nods - 1) / 2) * nod_throw,
        )
        _validate(cfg)
        real = _simulate(cfg)
        real.wavelength = np.ascontiguousarray(
            wavelength if cfg.dispersion_axis == 1 else wavelength.T, dtype=np.float32)
        real.truth.wavelength = real.wavelength.astype(float)
        real.extras.update(xstart=1, ystart=_default_ystart(cfg), slitlet_id=base.source_id,
                           shutter_id=1000 + base.source_id, quadrant=1)
        model = datamodels.MultiSlitModel()
        _fill_exposure_meta(model, cfg)
        model.meta.observation.exposure_number = str(k + 1)
        model.meta.dither.position_number = position + 1
        model.meta.dither.total_points = n_nods
        model.meta.filename = f"jw01234001001_03101_{k + 1:05d}_nrs1_cal.fits"
        slit = datamodels.SlitModel()
        _fill_exposure_meta(slit, cfg)
        _fill_slit(slit, real)
        if mos:
            slit.name = str(base.source_id)
            slit.shutter_state = "".join("x" if i == position else "1" for i in range(n_nods))
        model.slits.append(slit)
        models.append(model)
        truths.append(real.truth)
    return models, truths


def add_background(
    model: datamodels.SlitModel, truth: SceneTruth, background: np.ndarray, photons_per_unit: float,
    seed: int | np.random.Generator | None = 0,
) -> None:
    """Add a background of any shape to a simulated single-frame exposure, in place.

    Its photons are an independent Poisson draw, so the data stay exactly
    Poisson in the total rate; ``var_poisson`` and ``err`` are derived from the
    new data as the pipeline would, and ``truth.background`` and
    ``truth.variance`` gain the background and its variance.

    Parameters
    ----------
    model : SlitModel
        A 2D exposure from `make_slit` (dispersion along x).
    truth : SceneTruth
        Its truth.
    background : ndarray
        ``(ny, nx)`` background rate in the data's units.
    photons_per_unit : float
        Counted photons per unit of the data (``exptime * gain`` for DN/s).
    seed : int or numpy.random.Generator, optional
        Random seed of the photons.
    """
    rng = _as_rng(seed)
    data = model.data.astype(np.float64) + rng.poisson(background * photons_per_unit) / photons_per_unit
    good = ~truth.flagged
    model.data = np.where(good, data, np.nan).astype(np.float32)
    model.var_poisson = np.where(good, np.maximum(data, 0) / photons_per_unit, 0).astype(np.float32)
    model.err = np.sqrt(model.var_poisson + model.var_rnoise).astype(np.float32)
    truth.background = background
    truth.variance = truth.variance + background / photons_per_unit


def make_tso(
    nints: int = 50, config: SceneConfig | None = None, **overrides: Any
) -> tuple[datamodels.SlitModel | datamodels.CubeModel, SceneTruth]:
    """Simulate a time-series (``calints``-like) exposure with a transit.

    The source flux of every integration is multiplied by a trapezoidal
    transit light curve of depth ``transit_depth``; ``jitter_rms`` adds a
    random trace shift per integration.  Without ``config`` the defaults are
    NIRSpec BOTS-like (``NRS_BRIGHTOBJ``, slit ``S1600A1``).

    Parameters
    ----------
    nints : int
        Number of integrations (overrides ``config.nints``).
    config : SceneConfig, optional
        Base configuration.
    **overrides
        Any :class:`SceneConfig` field (except ``nints``).

    Returns
    -------
    model : SlitModel or CubeModel
        A 3D ``SlitModel`` (``CubeModel`` for ``exp_type="MIR_LRS-SLITLESS"``)
        with an ``INT_TIMES`` table.
    truth : SceneTruth
        Truth; ``truth.flux`` is ``(nints, nx)``.
    """
    defaults = {"exp_type": "NRS_BRIGHTOBJ", "slit_name": "S1600A1"}
    cfg = _resolve_config(config, {**overrides, "nints": int(nints)}, **defaults)
    real = _simulate(cfg, white=_transit(cfg.nints, cfg.transit_depth))
    real.extras.update(ystart=_default_ystart(cfg))
    if cfg.exp_type == "MIR_LRS-SLITLESS":
        return _new_model(datamodels.CubeModel, real, slit_attrs=False), real.truth
    return _new_model(datamodels.SlitModel, real), real.truth


_EXAMPLES: dict[str, dict[str, Any]] = {
    "nirspec_fs": dict(
        exp_type="NRS_FIXEDSLIT",
        slit_name="S200A1",
        units="MJy",
        nx=1024,
        ny=32,
        lines=6,
        cosmic_ray_fraction=3e-4,
        hot_pixels=3,
        nan_fraction=2e-3,
        nan_columns=1,
    ),
    "nirspec_mos": dict(
        exp_type="NRS_MSASPEC",
        units="MJy",
        nx=1024,
        ny=24,
        width=(0.8, 1.4),
        background=2.0,
        trace_curvature=1.0,
        cosmic_ray_fraction=3e-4,
        hot_pixels=2,
        nan_fraction=2e-3,
    ),
    "miri_lrs": dict(
        exp_type="MIR_LRS-FIXEDSLIT",
        slit_name="LRS",
        units="MJy/sr",
        dispersion_axis=2,
        nx=388,
        ny=44,
        wavelength_range=(5.0, 12.0),
        width=(0.9, 2.2),
        profile="moffat",
        trace_center=22.3,
        trace_curvature=0.5,
        trace_tilt=0.3,
        background=50.0,
        background_gradient=(0.1, 0.5),
        read_noise=30.0,
        flux=3000.0,
        lines=3,
        cosmic_ray_fraction=3e-4,
        hot_pixels=2,
        nan_fraction=1e-3,
    ),
    "nirspec_bots": dict(
        exp_type="NRS_BRIGHTOBJ",
        slit_name="S1600A1",
        units="MJy",
        nx=512,
        ny=32,
        nints=20,
        flux=20000.0,
        exptime=60.0,
        jitter_rms=0.02,
        lines=0,
        cosmic_ray_fraction=1e-4,
    ),
}

_EXAMPLE_FILENAMES = {
    "nirspec_fs": "jw01234001001_04101_00001_nrs1_cal.fits",
    "nirspec_mos": "jw01234002001_03101_00001_nrs1_cal.fits",
    "miri_lrs": "jw01234003001_03102_00001_mirimage_cal.fits",
    "nirspec_bots": "jw01234004001_04101_00001-seg001_nrs1_calints.fits",
}


def write_example(path: str | os.PathLike[str], kind: str = "nirspec_fs", seed: int = 0) -> Path:
    """Write a realistic calibrated example file.

    Parameters
    ----------
    path : str or path-like
        Output file name, or an existing directory in which a JWST-style
        file name (``jw..._cal.fits`` / ``_calints.fits``) is created.
    kind : {"nirspec_fs", "nirspec_mos", "miri_lrs", "nirspec_bots"}
        * ``nirspec_fs``: ``MultiSlitModel`` with one S200A1 slit, MJy.
        * ``nirspec_mos``: ``MultiSlitModel`` with three MSA slitlets, MJy.
        * ``miri_lrs``: ``ImageModel`` (as the pipeline's LRS fixed-slit
          ``cal`` product), MJy/sr, dispersion along y.
        * ``nirspec_bots``: 3D ``SlitModel`` (``calints``) with 20
          integrations and a transit.
    seed : int
        Random seed.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    if kind not in _EXAMPLES:
        raise ValueError(f"kind must be one of {sorted(_EXAMPLES)}, got {kind!r}")
    path = Path(path)
    if path.is_dir():
        path = path / _EXAMPLE_FILENAMES[kind]
    cfg = SceneConfig(**_EXAMPLES[kind], seed=seed)
    model: datamodels.JwstDataModel
    if kind == "nirspec_fs":
        model, _ = make_multislit(1, cfg)
    elif kind == "nirspec_mos":
        model, _ = make_multislit(3, cfg)
    elif kind == "nirspec_bots":
        model, _ = make_tso(cfg.nints or 20, cfg)
    else:
        real = _simulate(_resolve_config(cfg, {}))
        model = _new_model(datamodels.ImageModel, real, slit_attrs=False)
    with model:
        model.save(path)
    log.info("Wrote %s example to %s", kind, path)
    return path


# --------------------------------------------------------------------------- #
# Cramér–Rao bound
# --------------------------------------------------------------------------- #
def cramer_rao_variance(truth: SceneTruth, mask: np.ndarray | None = None) -> np.ndarray:
    """Cramér–Rao (minimum) variance of the flux per column.

    For data ``D = f P + B + noise`` with known profile ``P``, background
    ``B`` and variance ``V``, the minimum-variance unbiased linear estimate
    of ``f`` has variance ``1 / sum(P**2 / V)`` over the good pixels of the
    column.

    Parameters
    ----------
    truth : SceneTruth
        Truth of a simulated exposure.
    mask : numpy.ndarray of bool, optional
        Good-pixel mask (True = use), broadcastable to the data shape.
        Defaults to ``~truth.flagged``.

    Returns
    -------
    numpy.ndarray
        ``(nx,)`` or ``(nints, nx)`` variance, in data units squared
        (``inf`` for columns without good pixels).
    """
    good = ~truth.flagged if mask is None else np.asarray(mask, dtype=bool)
    profile = np.asarray(truth.profile, dtype=float)
    variance = np.asarray(truth.variance, dtype=float)
    shape = np.broadcast_shapes(profile.shape, variance.shape, good.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        info = np.where(good, profile**2 / variance, 0.0)
        info = np.broadcast_to(info, shape).sum(axis=truth.spatial_axis)
        return np.where(info > 0, 1.0 / info, np.inf)
