"""Held-out synthetic scenes for the accuracy scorecard (`benchmarks/scorecard.py`).

This generator is deliberately independent of `jwst_optextract.simulate`: the
scorecard must measure the package on inputs its developers did not build
their tests from. It knows only numpy, scipy, astropy/gwcs and
stdatamodels, and writes ordinary calwebb_spec2-like products (DN/s).

Conventions
-----------
Every scene is a slit with the dispersion along x (``dispersion_direction =
1``), shape ``(ny, nx)`` (or ``(nints, ny, nx)`` for the time series). Rates
are in DN/s with a gain of 1 e/DN and an exposure time ``EXPTIME``: a pixel of
expected rate ``m`` holds ``Poisson(m * EXPTIME) / EXPTIME`` plus read noise.

``profile[y, x]`` is the source's cross-dispersion profile integrated over
each pixel (CDF differences), normalised to unit flux over an *infinite*
aperture: the part of the source beyond the slit's rows is lost, as in
reality. ``flux[x]`` is the source's total flux per column. What an
extraction can recover is the flux inside the slit,
``truth[x] = flux[x] * profile[:, x].sum()``; the scorecard's bias, CRB and
coverage are all against that slit flux (the Fisher bounds use the profile
renormalised to unit sum over the slit).

The variance of the model, ``variance = (source + background) / EXPTIME +
read_noise**2 + var_flat``, is the true pixel variance (no defect pixels);
``bad`` marks the pixels carrying a defect (cosmic ray, hot pixel, NaN),
which the bounds leave out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import special, stats
from stdatamodels.jwst import datamodels
from stdatamodels.jwst.datamodels import dqflags

__all__ = ["EXPTIME", "Scene", "draw_nod_set", "draw_slit", "draw_tso", "nod_models", "slit_models", "tso_model"]

EXPTIME = 1000.0
"""Exposure (integration) time in seconds; gain 1: Poisson variance of a rate ``m`` is ``m / EXPTIME``."""

DO_NOT_USE = dqflags.pixel["DO_NOT_USE"]
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
LAMBDA_RANGE = (1.0, 5.0)


@dataclass
class Scene:
    """One slit exposure (or time series) with its truth.

    Attributes
    ----------
    name : str
        Slit name (unique within a draw).
    kind : str
        ``"gaussian"``, ``"moffat"`` or ``"double"``.
    source_id : int
        MSA source identifier (for the nods: shared by the exposures).
    data, var_poisson, var_rnoise, var_flat : ndarray
        The product's arrays (float64 here, float32 in the file).
    dq : ndarray of uint32
        DO_NOT_USE on the NaN pixels only (cosmic rays and hot pixels are unflagged).
    wavelength : ndarray
        ``(ny, nx)`` wavelengths in microns, a function of the column only.
    profile : ndarray
        Pixel-integrated profile, unit total over an infinite aperture, shape of a frame.
    flux : ndarray
        Total source flux per column (DN/s), ``(nx,)`` or ``(nints, nx)``.
    background : ndarray
        Background rate per pixel, ``(ny, nx)``.
    variance : ndarray
        True variance of every pixel (model based, no defects).
    bad : ndarray of bool
        Pixels with a defect (cosmic ray, hot pixel, NaN).
    trace : ndarray
        True centre row of the source per column (flux-weighted centre for a double).
    wcs_offset : float or None
        Rows between the WCS source position and the true trace; None without a WCS position.
    peak_snr : float
        Drawn peak signal-to-noise per pixel.
    extras : dict
        Anything else worth printing (FWHM range, Moffat beta, ...).
    """

    name: str
    kind: str
    source_id: int
    data: np.ndarray
    dq: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray
    var_flat: np.ndarray
    wavelength: np.ndarray
    profile: np.ndarray
    flux: np.ndarray
    background: np.ndarray
    variance: np.ndarray
    bad: np.ndarray
    trace: np.ndarray
    trace_coeffs: tuple[float, float, float]
    wcs_offset: float | None
    peak_snr: float
    shutter_state: str | None = None
    position: int | None = None
    extras: dict = field(default_factory=dict)

    @property
    def ny(self) -> int:
        return self.data.shape[-2]

    @property
    def nx(self) -> int:
        return self.data.shape[-1]

    @property
    def truth(self) -> np.ndarray:
        """The recoverable (in-slit) flux per column: ``flux * profile.sum(rows)``."""
        return self.flux * self.profile.sum(axis=-2)


# --------------------------------------------------------------------------- #
# Profiles (pixel integrated)
# --------------------------------------------------------------------------- #
def _edges(ny: int) -> np.ndarray:
    """Lower and upper pixel edges of every row, shape (2, ny, 1)."""
    y = np.arange(ny, dtype=float)[:, None]
    return np.stack([y - 0.5, y + 0.5])


def pixel_profile(kind: str, ny: int, centre: np.ndarray, fwhm: np.ndarray, beta: float = 3.0,
                  separation: float = 3.0, ratio: float = 0.5) -> np.ndarray:
    """A profile integrated over every pixel of ``ny`` rows, unit flux over an infinite aperture.

    Parameters
    ----------
    kind : {"gaussian", "moffat", "double"}
        Gaussian; Moffat of index ``beta`` (a Student t of ``2 beta - 1``
        degrees of freedom); or two Gaussians ``separation`` pixels apart, the
        second with ``ratio`` times the flux of the first, about a
        flux-weighted centre ``centre``.
    ny : int
        Number of rows.
    centre, fwhm : ndarray
        Per column (``(nx,)``), or broadcastable to ``(..., 1, nx)``.

    Returns
    -------
    ndarray
        ``(..., ny, nx)``.
    """
    centre = np.asarray(centre, float)[..., None, :]
    fwhm = np.asarray(fwhm, float)[..., None, :]
    lo, hi = _edges(ny)
    if kind == "gaussian":
        sigma = fwhm / FWHM_PER_SIGMA
        return _gauss_cdf((hi - centre) / sigma) - _gauss_cdf((lo - centre) / sigma)
    if kind == "moffat":
        alpha = fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
        nu = 2.0 * beta - 1.0
        scale = np.sqrt(nu) / alpha
        return stats.t.cdf((hi - centre) * scale, nu) - stats.t.cdf((lo - centre) * scale, nu)
    if kind == "double":
        sigma = fwhm / FWHM_PER_SIGMA
        c1 = centre - separation * ratio / (1.0 + ratio)
        c2 = centre + separation / (1.0 + ratio)
        g1 = _gauss_cdf((hi - c1) / sigma) - _gauss_cdf((lo - c1) / sigma)
        g2 = _gauss_cdf((hi - c2) / sigma) - _gauss_cdf((lo - c2) / sigma)
        return (g1 + ratio * g2) / (1.0 + ratio)
    raise ValueError(f"unknown profile kind {kind!r}")


def _gauss_cdf(z: np.ndarray) -> np.ndarray:
    return 0.5 * special.erfc(-z / np.sqrt(2.0))


# --------------------------------------------------------------------------- #
# Drawing
# --------------------------------------------------------------------------- #
def _unit(n: int) -> np.ndarray:
    """Column coordinate scaled to [-1, 1]."""
    return np.linspace(-1.0, 1.0, n)


def _spectrum(rng: np.random.Generator, nx: int) -> np.ndarray:
    """A smooth positive continuum of mean about 1 with 1-5 emission or absorption lines."""
    u = _unit(nx)
    shape = 1.0 + rng.uniform(-0.3, 0.3) * u + rng.uniform(-0.2, 0.2) * (u**2 - 1.0 / 3.0)
    x = np.arange(nx)
    for _ in range(rng.integers(1, 6)):
        centre = rng.uniform(0.05, 0.95) * nx
        width = rng.uniform(1.0, 4.0)
        amplitude = rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 1.5)
        amplitude = max(amplitude, -0.6)
        shape = shape + amplitude * np.exp(-0.5 * ((x - centre) / width) ** 2)
    return np.clip(shape, 0.05, None)


def _geometry(rng: np.random.Generator, ny: int, nx: int, centre_offset: float | None = None):
    """Trace polynomial coefficients ``(c0, c1, c2)`` in the column coordinate u in [-1, 1]."""
    if centre_offset is None:
        centre_offset = rng.choice([-1.0, 1.0]) * rng.uniform(0.0, 5.0)
    c0 = (ny - 1) / 2.0 + centre_offset
    c1 = rng.uniform(-1.5, 1.5)
    c2 = rng.uniform(-1.0, 1.0)
    return c0, c1, c2


def _trace(coeffs, nx: int) -> np.ndarray:
    u = _unit(nx)
    return coeffs[0] + coeffs[1] * u + coeffs[2] * u**2


def _peak_counts(snr: float, other_variance: float) -> float:
    """Peak source rate whose S/N per pixel is ``snr`` over a variance ``other_variance`` (rate units)."""
    # s / sqrt(s / T + W) = snr  ->  s**2 - snr**2 s / T - snr**2 W = 0
    a = snr**2 / EXPTIME
    return 0.5 * (a + np.sqrt(a * a + 4.0 * snr**2 * other_variance))


def _background(rng: np.random.Generator, ny: int, nx: int, level: float) -> np.ndarray:
    """Background rate with linear/quadratic gradients across the slit and along it."""
    y = _unit(ny)[:, None]
    x = _unit(nx)[None, :]
    across = 1.0 + rng.uniform(-0.3, 0.3) * y + rng.uniform(-0.1, 0.1) * (y**2 - 1.0 / 3.0)
    along = 1.0 + rng.uniform(-0.3, 0.3) * x + rng.uniform(-0.15, 0.15) * (x**2 - 1.0 / 3.0)
    return level * across * along


def _profile_parameters(rng: np.random.Generator, kind: str | None = None) -> dict:
    kind = kind or str(rng.choice(["gaussian", "moffat", "double"]))
    fwhm0 = rng.uniform(1.5, 3.5)
    growth = rng.uniform(1.0, 1.6)
    if rng.random() < 0.5:  # width may shrink or grow along the slit
        fwhm = (fwhm0 * growth, fwhm0)
    else:
        fwhm = (fwhm0, fwhm0 * growth)
    fwhm = tuple(float(min(w, 5.0)) for w in fwhm)
    params = {"kind": kind, "fwhm": fwhm}
    if kind == "moffat":
        params["beta"] = float(rng.uniform(2.0, 4.0))
    if kind == "double":
        params["separation"] = float(rng.uniform(2.0, 4.0))
        params["ratio"] = float(rng.uniform(0.3, 1.0))
    return params


def profile_of(params: dict, ny: int, trace: np.ndarray) -> np.ndarray:
    """The pixel profile of drawn ``params`` (kind, FWHM at both ends, and beta or separation and ratio)."""
    nx = trace.shape[-1]
    fwhm = np.linspace(params["fwhm"][0], params["fwhm"][1], nx)
    extra = {k: params[k] for k in ("beta", "separation", "ratio") if k in params}
    return pixel_profile(params["kind"], ny, trace, fwhm, **extra)


def _noise_and_defects(rng: np.random.Generator, model: np.ndarray, read_noise: float, flat_error: float,
                       snr_pixel_variance: np.ndarray | None = None, nan_frame: np.ndarray | None = None,
                       hot_frame: np.ndarray | None = None, poisson_from_data: bool = True):
    """Noisy data, pipeline-like variance arrays, DQ and the defect mask for expected rates ``model``.

    The defects are 0.1-0.3 % unflagged cosmic rays (per frame), a few hot
    pixels and some NaNs (flagged DO_NOT_USE); ``nan_frame`` and ``hot_frame``
    fix the NaN and hot pixels of a time series to the same detector places.
    """
    shape = model.shape
    ny, nx = shape[-2:]
    counts = rng.poisson(np.clip(model, 0.0, None) * EXPTIME).astype(float)
    var_rnoise = np.full(shape, read_noise**2)
    var_flat = (flat_error * model) ** 2
    data = counts / EXPTIME + rng.normal(0.0, read_noise, shape) + rng.normal(0.0, 1.0, shape) * np.sqrt(var_flat)
    variance = np.clip(model, 0.0, None) / EXPTIME + var_rnoise + var_flat
    bad = np.zeros(shape, bool)
    # cosmic rays: 0.1-0.3 % of the pixels, 20-2000 sigma above
    n_cr = round(rng.uniform(1e-3, 3e-3) * data.size)
    flat_index = rng.choice(data.size, n_cr, replace=False)
    sigma = np.sqrt(variance.ravel()[flat_index])
    data.ravel()[flat_index] += sigma * 10 ** rng.uniform(np.log10(20.0), np.log10(2000.0), n_cr)
    bad.ravel()[flat_index] = True
    # hot pixels: a few, 50-5000 sigma, at the same place in every frame
    if hot_frame is None:
        hot_frame = np.zeros((ny, nx), bool)
        hot_frame.ravel()[rng.choice(ny * nx, rng.integers(2, 8), replace=False)] = True
    hot = np.broadcast_to(hot_frame, shape)
    data = np.where(hot, data + np.sqrt(variance) * rng.uniform(50.0, 5000.0, shape), data)
    bad |= hot
    # Poisson variance as the pipeline makes it: from the (clipped) measured rate
    if poisson_from_data:
        var_poisson = np.clip(data, 0.0, None) / EXPTIME
    else:
        var_poisson = np.clip(model, 0.0, None) / EXPTIME
    # NaNs: 0.05-0.3 % of the pixels, flagged DO_NOT_USE
    if nan_frame is None:
        nan_frame = np.zeros((ny, nx), bool)
        nan_frame.ravel()[rng.choice(ny * nx, round(rng.uniform(5e-4, 3e-3) * ny * nx), replace=False)] = True
    nan = np.broadcast_to(nan_frame, shape)
    dq = np.where(nan, DO_NOT_USE, 0).astype(np.uint32)
    data = np.where(nan, np.nan, data)
    var_poisson = np.where(nan, np.nan, var_poisson)
    var_rnoise = np.where(nan, np.nan, var_rnoise)
    var_flat = np.where(nan, np.nan, var_flat)
    bad |= nan
    return data, dq, var_poisson, var_rnoise, var_flat, variance, bad, nan_frame, hot_frame


def _wavelengths(rng: np.random.Generator, ny: int, nx: int) -> tuple[np.ndarray, float, float]:
    lam0 = rng.uniform(*LAMBDA_RANGE) * 0.6
    dlam = rng.uniform(0.5, 2.0) / nx
    wave = lam0 + dlam * np.arange(nx, dtype=float)
    return np.broadcast_to(wave, (ny, nx)).copy(), float(lam0), float(dlam)


def draw_slit(rng: np.random.Generator, name: str, source_id: int, with_wcs: bool, kind: str | None = None,
              snr: float | None = None, profile: dict | None = None) -> Scene:
    """Draw one slit exposure of the population (see the module docstring and `benchmarks/scorecard.py`).

    ``profile`` (kind, ``fwhm`` at both ends, and ``beta`` or ``separation``
    and ``ratio``, as `_profile_parameters` draws them) gives the profile
    instead of drawing it: the point sources of one exposure share the PSF.
    """
    ny = int(rng.integers(20, 46))
    nx = int(rng.integers(400, 1025))
    coeffs = _geometry(rng, ny, nx)
    trace = _trace(coeffs, nx)
    params = _profile_parameters(rng, kind) if profile is None else dict(profile)
    profile = profile_of(params, ny, trace)
    read_noise = float(rng.uniform(0.005, 0.02))  # DN/s per pixel (5-20 e in 1000 s)
    bkg_level = float(10 ** rng.uniform(np.log10(0.005), np.log10(0.5)))  # DN/s per pixel
    snr = float(10 ** rng.uniform(0.0, 2.0)) if snr is None else float(snr)
    peak = _peak_counts(snr, bkg_level / EXPTIME + read_noise**2)
    spectrum = _spectrum(rng, nx)
    flux = spectrum * peak / profile.max(axis=0).mean()
    background = _background(rng, ny, nx, bkg_level)
    model = flux * profile + background
    flat_error = float(rng.choice([0.0, rng.uniform(0.0, 0.003)]))
    data, dq, vp, vr, vf, variance, bad, _, _ = _noise_and_defects(
        rng, model, read_noise, flat_error, poisson_from_data=bool(rng.random() < 0.7))
    wave, lam0, dlam = _wavelengths(rng, ny, nx)
    wcs_offset = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.0, 5.0)) if with_wcs else None
    return Scene(name=name, kind=params["kind"], source_id=source_id, data=data, dq=dq, var_poisson=vp,
                 var_rnoise=vr, var_flat=vf, wavelength=wave, profile=profile, flux=flux, background=background,
                 variance=variance, bad=bad, trace=trace, trace_coeffs=coeffs, wcs_offset=wcs_offset,
                 peak_snr=snr, extras={**params, "lam0": lam0, "dlam": dlam, "read_noise": read_noise,
                                       "background": bkg_level, "flat_error": flat_error})


def draw_nod_set(rng: np.random.Generator, source_id: int, n_nods: int = 3) -> list[Scene]:
    """Three (``n_nods``) exposures of one MSA source, nodded 4-6 px along a 30-45-row slit.

    The exposures share the source (flux, profile shape, trace shape), the
    sky background, the wavelengths and the detector place; noise and
    defects are independent. Nod position ``k`` puts the source at
    ``(k - (n_nods - 1) / 2) * throw`` rows from the slit's centre (plus a
    common offset of up to 1.5 rows); ``shutter_state`` says the position.
    """
    ny = int(rng.integers(30, 46))
    nx = int(rng.integers(400, 1025))
    throw = float(rng.uniform(4.0, 6.0))
    base = _geometry(rng, ny, nx, centre_offset=float(rng.uniform(-1.5, 1.5)))
    params = _profile_parameters(rng)
    read_noise = float(rng.uniform(0.005, 0.02))
    bkg_level = float(10 ** rng.uniform(np.log10(0.005), np.log10(0.5)))
    snr = float(10 ** rng.uniform(0.0, 2.0))
    spectrum = _spectrum(rng, nx)
    background = _background(rng, ny, nx, bkg_level)
    wave, lam0, dlam = _wavelengths(rng, ny, nx)
    flat_error = float(rng.choice([0.0, rng.uniform(0.0, 0.003)]))
    with_wcs = bool(rng.random() < 0.5)
    wcs_error = float(rng.uniform(-2.0, 2.0))
    scenes = []
    flux = None
    for k in range(n_nods):
        coeffs = (base[0] + (k - (n_nods - 1) / 2.0) * throw, base[1], base[2])
        trace = _trace(coeffs, nx)
        profile = profile_of(params, ny, trace)
        if flux is None:
            peak = _peak_counts(snr, bkg_level / EXPTIME + read_noise**2)
            flux = spectrum * peak / profile.max(axis=0).mean()
        model = flux * profile + background
        data, dq, vp, vr, vf, variance, bad, _, _ = _noise_and_defects(rng, model, read_noise, flat_error)
        state = "".join("x" if i == k else "1" for i in range(n_nods))
        scenes.append(Scene(
            name=f"{source_id}", kind=params["kind"], source_id=source_id, data=data, dq=dq, var_poisson=vp,
            var_rnoise=vr, var_flat=vf, wavelength=wave, profile=profile, flux=flux, background=background,
            variance=variance, bad=bad, trace=trace, trace_coeffs=coeffs,
            wcs_offset=wcs_error if with_wcs else None, peak_snr=snr, shutter_state=state, position=k,
            extras={**params, "lam0": lam0, "dlam": dlam, "throw": throw, "read_noise": read_noise,
                    "background": bkg_level}))
    return scenes


def draw_tso(rng: np.random.Generator, nints: int = 50, ny: int = 32, nx: int = 512, jitter_rms: float = 0.03,
             depth: float = 0.01) -> Scene:
    """A time series: ``nints`` integrations of one bright source, per-integration trace jitter, a transit.

    ``flux`` is ``(nints, nx)``: the spectrum times the white-light curve
    (a trapezoid of depth ``depth`` in the middle third); ``extras`` hold
    ``jitter`` (rows, per integration) and ``transit`` (the light curve). No
    WCS source position. The NaN and hot pixels are the same in every
    integration; cosmic rays are independent.
    """
    coeffs = _geometry(rng, ny, nx, centre_offset=float(rng.uniform(-2.0, 2.0)))
    trace0 = _trace(coeffs, nx)
    jitter = rng.normal(0.0, jitter_rms, nints)
    trace = trace0[None, :] + jitter[:, None]
    params = _profile_parameters(rng, kind="gaussian" if rng.random() < 0.5 else "moffat")
    profile = profile_of(params, ny, trace)  # (nints, ny, nx)
    read_noise = float(rng.uniform(0.005, 0.02))
    bkg_level = float(10 ** rng.uniform(np.log10(0.002), np.log10(0.05)))
    snr = float(rng.uniform(30.0, 100.0))
    peak = _peak_counts(snr, bkg_level / EXPTIME + read_noise**2)
    spectrum = _spectrum(rng, nx)
    transit = _transit(nints, depth)
    flux = transit[:, None] * (spectrum * peak / profile[0].max(axis=0).mean())[None, :]
    background = _background(rng, ny, nx, bkg_level)
    model = flux[:, None, :] * profile + background
    data, dq, vp, vr, vf, variance, bad, _, _ = _noise_and_defects(rng, model, read_noise, 0.0)
    wave, lam0, dlam = _wavelengths(rng, ny, nx)
    return Scene(name="TSO", kind=params["kind"], source_id=1, data=data, dq=dq, var_poisson=vp, var_rnoise=vr,
                 var_flat=vf, wavelength=wave, profile=profile, flux=flux, background=background,
                 variance=variance, bad=bad, trace=trace, trace_coeffs=coeffs, wcs_offset=None, peak_snr=snr,
                 extras={**params, "jitter": jitter, "transit": transit, "lam0": lam0, "dlam": dlam})


def _transit(nints: int, depth: float) -> np.ndarray:
    """A trapezoidal light curve: full depth over the middle fifth, ingress and egress a tenth each."""
    t = np.linspace(0.0, 1.0, nints)
    dip = np.clip((0.25 - np.abs(t - 0.5)) / 0.1, 0.0, 1.0)
    return 1.0 - depth * dip


# --------------------------------------------------------------------------- #
# Datamodels
# --------------------------------------------------------------------------- #
def _slit_wcs(scene: Scene):
    """A ``detector -> slit_frame -> world`` gwcs whose slit frame has ``y_slit = (y - trace(x)) / ny``.

    With ``source_ypos = wcs_offset / ny`` the jwst source-location code
    places the source ``wcs_offset`` rows from the true trace. The
    wavelength depends on the column only (the WAVELENGTH array is the same
    function at the pixel centres).
    """
    from astropy import coordinates as coord
    from astropy import units as u
    from astropy.modeling import models as am
    from gwcs import coordinate_frames as cf
    from gwcs import wcs as gwcs_wcs

    ny, nx = scene.ny, scene.nx
    lam0, dlam = scene.extras["lam0"], scene.extras["dlam"]
    c0, c1, c2 = scene.trace_coeffs
    # trace in raw column x: u = 2 x / (nx - 1) - 1
    a = 2.0 / (nx - 1)
    trace = am.Polynomial1D(2, c0=c0 - c1 + c2, c1=c1 * a - 2.0 * c2 * a, c2=c2 * a * a)
    pick_x = am.Mapping((0,), n_inputs=2)
    pick_y = am.Mapping((1,), n_inputs=2)
    offset = pick_y - (pick_x | trace)
    det2slit = am.Mapping((0, 1, 0, 1, 0, 1)) | (
        (pick_x | am.Const1D(0.0)) & (offset | am.Scale(1.0 / ny)) & (pick_x | am.Linear1D(slope=dlam, intercept=lam0)))
    xdet = am.Mapping((1,), n_inputs=2) | am.Shift(-lam0) | am.Scale(1.0 / dlam)
    ydet = (xdet | trace) + (am.Mapping((0,), n_inputs=2) | am.Scale(float(ny)))
    slit2det = am.Mapping((1, 2, 1, 2)) | (xdet & ydet)
    det2slit.inverse = slit2det
    scale = ny * 0.1 / 3600.0
    sky = (am.AffineTransformation2D(matrix=np.diag([0.2 / 3600.0, scale]), translation=[0.0, 0.0])
           | am.Pix2Sky_TAN() | am.RotateNative2Celestial(53.1, -27.8, 180.0))
    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    spectral = cf.SpectralFrame(name="spectral", axes_order=(2,), unit=(u.micron,), axes_names=("wavelength",))
    slit_frame = cf.CompositeFrame([cf.Frame2D(name="slit_spatial", axes_order=(0, 1), unit=("", ""),
                                               axes_names=("x_slit", "y_slit")), spectral], name="slit_frame")
    world = cf.CompositeFrame([cf.CelestialFrame(reference_frame=coord.ICRS(), name="sky", axes_order=(0, 1),
                                                 unit=(u.deg, u.deg)), spectral], name="world")
    wcs = gwcs_wcs.WCS([(detector, det2slit), (slit_frame, sky & am.Identity(1)), (world, None)])
    wcs.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    return wcs


def _exposure_meta(model, exp_type: str, nints: int = 1, position: int | None = None, n_nods: int = 3) -> None:
    meta = model.meta
    meta.telescope = "JWST"
    meta.date = "2025-01-01T00:00:00.000"
    meta.observation.date = "2025-01-01"
    meta.observation.time = "00:00:00.000"
    meta.observation.program_number = "09999"
    meta.observation.observation_number = "001"
    meta.observation.visit_number = "001"
    meta.instrument.name = "NIRSPEC"
    meta.instrument.detector = "NRS1"
    meta.instrument.filter = "CLEAR"
    meta.instrument.grating = "PRISM"
    if exp_type == "NRS_BRIGHTOBJ":
        meta.instrument.fixed_slit = "S1600A1"
        meta.subarray.name = "SUB2048"
    else:
        meta.subarray.name = "FULL"
    if exp_type == "NRS_MSASPEC":
        meta.instrument.msa_metadata_file = "jw09999001001_01_msa.fits"
    exp = meta.exposure
    exp.type = exp_type
    exp.nints = nints
    exp.integration_start = 1
    exp.integration_end = nints
    exp.ngroups = 20
    exp.nframes = 1
    exp.readpatt = "NRSIRS2RAPID"
    exp.integration_time = EXPTIME
    exp.exposure_time = EXPTIME * nints
    exp.effective_exposure_time = EXPTIME * nints
    exp.start_time = 60676.0
    exp.end_time = 60676.0 + EXPTIME * nints / 86400.0
    exp.mid_time = 0.5 * (exp.start_time + exp.end_time)
    meta.target.source_type = "POINT"
    meta.target.ra, meta.target.dec = 53.1, -27.8
    meta.dither.dithered_ra, meta.dither.dithered_dec = 53.1, -27.8
    if position is not None:
        meta.dither.position_number = position + 1
        meta.dither.total_points = n_nods
    meta.bunit_data = "DN/s"
    meta.bunit_err = "DN/s"
    for step in ("assign_wcs", "extract_2d", "flat_field", "srctype"):
        setattr(meta.cal_step, step, "COMPLETE")
    meta.cal_step.photom = "SKIPPED"


def _fill_slit(slit, scene: Scene, exp_type: str) -> None:
    f32 = np.float32
    slit.data = scene.data.astype(f32)
    slit.dq = scene.dq
    slit.var_poisson = scene.var_poisson.astype(f32)
    slit.var_rnoise = scene.var_rnoise.astype(f32)
    slit.var_flat = scene.var_flat.astype(f32)
    slit.err = np.sqrt(scene.var_poisson + scene.var_rnoise + scene.var_flat).astype(f32)
    slit.wavelength = scene.wavelength.astype(f32)
    slit.meta.wcsinfo.dispersion_direction = 1
    slit.meta.wcsinfo.spectral_order = 1
    slit.meta.bunit_data = "DN/s"
    slit.meta.bunit_err = "DN/s"
    slit.name = scene.name
    slit.source_id = int(scene.source_id)
    slit.source_name = f"SC_{scene.source_id:05d}"
    slit.source_type = "POINT"
    slit.xstart, slit.ystart = 1, 1
    slit.xsize, slit.ysize = scene.nx, scene.ny
    if exp_type == "NRS_MSASPEC":
        slit.slitlet_id = int(scene.source_id)
        slit.shutter_id = 1000 + int(scene.source_id)
        slit.quadrant = 1
        slit.shutter_state = scene.shutter_state or "1x1"
        slit.slit_ymin, slit.slit_ymax = -0.5, 0.5
    if scene.wcs_offset is not None:
        slit.meta.wcs = _slit_wcs(scene)
        slit.source_xpos = 0.0
        slit.source_ypos = float(scene.wcs_offset / scene.ny)


def slit_models(scenes: list[Scene], exp_type: str = "NRS_MSASPEC") -> datamodels.MultiSlitModel:
    """One MultiSlitModel holding the slits of ``scenes`` (a ``_cal``-like product)."""
    model = datamodels.MultiSlitModel()
    _exposure_meta(model, exp_type)
    for scene in scenes:
        slit = datamodels.SlitModel()
        _fill_slit(slit, scene, exp_type)
        model.slits.append(slit)
    return model


def nod_models(sets: list[list[Scene]]) -> list[datamodels.MultiSlitModel]:
    """The exposures of nod sets: exposure ``k`` holds nod position ``k`` of every source."""
    n_nods = len(sets[0])
    models = []
    for k in range(n_nods):
        model = datamodels.MultiSlitModel()
        _exposure_meta(model, "NRS_MSASPEC", position=k, n_nods=n_nods)
        for scenes in sets:
            slit = datamodels.SlitModel()
            _fill_slit(slit, scenes[k], "NRS_MSASPEC")
            model.slits.append(slit)
        models.append(model)
    return models


def tso_model(scene: Scene) -> datamodels.SlitModel:
    """A 3D ``SlitModel`` (``calints``-like, NRS_BRIGHTOBJ) with an INT_TIMES table and no WCS."""
    model = datamodels.SlitModel()
    nints = scene.data.shape[0]
    _exposure_meta(model, "NRS_BRIGHTOBJ", nints=nints)
    _fill_slit(model, scene, "NRS_BRIGHTOBJ")
    model.name = "S1600A1"
    table = np.zeros(nints, dtype=model.get_default("int_times").dtype)
    start = 60676.0 + np.arange(nints) * EXPTIME / 86400.0
    table["integration_number"] = np.arange(1, nints + 1)
    for prefix, shift in (("UTC", 0.0), ("BJD_TDB", 381.184 / 86400.0)):
        table[f"int_start_MJD_{prefix}" if prefix == "UTC" else f"int_start_{prefix}"] = start + shift
        mid = start + shift + 0.5 * EXPTIME / 86400
        table[f"int_mid_MJD_{prefix}" if prefix == "UTC" else f"int_mid_{prefix}"] = mid
        table[f"int_end_MJD_{prefix}" if prefix == "UTC" else f"int_end_{prefix}"] = start + shift + EXPTIME / 86400
    model.int_times = table
    return model
