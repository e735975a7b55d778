"""Cross-dispersion profile from a user-supplied template (e.g. stpsf/WebbPSF, or a reference star).

A template is a set of monochromatic cross-dispersion profiles: a density
``T(lambda, o)`` sampled on a grid of wavelengths and of offsets ``o`` from the
trace, in the slit's cross-dispersion pixels. For every column the template is
interpolated linearly in wavelength (at the wavelength on the trace) and
integrated over the pixels of the slit: its cumulative integral is
interpolated by cubic Hermite polynomials, whose slopes are the template values
themselves, and differenced at the pixel edges. An optional stretch factor
``s`` (one per slit, fitted) scales the offsets, ``T(o / s) / s``, for a PSF a
little wider or narrower than the model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .base import Profile, ProfileProblem, register
from .shape import fit_shape, mean_data, normalised

__all__ = ["ProfileTemplate", "TemplateProfile", "fit_template_profile"]

log = logging.getLogger(__name__)


@dataclass
class ProfileTemplate:
    """Monochromatic cross-dispersion profiles on a (wavelength, offset) grid.

    Attributes
    ----------
    wavelength : ndarray
        ``(n_wave,)`` increasing wavelengths, in microns (at least two).
    offset : ndarray
        ``(n_offset,)`` increasing offsets from the trace, in pixels. The grid
        should sample the profile finely (a quarter pixel or better) and reach
        where it is negligible: beyond it the profile is zero.
    values : ndarray
        ``(n_wave, n_offset)`` profile density (per pixel of offset), any
        normalisation; each wavelength is normalised to unit integral.
    """

    wavelength: np.ndarray
    offset: np.ndarray
    values: np.ndarray
    cdf: np.ndarray = field(init=False, repr=False)
    """``(n_wave, n_offset)`` cumulative integral of each normalised profile."""
    density: np.ndarray = field(init=False, repr=False)
    """``(n_wave, n_offset)`` the normalised profiles."""

    def __post_init__(self):
        self.wavelength = np.atleast_1d(np.asarray(self.wavelength, float))
        self.offset = np.atleast_1d(np.asarray(self.offset, float))
        self.values = np.atleast_2d(np.asarray(self.values, float))
        shape = (self.wavelength.size, self.offset.size)
        if self.values.shape != shape or min(shape) < 2 or self.offset.size < 4:
            raise ValueError(f"the template's profiles are {self.values.shape} (wavelengths, offsets) for "
                             f"{shape[0]} wavelengths and {shape[1]} offsets; at least 2 wavelengths and 4 "
                             "offsets are needed")
        if not (np.all(np.diff(self.offset) > 0) and np.all(np.diff(self.wavelength) > 0)):
            raise ValueError("the template's offsets and wavelengths must be strictly increasing")
        if not np.all(np.isfinite(self.values)):
            raise ValueError("the template has non-finite values")
        slope = np.gradient(self.values, self.offset, axis=1)
        step = np.diff(self.offset)
        # trapezoids with the end correction: exact for cubics, like the Hermite interpolation below
        pieces = 0.5 * step * (self.values[:, 1:] + self.values[:, :-1]) - step**2 / 12 * np.diff(slope, axis=1)
        cdf = np.concatenate([np.zeros((self.wavelength.size, 1)), np.cumsum(pieces, axis=1)], axis=1)
        total = cdf[:, -1:]
        if np.any(total <= 0):
            raise ValueError("the template has a wavelength whose profile does not integrate to a positive value")
        self.cdf, self.density = cdf / total, self.values / total

    def at(self, wavelength: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cumulative profile and density ``(n, n_offset)`` at the ``(n,)`` wavelengths, linear in wavelength.

        Raises
        ------
        ValueError
            When a wavelength lies outside the template's.
        """
        wavelength = np.asarray(wavelength, float)
        low, high = self.wavelength[0], self.wavelength[-1]
        outside = (wavelength < low) | (wavelength > high)
        if outside.any():
            raise ValueError(f"the profile template covers {low:g} to {high:g} micron, but the trace reaches "
                             f"{wavelength.min():g} to {wavelength.max():g} micron ({int(outside.sum())} columns "
                             "outside); give a template that covers the slit's wavelengths")
        i = np.clip(np.searchsorted(self.wavelength, wavelength) - 1, 0, self.wavelength.size - 2)
        w = ((wavelength - self.wavelength[i]) / (self.wavelength[i + 1] - self.wavelength[i]))[:, None]
        return ((1 - w) * self.cdf[i] + w * self.cdf[i + 1], (1 - w) * self.density[i] + w * self.density[i + 1])


@register("template")
@dataclass
class TemplateProfile(Profile):
    """A template resampled onto one slit: one profile per column, optionally stretched.

    Attributes
    ----------
    template : ProfileTemplate
        The template.
    column_wavelength : ndarray
        ``(nx,)`` wavelength on the trace of every column.
    stretch : float
        Factor scaling the template's offsets (1: as given).
    """

    template: ProfileTemplate
    column_wavelength: np.ndarray
    stretch: float = 1.0
    chi2: float = np.nan
    """Weighted chi-square of the stretch fit, summed over the pixels used."""
    n_pixels: int = 0
    _tables: tuple = field(init=False, repr=False)

    def __post_init__(self):
        self.column_wavelength = np.asarray(self.column_wavelength, float)
        self._tables = self.template.at(self.column_wavelength)

    def evaluate(self, ny: int, center: np.ndarray) -> np.ndarray:
        """The profile ``(..., ny, nx)`` about the trace ``center`` (``(..., nx)``), normalised per column."""
        g, _ = self.pixels(ny, center, self.stretch, derivative=False)
        return normalised(g)

    # A template resampled onto the pixels is only known on the pixel scale (see ProfileFit.derivatives).
    derivative_step: ClassVar[float] = 1.0
    # A template is a shape known in advance: it is resampled onto the slit even without a detection.
    needs_source: ClassVar[bool] = False

    @property
    def n_parameters(self) -> float:
        return 1.0

    @property
    def note(self) -> str:
        return f"stretch {self.stretch:.3f}"

    def to_entry(self) -> dict[str, Any]:
        return {"template_wavelength": self.template.wavelength, "template_offset": self.template.offset,
                "template_values": self.template.values, "wavelength": self.column_wavelength,
                "stretch": float(self.stretch)}

    @classmethod
    def from_entry(cls, entry: Any, center: np.ndarray, ny: int) -> TemplateProfile:
        template = ProfileTemplate(np.asarray(entry.template_wavelength), np.asarray(entry.template_offset),
                                   np.asarray(entry.template_values))
        wavelength = np.asarray(entry.wavelength, float)
        if wavelength.shape != center.shape:
            raise ValueError(f"the given template profile has {wavelength.size} column wavelengths "
                             f"but the slit has {center.size} columns")
        return cls(template, wavelength, float(entry.stretch))

    @classmethod
    def fit(cls, problem: ProfileProblem) -> TemplateProfile:
        """``problem.template`` resampled onto the slit about its trace (and its stretch fitted, if asked)."""
        if problem.template is None:
            raise ValueError("the template profile kind needs a template file (parameter template)")
        return fit_template_profile(
            problem.image, problem.good, problem.var_rnoise, problem.var_poisson, problem.center, problem.template,
            _trace_wavelength(problem), fit_stretch=problem.template_stretch and problem.detected,
            reject_sigma=problem.reject_sigma,
        )

    def pixels(self, ny: int, center: np.ndarray, stretch: float, derivative: bool = True):
        """Fraction of the flux in every pixel, and its derivative with respect to the stretch."""
        center = np.asarray(center, float)
        edges = (np.arange(ny + 1, dtype=float)[:, None] - 0.5 - center[..., None, :]) / stretch
        cdf, density = self._interpolate(edges)
        g = np.diff(cdf, axis=-2)
        if not derivative:
            return g, None
        moment = edges * density  # d F(o / s) / ds = -(o / s) T(o / s) / s
        return g, -np.diff(moment, axis=-2) / stretch

    def _interpolate(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cumulative profile and density at offsets ``u`` (``(..., nx)``), cubic Hermite in each column."""
        cdf_table, density_table = self._tables
        grid = self.template.offset
        k = np.clip(np.searchsorted(grid, u) - 1, 0, grid.size - 2)
        step = grid[k + 1] - grid[k]
        s = np.clip((u - grid[k]) / step, 0.0, 1.0)
        column = np.arange(u.shape[-1])
        c0, c1 = cdf_table[column, k], cdf_table[column, k + 1]
        d0, d1 = density_table[column, k] * step, density_table[column, k + 1] * step
        s2, s3 = s * s, s * s * s
        cdf = (2 * s3 - 3 * s2 + 1) * c0 + (s3 - 2 * s2 + s) * d0 + (3 * s2 - 2 * s3) * c1 + (s3 - s2) * d1
        slope = ((6 * s2 - 6 * s) * c0 + (3 * s2 - 4 * s + 1) * d0 + (6 * s - 6 * s2) * c1 + (3 * s2 - 2 * s) * d1)
        inside = (u >= grid[0]) & (u <= grid[-1])
        return cdf, np.where(inside, slope / step, 0.0)


def fit_template_profile(
    data: np.ndarray,
    good: np.ndarray,
    var_rnoise: np.ndarray,
    var_poisson: np.ndarray | None,
    center: np.ndarray,
    template: ProfileTemplate,
    column_wavelength: np.ndarray,
    fit_stretch: bool = True,
    stretch_limits: tuple[float, float] = (0.5, 2.0),
    reject_sigma: float = 5.0,
    max_iterations: int = 10,
) -> TemplateProfile:
    """Resample a template onto a slit about its trace and, optionally, fit its stretch.

    Parameters
    ----------
    data, good, var_rnoise, var_poisson
        As for `~jwst_optextract.core.profiles.gaussian.fit_gaussian_profile`.
    center : ndarray
        ``(nx,)`` trace, held.
    template : ProfileTemplate
        The template.
    column_wavelength : ndarray
        ``(nx,)`` wavelength on the trace of every column.
    fit_stretch : bool
        Fit one factor scaling the template's offsets (Gauss-Newton on all
        good pixels); otherwise use the template as given.
    stretch_limits : tuple of float
        The stretch is kept within these limits.
    reject_sigma, max_iterations
        As for `~jwst_optextract.core.profiles.gaussian.fit_gaussian_profile`.

    Returns
    -------
    TemplateProfile

    Raises
    ------
    ValueError
        When the template does not cover the wavelengths of the trace.
    """
    profile = TemplateProfile(template, column_wavelength)
    if not fit_stretch:
        return profile
    image, mask, vr, vp = mean_data(data, good, var_rnoise, var_poisson)
    ny = image.shape[0]

    def model(values):
        g, d_stretch = profile.pixels(ny, values["center"], float(values["stretch"][0]))
        return g, {"stretch": d_stretch}

    coeffs, chi2, n_pixels = fit_shape(image, mask, vr, vp, model, {"stretch": np.ones(1)},
                                       np.asarray(center, float), {"stretch": stretch_limits}, reject_sigma,
                                       max_iterations, first_rejection=0)[:3]
    profile.stretch, profile.chi2, profile.n_pixels = float(coeffs["stretch"][0]), chi2, n_pixels
    log.info("Template profile: fitted stretch %.4f", profile.stretch)
    return profile


def _trace_wavelength(problem: ProfileProblem) -> np.ndarray:
    """Wavelength on the trace in every column (interpolated across columns that have none)."""
    nx = problem.center.size
    rows = np.clip(np.round(problem.center).astype(int), 0, problem.ny - 1)
    wavelength = problem.wavelength[rows, np.arange(nx)]
    ok = np.isfinite(wavelength)
    if not ok.any():
        raise ValueError("no wavelength on the trace, which a profile template needs")
    return np.interp(np.arange(nx), np.flatnonzero(ok), wavelength[ok])
