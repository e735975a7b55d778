"""What is simulated: the configuration, the truth, and the geometry and spectrum they imply.

:class:`SceneConfig` holds every knob of a simulated exposure and :class:`SceneTruth` what
was simulated; the helpers here resolve and validate a configuration and compute the
nominal trace, the wavelengths of the pixel centres, the source spectrum and the transit
light curve. :func:`cramer_rao_variance` is the best variance any extraction can reach on a
truth. Plain numpy: no datamodels (see the package docstring for the model).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["MJYSR_PER_DNS", "MJY_PER_DNS", "WAVE_TILT", "SceneConfig", "SceneTruth", "as_rng", "column_coordinate",
           "cramer_rao_variance", "linear_dispersion", "nominal_trace", "resolve_config", "source_spectrum",
           "transit_curve", "validate_config", "wavelength_canonical"]

#: Conversion factor from DN/s to MJy/sr used for ``units="MJy/sr"``.
MJYSR_PER_DNS: float = 1.0e-3
#: Conversion factor from DN/s to MJy used for ``units="MJy"`` (point source).
MJY_PER_DNS: float = 1.0e-11


_PROFILES = ("gaussian", "moffat", "double")
_UNITS = ("DN/s", "MJy/sr", "MJy")
#: Change of wavelength per cross-dispersion pixel away from the trace, in
#: units of the dispersion per pixel (tilt of iso-wavelength lines).
WAVE_TILT = 0.02


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


def as_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """Return a Generator (passing an existing one through)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def resolve_config(
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
    validate_config(cfg)
    return cfg


def validate_config(cfg: SceneConfig) -> None:
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


def column_coordinate(nx: int) -> np.ndarray:
    """``u = (x - xmid) / (nx - 1)`` in ``[-1/2, 1/2]``."""
    x = np.arange(nx, dtype=float)
    return (x - 0.5 * (nx - 1)) / (nx - 1)


def nominal_trace(cfg: SceneConfig) -> np.ndarray:
    """Nominal trace row for every column, ``(nx,)``."""
    uu = column_coordinate(cfg.nx)
    return cfg.center + cfg.trace_tilt * uu + 4.0 * cfg.trace_curvature * uu**2


def linear_dispersion(cfg: SceneConfig) -> tuple[float, float]:
    """Return ``(lambda0, dlambda/dx)`` in micron and micron/pixel."""
    w0, w1 = cfg.wavelength_range
    return float(w0), (float(w1) - float(w0)) / (cfg.nx - 1)


def wavelength_canonical(cfg: SceneConfig) -> np.ndarray:
    """Wavelength (micron) of every pixel centre, canonical ``(ny, nx)``."""
    lam0, dlam = linear_dispersion(cfg)
    x = np.arange(cfg.nx, dtype=float)
    y = np.arange(cfg.ny, dtype=float)[:, None]
    return lam0 + dlam * x + WAVE_TILT * dlam * (y - nominal_trace(cfg))


def source_spectrum(cfg: SceneConfig, rng: np.random.Generator) -> np.ndarray:
    """Source signal per column (DN/s) with continuum slope and emission lines."""
    x = np.arange(cfg.nx, dtype=float)
    shape = 1.0 + cfg.continuum_slope * column_coordinate(cfg.nx)
    if cfg.lines > 0:
        centres = rng.uniform(0.05 * cfg.nx, 0.95 * cfg.nx, cfg.lines)
        sigmas = rng.uniform(1.0, 3.0, cfg.lines)
        amps = rng.uniform(0.2, 2.0, cfg.lines)
        lines = amps[:, None] * np.exp(-0.5 * ((x - centres[:, None]) / sigmas[:, None]) ** 2)
        shape = shape * (1.0 + lines.sum(axis=0))
    return cfg.flux * shape


def transit_curve(nints: int, depth: float) -> np.ndarray:
    """Trapezoidal transit light curve (white-light factor per integration)."""
    if nints == 1:
        return np.ones(1)
    t = np.linspace(-1.0, 1.0, nints)
    half_duration, ingress = 0.45, 0.12  # in units of half the exposure
    shape = np.clip((half_duration - np.abs(t)) / ingress, 0.0, 1.0)
    return 1.0 - depth * shape


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
