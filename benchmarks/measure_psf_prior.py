"""Measure the NIRSpec cross-dispersion PSF (width law and Moffat index) from real data for the optxpsf reference.

Run: ``python benchmarks/measure_psf_prior.py [--data DIR] [--json OUT] [--reference-entry]``
(about 20 s on one core, offline; ``--reference-entry`` prints the ``NIRSPEC`` entry of
``reference_files/optx_psf_prior.json`` that the measurement gives, ``--json`` saves everything).

Two public data sets (see ``../shared/data/README.md``):

- ``nirspec_fs_s200a1_pn_msaexp``: the compact planetary nebula SMP LMC 58 (program 1125) in fixed
  slit S200A1, nine dispersers, combined and drizzled by msaexp onto rectified 2D grids. The
  profile is fitted in wavelength bins of the sum of the columns, separately for columns
  dominated by emission lines and for the continuum between them (the law uses the continuum).
  The fit forward-models what drizzling did to the profile: a pixel-integrated profile on the
  output grid, convolved with the input (native) pixel and the drop (``pixfrac`` = 1, msaexp's
  default), which is the drizzle's response averaged over the sub-pixel phases that the tilted
  traces and the nods mix. Widths are converted to native detector rows with the grid's scale
  from its ``CD`` matrix (see `grid_scale`: its ``PSCALE`` is wrong for the H gratings) and the
  native spatial scale `NATIVE_SCALE_ARCSEC`. msaexp's background (the image rolled by ``BKGOFF``
  rows, subtracted) leaves two broad, shallow negative images at +-``BKGOFF`` rows: they are
  fitted as a nuisance (a pair of Gaussians with a common depth, width and offset), never as part
  of the PSF.
- ``nirspec_mos_ceers_prism``: three nods of a faint CEERS galaxy (program 1345) in native detector
  pixels (``_phot`` cut-outs, background not subtracted, so not nod-subtracted either). Each nod
  less the mean of the other two is fitted with one profile for the positive image and the two
  half-weight negative images at the trace rows of the other nods (from the WCS; 5 rows away, so
  inside the positive image's wings): a check at native sampling, of a source that turns out to
  be resolved.

In every bin a pixel-integrated Gaussian (sigma) and a pixel-integrated Moffat (alpha, beta) are
fitted with one amplitude per column (eliminated linearly), then the law
``sigma(lambda)**2 = sigma_0**2 + (k * lambda_um)**2`` is fitted to the Moffat's FWHM-equivalent
sigma (`~jwst_optextract.core.profiles.moffat.sigma_for_alpha`) in native pixels, and separately to
the Gaussian fits' sigma, with jackknife uncertainties over the nine dispersers; the Moffat index
is summarised by its median and robust scatter. The same fits without the drizzle kernel are
printed too: the kernel is the largest systematic of the measurement.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.polynomial import legendre
from scipy.ndimage import median_filter
from scipy.optimize import least_squares
from scipy.special import erf

from jwst_optextract.core.profiles.moffat import moffat_profile

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "real"
PN_DIR = "nirspec_fs_s200a1_pn_msaexp"
CEERS_DIR = "nirspec_mos_ceers_prism"

NATIVE_SCALE_ARCSEC = 0.105
"""NIRSpec's native spatial scale along the slit, arcsec per detector row: 0.1045 in the CEERS MSA
``_phot`` WCS (NRS2) and 0.1053 in the S200A2 fixed-slit WCS of ``../shared/data/wcs`` (the nominal
0.1 arcsec is 5 % smaller); the script prints the CEERS value it measures."""
TELESCOPE_DIAMETER_M = 6.5
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
ARCSEC_PER_RADIAN = 206264.806
PIXFRAC = 1.0
"""msaexp's drizzle drop size (its ``DRIZZLE_PARAMS`` default), in input pixels."""
MIN_SNR = 30.0
"""Bins with a lower summed signal to noise are not fitted."""
HALF_WINDOW = 9
"""Rows either side of the trace used in the fits of the drizzled data (the negative images at +-6 inside)."""
WIDTH_SD = 0.25
"""Prior sd of ln(sigma) written to the optxpsf reference: the quadrature sum of the scatter about the law
(0.05), the drizzle-kernel model (the law without it is 16-49 % wider: 0.15) and source-to-source variation
(compact, barely resolved sources such as the CEERS galaxy, +35 %: 0.2)."""
INVERSE_BETA_SD = 0.13
"""Prior sd of 1/beta written to the optxpsf reference: the quadrature sum of the scatter over the bins
(0.04), the drizzle-kernel model (1/beta 0.47 with it, 0.25 without: 0.11) and source-to-source variation
(extended sources are more Gaussian-like: 0.05)."""


def diffraction_k(scale_arcsec: float = NATIVE_SCALE_ARCSEC, diameter_m: float = TELESCOPE_DIAMETER_M) -> float:
    """Diffraction term ``k`` [px/um] of the width law: the sigma of FWHM = 1.03 lambda / D, per micron."""
    fwhm_arcsec_per_um = 1.03 * 1e-6 / diameter_m * ARCSEC_PER_RADIAN
    return fwhm_arcsec_per_um / FWHM_PER_SIGMA / scale_arcsec


# ----------------------------------------------------------------------------------------------------------------
# Profile models and the fit


def gaussian_pixels(ny: int, center: np.ndarray, sigma: float) -> np.ndarray:
    """Pixel-integrated Gaussian, ``(ny, nx)`` for ``center`` of shape ``(nx,)``, normalised over the rows."""
    edges = np.arange(ny + 1, dtype=float)[:, None] - 0.5 - np.asarray(center, float)[None, :]
    cdf = 0.5 * (1.0 + erf(edges / (np.sqrt(2.0) * sigma)))
    g = np.diff(cdf, axis=0)
    return g / np.maximum(g.sum(axis=0), 1e-300)


def box_kernel(widths: Sequence[float], nodes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Shifts and weights of the convolution of boxes of the given full ``widths`` (rows).

    Gauss-Legendre nodes on each box, all combinations: convolving a profile with the
    boxes is the weighted sum of the profile shifted by these amounts.
    """
    x, w = legendre.leggauss(nodes)
    shifts, weights = np.zeros(1), np.ones(1)
    for width in widths:
        if width <= 0:
            continue
        shifts = (shifts[:, None] + 0.5 * width * x[None, :]).ravel()
        weights = (weights[:, None] * 0.5 * w[None, :]).ravel()
    return shifts, weights


@dataclasses.dataclass(frozen=True)
class ProfileFit:
    """One fitted cross-dispersion profile (widths in the pixels of the data fitted)."""

    kind: str
    """``gaussian`` or ``moffat``."""
    center: float
    """Offset of the positive image from the trace given, rows."""
    sigma: float
    """Gaussian sigma; for the Moffat its FWHM-equivalent sigma (``sigma_for_alpha(alpha, beta)``)."""
    sigma_err: float
    alpha: float = np.nan
    beta: float = np.nan
    beta_err: float = np.nan
    inverse_beta_err: float = np.nan
    chi2_red: float = np.nan
    snr: float = np.nan
    success: bool = True


def _profile(kind: str, ny: int, centers: np.ndarray, width: float, inverse_beta: float) -> np.ndarray:
    """The normalised, pixel-integrated profile of half width at half maximum ``width``."""
    if kind == "gaussian":
        return gaussian_pixels(ny, centers, width / np.sqrt(2.0 * np.log(2.0)))
    beta = 1.0 / inverse_beta
    alpha = width / np.sqrt(2.0**inverse_beta - 1.0)
    return moffat_profile(ny, centers, np.full(centers.shape, alpha), beta)


def fit_profile(
    data: np.ndarray,
    variance: np.ndarray,
    trace: np.ndarray | float,
    kind: str = "moffat",
    *,
    images: Sequence[tuple[np.ndarray | float, float]] = (),
    kernel: tuple[np.ndarray, np.ndarray] | None = None,
    rolled_offset: float | None = None,
    sigma_guess: float = 1.0,
    beta_guess: float = 2.5,
    snr_rows: float = 3.0,
) -> ProfileFit:
    """Fit a pixel-integrated Gaussian or Moffat cross-dispersion profile to columns of a 2D spectrum.

    The model of column ``x`` is ``A_x * sum_i w_i * (K * P)(y - trace_x - c - o_i,x)`` (plus, with
    ``rolled_offset``, a pair of broad negative Gaussians), with one amplitude ``A_x`` per column
    eliminated by linear least squares, the shared offset ``c``, the half width at half maximum
    and, for the Moffat, ``1 / beta`` fitted by `scipy.optimize.least_squares` (the half width and
    ``1 / beta`` trade far less than ``alpha`` and ``beta``).

    Parameters
    ----------
    data, variance : ndarray
        ``(ny, nx)`` (or ``(ny,)`` for one collapsed column); pixels with a variance that is not
        finite and positive, or data that are not finite, are left out.
    trace : ndarray or float
        Row of the positive image per column.
    kind : {"moffat", "gaussian"}
        Profile family.
    images : sequence of (offset, weight)
        Further images of the same profile (nod-subtraction negatives), at ``trace + offset``
        (offset per column or one value) with the given weight relative to the positive image.
    kernel : (shifts, weights), optional
        A convolution kernel as shifted copies (`box_kernel`): what resampling (drizzling) did to
        the profile. The fitted profile is then the one before the resampling.
    rolled_offset : float, optional
        Fit a nuisance pair of negative Gaussians at about ``+-rolled_offset`` rows from the trace
        with a common depth, width and offset (msaexp's rolled-image background).
    sigma_guess, beta_guess : float
        Starting Gaussian-equivalent width (rows) and Moffat index.
    snr_rows : float
        Half width, rows, of the aperture the returned signal to noise is summed over.

    Returns
    -------
    ProfileFit
    """
    data = np.asarray(data, float)
    variance = np.asarray(variance, float)
    if data.ndim == 1:
        data, variance = data[:, None], variance[:, None]
    ny, nx = data.shape
    trace = np.broadcast_to(np.asarray(trace, float), (nx,))
    good = np.isfinite(data) & np.isfinite(variance) & (variance > 0)
    inv_var = np.where(good, 1.0 / np.where(good, variance, 1.0), 0.0)
    d = np.where(good, data, 0.0)
    shifts, kweights = kernel if kernel is not None else (np.zeros(1), np.ones(1))
    all_images = [(np.zeros(nx), 1.0)] + [(np.broadcast_to(np.asarray(o, float), (nx,)), float(w)) for o, w in images]

    def model(p: np.ndarray) -> np.ndarray:
        center, width = p[0], p[1]
        inverse_beta = p[2] if kind == "moffat" else 0.0
        m = np.zeros((ny, nx))
        for offset, weight in all_images:
            for shift, kw in zip(shifts, kweights):
                m += weight * kw * _profile(kind, ny, trace + center + offset + shift, width, inverse_beta)
        if rolled_offset is not None:
            depth, extra, nuisance_sigma = p[-3:]
            for sign in (-1.0, 1.0):
                m -= depth * gaussian_pixels(ny, trace + center + sign * (rolled_offset + extra), nuisance_sigma)
        return m

    def residuals(p: np.ndarray) -> np.ndarray:
        m = model(p)
        amplitude = np.sum(m * d * inv_var, axis=0) / np.maximum(np.sum(m * m * inv_var, axis=0), 1e-300)
        return ((d - amplitude * m) * np.sqrt(inv_var))[good]

    hwhm = sigma_guess * np.sqrt(2.0 * np.log(2.0))
    p0, lower, upper = [0.0, hwhm], [-3.0, 0.15], [3.0, 6.0]
    if kind == "moffat":
        p0 += [1.0 / beta_guess]
        lower += [0.02]
        upper += [0.99]
    if rolled_offset is not None:
        p0 += [0.05, 0.0, 1.2]
        lower += [0.0, -1.5, 0.4]
        upper += [1.0, 1.5, 4.0]
    result = least_squares(residuals, np.array(p0), bounds=(lower, upper), x_scale="jac")
    n_free = result.fun.size - result.x.size - nx
    chi2_red = float(np.sum(result.fun**2) / max(n_free, 1))
    try:
        covariance = np.linalg.inv(result.jac.T @ result.jac) * max(chi2_red, 1.0)
        errors = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    except np.linalg.LinAlgError:
        errors = np.full(result.x.size, np.nan)
    core = np.abs(np.arange(ny)[:, None] - trace[None, :] - result.x[0]) <= snr_rows
    signal = np.sum(np.where(core & good, data, 0.0))
    noise = np.sqrt(np.sum(np.where(core & good, variance, 0.0)))
    snr = float(signal / noise) if noise > 0 else np.nan
    to_sigma = 1.0 / np.sqrt(2.0 * np.log(2.0))  # HWHM -> FWHM-equivalent sigma
    fields = {"kind": kind, "center": float(result.x[0]), "sigma": float(result.x[1] * to_sigma),
              "sigma_err": float(errors[1] * to_sigma), "chi2_red": chi2_red, "snr": snr,
              "success": bool(result.success)}
    if kind == "moffat":
        inverse_beta = float(result.x[2])
        fields.update(alpha=float(result.x[1] / np.sqrt(2.0**inverse_beta - 1.0)), beta=1.0 / inverse_beta,
                      beta_err=float(errors[2] / inverse_beta**2), inverse_beta_err=float(errors[2]))
    return ProfileFit(**fields)


# ----------------------------------------------------------------------------------------------------------------
# The planetary nebula (msaexp, drizzled)


@dataclasses.dataclass
class BinResult:
    """The fits of one wavelength bin of one disperser and column selection, widths in native pixels."""

    disperser: str
    selection: str
    wavelength: float
    snr: float
    gaussian: ProfileFit
    moffat: ProfileFit
    scale: float
    """Native pixels per fitted (data) pixel."""

    @property
    def sigma(self) -> float:
        return self.moffat.sigma * self.scale

    @property
    def sigma_err(self) -> float:
        return self.moffat.sigma_err * self.scale

    @property
    def sigma_gauss(self) -> float:
        return self.gaussian.sigma * self.scale

    @property
    def alpha(self) -> float:
        return self.moffat.alpha * self.scale

    def row(self) -> dict:
        return {"disperser": self.disperser, "selection": self.selection, "wavelength_um": round(self.wavelength, 4),
                "snr": round(self.snr, 1), "sigma_gauss_px": round(self.sigma_gauss, 4),
                "sigma_moffat_px": round(self.sigma, 4), "sigma_moffat_err_px": round(self.sigma_err, 4),
                "alpha_px": round(self.alpha, 4), "beta": round(self.moffat.beta, 3),
                "beta_err": round(self.moffat.beta_err, 3), "center_row": round(self.moffat.center, 3)}


def _line_columns(flux: np.ndarray, err: np.ndarray, width: int) -> np.ndarray:
    """Columns dominated by emission lines: above a running median by 5 sigma and 20 %, grown by 2 columns."""
    cont = median_filter(np.nan_to_num(flux), size=width, mode="nearest")
    excess = (flux - cont > 5.0 * err) & (flux > 1.2 * np.abs(cont))
    grown = excess.copy()
    for step in (1, 2):
        grown[step:] |= excess[:-step]
        grown[:-step] |= excess[step:]
    return grown


def grid_scale(header) -> float:
    """Spatial scale of msaexp's 2D grid, arcsec per row, from its WCS (``CD2_2``, ``CD3_2`` in degrees).

    Not ``PSCALE``: for the four H-grating files ``PSCALE`` (0.078-0.098) disagrees with their own
    ``CD`` matrix and ``SLIT_DY`` (0.101 arcsec, as in the other five files), and it would make the
    PSF of the H gratings 10-25 % narrower in arcsec than that of the M gratings at the same
    wavelength, which the optics (the same camera and detectors) do not allow.
    """
    return float(np.hypot(header["CD2_2"], header["CD3_2"]) * 3600.0)


def measure_pn_file(path: Path, n_bins: int, drizzle_kernel: bool = True) -> list[BinResult]:
    """Profile fits in ``n_bins`` wavelength bins of one msaexp ``.spec.fits`` (lines and continuum apart)."""
    from astropy.io import fits

    with fits.open(path) as hdul:
        sci = np.asarray(hdul["SCI"].data, float)
        wht = np.asarray(hdul["WHT"].data, float)
        header = hdul["SCI"].header
        wave = np.asarray(hdul["SPEC1D"].data["wave"], float)
    disperser = f"{header['GRATING']}/{header['FILTER']}".upper()
    scale = grid_scale(header) / NATIVE_SCALE_ARCSEC  # native pixels per drizzled pixel
    good = np.isfinite(sci) & (wht > 0)
    variance = np.where(good, 1.0 / np.where(good, wht, 1.0), np.inf)
    data = np.where(good, sci, np.nan)
    # the trace row: centroid of the collapsed profile about its peak (msaexp's YTRACE + PROFCEN)
    collapsed = np.nansum(np.where(good, sci, 0.0), axis=1)
    peak = int(np.argmax(collapsed))
    rows_near = np.arange(peak - 2, peak + 3)
    row0 = float(np.sum(rows_near * collapsed[rows_near]) / np.sum(collapsed[rows_near]))
    lo, hi = max(peak - HALF_WINDOW, 0), min(peak + HALF_WINDOW + 1, sci.shape[0])
    data, variance = data[lo:hi], variance[lo:hi]
    trace = row0 - lo
    core = slice(int(round(trace)) - 2, int(round(trace)) + 3)
    flux = np.nansum(data[core], axis=0)
    err = np.sqrt(np.nansum(np.where(np.isfinite(variance[core]), variance[core], 0.0), axis=0))
    usable = np.isfinite(wave) & (np.sum(np.isfinite(data[core]), axis=0) == data[core].shape[0])
    lines = _line_columns(flux, err, width=max(15, wave.size // 40)) & usable
    continuum = usable & ~lines
    kernel = box_kernel([1.0 / scale, PIXFRAC / scale]) if drizzle_kernel else None
    rolled = float(abs(header.get("BKGOFF", 6)))
    columns = np.flatnonzero(usable)
    edges = np.linspace(columns[0], columns[-1] + 1, n_bins + 1).astype(int)
    results = []
    for a, b in itertools.pairwise(edges):
        for selection, chosen in (("continuum", continuum), ("lines", lines)):
            cols = np.flatnonzero(chosen[a:b]) + a
            if cols.size < 3:
                continue
            profile = np.nansum(data[:, cols], axis=1)
            var = np.sum(np.where(np.isfinite(variance[:, cols]), variance[:, cols], 0.0), axis=1)
            missing = np.sum(np.isfinite(data[:, cols]), axis=1) < cols.size
            var = np.where(missing, np.inf, var)
            positive = np.clip(flux[cols], 0.0, None)
            if positive.sum() <= 0:
                continue
            wavelength = float(np.sum(wave[cols] * positive) / positive.sum())
            fits_ = {}
            for kind in ("gaussian", "moffat"):
                fits_[kind] = fit_profile(profile, var, trace, kind, kernel=kernel, rolled_offset=rolled,
                                          sigma_guess=0.8 / scale)
            snr = fits_["moffat"].snr
            if not snr >= MIN_SNR:
                continue
            results.append(BinResult(disperser, selection, wavelength, snr, fits_["gaussian"], fits_["moffat"], scale))
    return results


# ----------------------------------------------------------------------------------------------------------------
# CEERS PRISM nods (native pixels)


def ceers_traces(models) -> tuple[list[np.ndarray], float]:
    """Row of the source per column in each nod (from the WCS at ``source_ypos``), and arcsec per row."""
    traces = []
    scales = []
    for model in models:
        ny, nx = model.data.shape
        y, x = np.mgrid[:ny, :nx].astype(float)
        _, slit_y, _ = model.meta.wcs.get_transform("detector", "slit_frame")(x, y)
        rows = np.full(nx, np.nan)
        for col in range(nx):
            ok = np.isfinite(slit_y[:, col])
            if ok.sum() > 2:
                order = np.argsort(slit_y[ok, col])
                rows[col] = np.interp(model.source_ypos, slit_y[ok, col][order], y[ok, col][order])
        traces.append(rows)
        v2, v3, _ = model.meta.wcs.get_transform("detector", "v2v3")(x, y)
        scales.append(np.nanmedian(np.hypot(np.diff(v2, axis=0), np.diff(v3, axis=0))))  # v2v3 in arcsec
    return traces, float(np.median(scales))


def measure_ceers(directory: Path, wave_edges: Sequence[float]) -> tuple[list[BinResult], float]:
    """Profile fits of the CEERS nods in wavelength bins (native pixels), and the native scale from the WCS."""
    from stdatamodels.jwst import datamodels

    files = sorted(directory.glob("jw*_phot*.fits"))
    models = [datamodels.open(str(f)) for f in files]
    try:
        traces, native_scale = ceers_traces(models)
        images = []
        for model in models:
            err = np.asarray(model.err, float)
            bad = ~np.isfinite(model.data) | ((model.dq & 1) != 0) | ~(np.nan_to_num(err) > 0)
            images.append((np.where(bad, np.nan, model.data), np.where(bad, np.inf, np.nan_to_num(err) ** 2)))
        with np.errstate(all="ignore"):
            wave = np.nanmedian(np.where(np.isfinite(models[0].wavelength), models[0].wavelength, np.nan), axis=0)
    finally:
        for model in models:
            model.close()
    results = []
    for i in range(len(images)):
        others = [j for j in range(len(images)) if j != i]
        diff = images[i][0] - np.mean([images[j][0] for j in others], axis=0)
        var = images[i][1] + np.sum([images[j][1] for j in others], axis=0) / len(others) ** 2
        negatives = [(traces[j] - traces[i], -1.0 / len(others)) for j in others]
        for a, b in itertools.pairwise(wave_edges):
            cols = np.flatnonzero((wave >= a) & (wave < b) & np.isfinite(traces[i]))
            if cols.size < 5:
                continue
            fits_ = {kind: fit_profile(diff[:, cols], var[:, cols], traces[i][cols], kind,
                                       images=[(o[cols], w) for o, w in negatives], sigma_guess=0.8)
                     for kind in ("gaussian", "moffat")}
            positive = np.nansum(np.clip(diff[:, cols], 0, None), axis=0)
            wavelength = float(np.sum(wave[cols] * positive) / max(positive.sum(), 1e-300))
            results.append(BinResult("PRISM/CLEAR", f"nod{i + 1}", wavelength, fits_["moffat"].snr,
                                     fits_["gaussian"], fits_["moffat"], 1.0))
    return results, native_scale


# ----------------------------------------------------------------------------------------------------------------
# The width law and the index


def fit_width_law(wavelength: np.ndarray, sigma: np.ndarray) -> tuple[float, float, float]:
    """Least-squares ``sigma**2 = sigma_0**2 + (k lambda)**2`` in sigma; returns sigma_0, k, rms residual (px)."""
    wavelength, sigma = np.asarray(wavelength, float), np.asarray(sigma, float)

    def residuals(p):
        return np.sqrt(p[0] ** 2 + (p[1] * wavelength) ** 2) - sigma

    result = least_squares(residuals, np.array([0.5, 0.13]), bounds=([0.0, 0.0], [5.0, 2.0]))
    return float(result.x[0]), float(result.x[1]), float(np.sqrt(np.mean(result.fun**2)))


def jackknife_law(rows: Sequence[BinResult], gaussian: bool = False) -> dict:
    """The width law over all rows and its jackknife uncertainties, leaving out one disperser at a time.

    ``gaussian``: fit the sigma of the Gaussian fits instead of the Moffat's FWHM-equivalent sigma.
    """
    wavelength = np.array([r.wavelength for r in rows])
    sigma = np.array([r.sigma_gauss if gaussian else r.sigma for r in rows])
    groups = np.array([r.disperser for r in rows])
    sigma_0, k, rms = fit_width_law(wavelength, sigma)
    names = sorted(set(groups))
    partial = np.array([fit_width_law(wavelength[groups != g], sigma[groups != g])[:2] for g in names])
    n = len(names)
    err = np.sqrt((n - 1) / n * np.sum((partial - partial.mean(axis=0)) ** 2, axis=0)) if n > 1 else [np.nan] * 2
    ratio = sigma / np.sqrt(sigma_0**2 + (k * wavelength) ** 2)
    per_disperser = {g: (float(np.median(ratio[groups == g])), int(np.sum(groups == g))) for g in names}
    return {"sigma_0": sigma_0, "sigma_0_err": float(err[0]), "k": k, "k_err": float(err[1]), "rms_px": rms,
            "fractional_rms": float(np.sqrt(np.mean((ratio - 1.0) ** 2))), "n_bins": int(len(rows)),
            "per_disperser_ratio": per_disperser}


def law_sigma(law: dict, wavelength: np.ndarray) -> np.ndarray:
    """The law's sigma at ``wavelength`` [um]."""
    return np.hypot(law["sigma_0"], law["k"] * np.asarray(wavelength, float))


def robust_stats(values: Sequence[float]) -> tuple[float, float]:
    """Median and 1.4826 x median absolute deviation."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    median = float(np.median(values))
    return median, float(1.4826 * np.median(np.abs(values - median)))


def beta_summary(rows: Sequence[BinResult]) -> dict:
    """Median and robust scatter of beta and 1/beta, overall and per disperser."""
    beta = np.array([r.moffat.beta for r in rows])
    summary = {"beta": robust_stats(beta), "inverse_beta": robust_stats(1.0 / beta), "per_disperser": {}}
    for name in sorted({r.disperser for r in rows}):
        b = np.array([r.moffat.beta for r in rows if r.disperser == name])
        summary["per_disperser"][name] = (*robust_stats(b), int(b.size))
    return summary


def usable(row: BinResult) -> bool:
    """A fit that converged inside its bounds with a finite, smaller-than-itself error on 1/beta and sigma."""
    m = row.moffat
    return (m.success and 1.05 < m.beta < 45.0 and np.isfinite(m.beta_err) and m.inverse_beta_err < 0.5 / m.beta
            and np.isfinite(m.sigma_err) and m.sigma_err < 0.5 * m.sigma)


def paired_line_ratio(rows: Sequence[BinResult]) -> dict:
    """Width of the line-dominated columns over that of the continuum columns of the same bin (the PN's size)."""
    ratios = {"moffat": [], "gaussian": []}
    continuum = [r for r in rows if r.selection == "continuum"]
    for c in continuum:
        for line in rows:
            if (line.selection == "lines" and line.disperser == c.disperser
                    and abs(line.wavelength - c.wavelength) < 0.05 * c.wavelength):
                ratios["moffat"].append(line.sigma / c.sigma)
                ratios["gaussian"].append(line.sigma_gauss / c.sigma_gauss)
                break
    return {kind: (*robust_stats(v), len(v)) for kind, v in ratios.items()}


def reference_entry(law: dict, law_gauss: dict, betas: dict) -> dict:
    """The ``NIRSPEC`` entry of the optxpsf reference from the measurement: the law, its Gaussian-fit
    counterpart, the median index, the prior sds, and per disperser the law scaled by the disperser's median
    width ratio and its own median index."""
    entry = {"sigma_0": round(law["sigma_0"], 3), "k": round(law["k"], 4), "beta": round(betas["beta"][0], 2),
             "width_sd": WIDTH_SD, "inverse_beta_sd": INVERSE_BETA_SD,
             "gaussian_sigma_0": round(law_gauss["sigma_0"], 3), "gaussian_k": round(law_gauss["k"], 4),
             "sigma_0_err": round(law["sigma_0_err"], 3), "k_err": round(law["k_err"], 4),
             "beta_scatter": round(betas["beta"][1], 2), "inverse_beta_scatter": round(betas["inverse_beta"][1], 3),
             "law_fractional_rms": round(law["fractional_rms"], 3), "disperser": {}}
    for name, (ratio, _) in law["per_disperser_ratio"].items():
        entry["disperser"][name] = {
            "sigma_0": round(law["sigma_0"] * ratio, 3), "k": round(law["k"] * ratio, 4),
            "gaussian_sigma_0": round(law_gauss["sigma_0"] * ratio, 3), "gaussian_k": round(law_gauss["k"] * ratio, 4),
            "beta": round(betas["per_disperser"][name][0], 2), "width_ratio": round(ratio, 3)}
    return entry


# ----------------------------------------------------------------------------------------------------------------


def _print_table(rows: Sequence[BinResult]) -> None:
    print(f"{'disperser':<13} {'select':<9} {'lambda':>6} {'S/N':>5} {'sigma':>6} {'sigM':>6} {'+-':>5} "
          f"{'alpha':>6} {'beta':>5} {'+-':>5} {'chi2r':>6} {'dc':>5}")
    for r in rows:
        print(f"{r.disperser:<13} {r.selection:<9} {r.wavelength:6.3f} {r.snr:5.0f} {r.sigma_gauss:6.3f} "
              f"{r.sigma:6.3f} {r.sigma_err:5.3f} {r.alpha:6.3f} {r.moffat.beta:5.2f} {r.moffat.beta_err:5.2f} "
              f"{r.moffat.chi2_red:6.0f} {r.moffat.center:5.2f}")


def _print_law(name: str, fit: dict) -> None:
    print(f"  {name:<22} sigma_0 = {fit['sigma_0']:.3f} +- {fit['sigma_0_err']:.3f} px, "
          f"k = {fit['k']:.4f} +- {fit['k_err']:.4f} px/um, rms {fit['rms_px']:.3f} px "
          f"({100 * fit['fractional_rms']:.1f} %), {fit['n_bins']} bins")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("OPTX_REAL_DATA", str(DEFAULT_DATA)),
                        help="folder holding nirspec_fs_s200a1_pn_msaexp/ and nirspec_mos_ceers_prism/ "
                             "(default ../shared/data/real, or $OPTX_REAL_DATA)")
    parser.add_argument("--bins", type=int, default=8, help="wavelength bins per grating (PRISM: twice as many)")
    parser.add_argument("--selection", default="continuum", choices=("continuum", "lines", "both"),
                        help="columns whose bins enter the law and beta (default: continuum)")
    parser.add_argument("--json", help="write the table and the fitted laws to this JSON file")
    parser.add_argument("--reference-entry", action="store_true",
                        help="print the NIRSPEC entry of reference_files/optx_psf_prior.json these numbers give")
    args = parser.parse_args()
    start = time.perf_counter()
    data = Path(args.data)
    if not (data / PN_DIR).is_dir():
        raise SystemExit(f"no {PN_DIR}/ under {data}: give --data or set OPTX_REAL_DATA")

    print(f"Native spatial scale {NATIVE_SCALE_ARCSEC} arcsec/px; diffraction expectation "
          f"k = (1.03 lambda/D) / 2.355 = {diffraction_k():.4f} px/um (D = {TELESCOPE_DIAMETER_M} m)\n")
    rows: list[BinResult] = []
    raw: list[BinResult] = []
    for path in sorted((data / PN_DIR).glob("*.spec.fits.gz")):
        n_bins = 2 * args.bins if "prism" in path.name else args.bins
        rows += measure_pn_file(path, n_bins)
        raw += measure_pn_file(path, max(n_bins // 2, 2), drizzle_kernel=False)
    failed = [r for r in rows if not usable(r)]
    rows = [r for r in rows if usable(r)]
    raw = [r for r in raw if usable(r)]
    print("SMP LMC 58, fixed slit S200A1, msaexp 2D (widths in native px; drizzle kernel forward-modelled).\n"
          "sigma: pixel-integrated Gaussian fit; sigM: the Moffat's FWHM-equivalent sigma; dc: centre offset, rows")
    _print_table(rows)
    print(f"({len(failed)} bin fits at a bound or unconstrained left out: "
          f"{', '.join(f'{r.disperser} {r.selection} {r.wavelength:.2f}' for r in failed) or 'none'})")

    chosen = [r for r in rows if args.selection in ("both", r.selection)]
    law = jackknife_law(chosen)
    law_gauss = jackknife_law(chosen, gaussian=True)
    law_lines = jackknife_law([r for r in rows if r.selection == "lines"])
    raw = [r for r in raw if args.selection in ("both", r.selection)]
    raw_law = jackknife_law(raw)
    betas = beta_summary(chosen)
    raw_betas = beta_summary(raw)
    size = paired_line_ratio(rows)

    ceers, native_scale = measure_ceers(data / CEERS_DIR, wave_edges=[1.3, 2.0, 2.5, 3.0, 3.6, 4.5])
    ceers = [r for r in ceers if r.snr >= 10.0]
    print(f"\nCEERS 1345 slitlet 138 source 933 (a galaxy), PRISM nods in native px "
          f"(WCS scale {native_scale:.4f} arcsec/px)")
    _print_table(ceers)

    print(f"\nWidth law sigma^2 = sigma_0^2 + (k lambda_um)^2 in native px ({args.selection} bins, "
          f"uncertainties: jackknife over the dispersers):")
    _print_law("Moffat FWHM-equivalent", law)
    _print_law("Gaussian-fit sigma", law_gauss)
    _print_law("lines (Moffat)", law_lines)
    _print_law("no drizzle kernel", raw_law)
    print(f"  k / diffraction expectation = {law['k'] / diffraction_k():.2f} "
          f"(+- {law['k_err'] / diffraction_k():.2f})")
    print("  per disperser, median sigM / law: " + ", ".join(
        f"{name} {ratio:.3f}" for name, (ratio, _) in law["per_disperser_ratio"].items()))
    print(f"  emission-line / continuum width in the same bin: Moffat {size['moffat'][0]:.3f} +- "
          f"{size['moffat'][1]:.3f}, Gaussian {size['gaussian'][0]:.3f} +- {size['gaussian'][1]:.3f} "
          f"({size['gaussian'][2]} bins)")
    if ceers:
        wl = np.array([r.wavelength for r in ceers])
        sig = np.array([r.sigma_gauss for r in ceers])
        ratio = sig / law_sigma(law_gauss, wl)
        ratio_raw = sig / law_sigma(jackknife_law(raw, gaussian=True), wl)
        intrinsic = np.sqrt(np.clip(sig**2 - law_sigma(law_gauss, wl) ** 2, 0.0, None))
        print(f"  CEERS Gaussian sigma / law: median {np.median(ratio):.2f} ({ratio.min():.2f}-{ratio.max():.2f}); "
              f"/ law without drizzle kernel {np.median(ratio_raw):.2f}; quadrature excess "
              f"{np.median(intrinsic):.2f} px = {np.median(intrinsic) * native_scale:.3f} arcsec (source size)")
    print(f"\nMoffat index (median, 1.4826 MAD over bins): beta = {betas['beta'][0]:.2f} +- {betas['beta'][1]:.2f}, "
          f"1/beta = {betas['inverse_beta'][0]:.3f} +- {betas['inverse_beta'][1]:.3f}; "
          f"without the drizzle kernel beta = {raw_betas['beta'][0]:.2f} +- {raw_betas['beta'][1]:.2f}")
    for name, (median, scatter, n) in betas["per_disperser"].items():
        print(f"  {name:<13} beta = {median:.2f} +- {scatter:.2f} ({n} bins)")
    if ceers:
        cb = robust_stats([r.moffat.beta for r in ceers])
        print(f"  CEERS         beta = {cb[0]:.2f} +- {cb[1]:.2f} ({len(ceers)} bins; S/N too low to constrain it)")
    entry = reference_entry(law, law_gauss, betas)
    if args.reference_entry:
        print("\noptxpsf NIRSPEC entry:\n" + json.dumps(entry, indent=1))
    print(f"\n{time.perf_counter() - start:.1f} s")
    if args.json:
        out = {"native_scale_arcsec": NATIVE_SCALE_ARCSEC, "ceers_wcs_scale_arcsec": native_scale,
               "diffraction_k": diffraction_k(), "law": law, "law_gaussian": law_gauss, "law_lines": law_lines,
               "law_without_drizzle_kernel": raw_law, "beta": betas, "beta_without_drizzle_kernel": raw_betas,
               "line_over_continuum_width": size, "bins": [r.row() for r in rows],
               "ceers": [r.row() for r in ceers], "reference_entry": entry}
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
