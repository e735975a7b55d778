"""A prior on the cross-dispersion PSF: a width law in wavelength and a Moffat wing index, with their spreads.

The ``optxpsf`` reference (packaged as ``reference_files/optx_psf_prior.json``,
overridable with ``override_optxpsf``) holds, per instrument and disperser, the
law ``sigma(lambda)**2 = sigma_0**2 + (k * lambda_um)**2`` of the profile's
Gaussian-equivalent width in detector pixels, a Moffat index ``beta``, and the
standard deviations a fit shrinks toward them with: ``width_sd`` (of the
fractional width, used as the sd of ``ln sigma``) and ``inverse_beta_sd`` (of
``1 / beta``). `psf_prior_for` picks the most specific entry of a reference
(already read into a dict) for an exposure; `PsfPrior` evaluates it.
`exposure_prior` narrows the Moffat index's prior to what an exposure's
bright sources show (the point sources of one exposure share the PSF).

Pure Python and numpy: no stpipe, no datamodels, no file access.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .profiles.moffat import BETA_LIMITS, alpha_for_sigma

__all__ = ["EXPOSURE_MIN_SOURCES", "GAUSSIAN_INVERSE_BETA", "PSF_PRIOR_FIELDS", "PsfPrior", "disperser_keys",
           "exposure_prior", "psf_prior_for"]

PSF_PRIOR_FIELDS = ("sigma_0", "k", "beta", "width_sd", "inverse_beta_sd")
"""The values every merged entry of an ``optxpsf`` reference must provide."""

_MISSING = {"", "N/A", "NA", "NONE", "ANY"}

GAUSSIAN_INVERSE_BETA = 1.0 / BETA_LIMITS[1]
"""``1 / beta`` of a profile the data cannot tell from a Gaussian: the Moffat fits' upper index limit."""

EXPOSURE_MIN_SOURCES = 3
"""Bright sources an exposure needs before `exposure_prior` learns its Moffat index from them."""

_INVERSE_BETA_SCATTER_FLOOR = 0.05
"""Least source-to-source sd of ``1 / beta`` assumed in `exposure_prior`, however alike the bright sources: the
scatter of one point source's index over its wavelength bins (0.041 in the NIRSpec measurement), rounded up, for
the faint sources that are not like the bright ones (compact galaxies, blends). With 0.02, faint Moffat sources
in an exposure whose bright sources were all Gaussian were held to a Gaussian (scorecard seed 3141: -2.7 % to
-9.3 %)."""


@dataclass(frozen=True)
class PsfPrior:
    """The cross-dispersion PSF prior of one instrument and disperser.

    Attributes
    ----------
    sigma_0 : float
        Wavelength-independent width term (detector, sampling, optics), pixels.
    k : float
        Diffraction term, pixels per micron: ``sigma`` grows as ``k * lambda_um``
        where it dominates.
    beta : float
        Moffat wing index of the profile.
    width_sd : float
        Standard deviation of the fractional width, i.e. of ``ln sigma`` about
        ``ln sigma(lambda)`` (a log-normal prior).
    inverse_beta_sd : float
        Standard deviation of ``1 / beta`` about ``1 / beta``.
    gaussian_sigma_0, gaussian_k : float or None
        The same law for the sigma of a pixel-integrated *Gaussian* fitted to the
        profile (larger than the Moffat's FWHM-equivalent sigma: the Gaussian
        absorbs the wings); None where not measured (then `gaussian_sigma` is
        `sigma`).
    source : str
        Which reference entry this came from (e.g. ``"NIRSPEC G140M/F100LP"``).
    """

    sigma_0: float
    k: float
    beta: float
    width_sd: float
    inverse_beta_sd: float
    gaussian_sigma_0: float | None = None
    gaussian_k: float | None = None
    source: str = "default"
    sources: int = 0
    """Number of the exposure's own sources the Moffat index was learnt from (`exposure_prior`); 0 for the
    reference's prior alone."""

    def __post_init__(self) -> None:
        if not (np.isfinite(self.sigma_0) and self.sigma_0 >= 0 and np.isfinite(self.k) and self.k >= 0):
            raise ValueError(f"PSF prior {self.source}: sigma_0 and k must be finite and >= 0, "
                             f"got {self.sigma_0}, {self.k}")
        if self.sigma_0 == 0 and self.k == 0:
            raise ValueError(f"PSF prior {self.source}: sigma_0 and k are both zero")
        if not (np.isfinite(self.beta) and self.beta > 0.5):
            raise ValueError(f"PSF prior {self.source}: beta must be > 0.5, got {self.beta}")
        if not (self.width_sd > 0 and self.inverse_beta_sd > 0):
            raise ValueError(f"PSF prior {self.source}: the standard deviations must be > 0, "
                             f"got {self.width_sd}, {self.inverse_beta_sd}")

    def sigma(self, wavelength_um: np.ndarray) -> np.ndarray:
        """Gaussian-equivalent (FWHM-matched) sigma of the profile, pixels, at ``wavelength_um``.

        Parameters
        ----------
        wavelength_um : array_like
            Wavelengths in microns.

        Returns
        -------
        ndarray
            ``sqrt(sigma_0**2 + (k * wavelength_um)**2)``, the shape of ``wavelength_um``.
        """
        wavelength = np.asarray(wavelength_um, float)
        return np.sqrt(self.sigma_0**2 + (self.k * wavelength) ** 2)

    def gaussian_sigma(self, wavelength_um: np.ndarray) -> np.ndarray:
        """Sigma, pixels, of a pixel-integrated Gaussian fitted to the profile (the Gaussian profile kind's prior)."""
        if self.gaussian_sigma_0 is None or self.gaussian_k is None:
            return self.sigma(wavelength_um)
        wavelength = np.asarray(wavelength_um, float)
        return np.sqrt(self.gaussian_sigma_0**2 + (self.gaussian_k * wavelength) ** 2)

    def alpha(self, wavelength_um: np.ndarray) -> np.ndarray:
        """Moffat width ``alpha``, pixels, of the prior's FWHM at index `beta` (the Moffat kind's prior)."""
        return alpha_for_sigma(self.sigma(wavelength_um), self.beta)

    @property
    def inverse_beta(self) -> float:
        """The prior mean of ``1 / beta`` (its sd is `inverse_beta_sd`)."""
        return 1.0 / self.beta

    def residuals(self, sigma: np.ndarray, wavelength_um: np.ndarray,
                  inverse_beta: float | None = None) -> np.ndarray:
        """Normalised prior residuals, to append to a least-squares fit's residual vector.

        Parameters
        ----------
        sigma : array_like
            Fitted Gaussian-equivalent widths, pixels (> 0), at ``wavelength_um``.
        wavelength_um : array_like
            Their wavelengths, microns.
        inverse_beta : float, optional
            A fitted ``1 / beta``; its residual is appended when given.

        Returns
        -------
        ndarray
            ``ln(sigma / sigma(lambda)) / width_sd`` (flattened), then
            ``(inverse_beta - 1 / beta) / inverse_beta_sd``: their squares sum to
            minus twice the log prior, up to a constant.
        """
        width = np.ravel(np.log(np.asarray(sigma, float) / self.sigma(wavelength_um)) / self.width_sd)
        if inverse_beta is None:
            return width
        return np.append(width, (float(inverse_beta) - self.inverse_beta) / self.inverse_beta_sd)

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any], source: str = "default") -> PsfPrior:
        """A prior from one merged reference entry (a mapping holding `PSF_PRIOR_FIELDS`)."""
        missing = [name for name in PSF_PRIOR_FIELDS if entry.get(name) is None]
        if missing:
            raise ValueError(f"PSF prior {source}: the reference gives no {', '.join(missing)}")
        optional = {name: float(entry[name]) for name in ("gaussian_sigma_0", "gaussian_k")
                    if entry.get(name) is not None}
        return cls(**{name: float(entry[name]) for name in PSF_PRIOR_FIELDS}, **optional, source=source)


def exposure_prior(instrument: PsfPrior, inverse_betas: np.ndarray) -> PsfPrior:
    """The Moffat index's prior for the faint sources of an exposure, learnt from its bright ones.

    The bright sources' ``1 / beta`` (`GAUSSIAN_INVERSE_BETA` for one whose
    data prefer the Gaussian) are taken as draws from the exposure's
    population, normal with an unknown mean, held toward the instrument's
    ``1 / beta`` with its ``inverse_beta_sd``, and a scatter estimated from
    their spread (at least `_INVERSE_BETA_SCATTER_FLOOR`). A faint source is
    one more draw: the prior returned is the predictive distribution, of mean
    the population mean's posterior and of sd the scatter and that posterior's
    sd in quadrature. Point sources that share the telescope's PSF give a
    narrow prior about their index; an exposure of differing sources (doubles,
    resolved galaxies, Gaussian-like and winged ones) a wide one, which leaves
    a faint source to its own data.

    Parameters
    ----------
    instrument : PsfPrior
        The reference's prior for the exposure's instrument and disperser.
    inverse_betas : array_like
        ``1 / beta`` of each bright source, finite.

    Returns
    -------
    PsfPrior
        ``instrument`` with ``beta``, ``inverse_beta_sd``, ``sources`` and
        ``source`` replaced; ``instrument`` itself for fewer than
        `EXPOSURE_MIN_SOURCES` values.
    """
    values = np.asarray(inverse_betas, float)
    values = values[np.isfinite(values)]
    n = values.size
    if n < EXPOSURE_MIN_SOURCES:
        return instrument
    scatter = max(float(np.std(values, ddof=1)), _INVERSE_BETA_SCATTER_FLOOR)
    precision = 1.0 / instrument.inverse_beta_sd**2 + n / scatter**2
    mean = (instrument.inverse_beta / instrument.inverse_beta_sd**2 + values.sum() / scatter**2) / precision
    mean = float(np.clip(mean, GAUSSIAN_INVERSE_BETA, 1.0 / BETA_LIMITS[0]))
    return replace(instrument, beta=1.0 / mean, inverse_beta_sd=float(np.sqrt(scatter**2 + 1.0 / precision)),
                   sources=n, source=f"{n} bright sources of the exposure, over {instrument.source}")


def _normalised(value: str | None) -> str | None:
    """Upper-case, stripped; None for the pipeline's "no value" spellings."""
    if value is None:
        return None
    text = str(value).strip().upper()
    return None if text in _MISSING else text


def disperser_keys(grating: str | None, filter: str | None) -> list[str]:  # noqa: A002 -- the jwst keyword's name
    """The keys a disperser entry may have, most specific first: ``GRATING/FILTER``, ``GRATING``, ``FILTER``.

    MIRI LRS has no grating (its disperser is the ``P750L`` filter), so its key is the filter.
    """
    g, f = _normalised(grating), _normalised(filter)
    keys = [f"{g}/{f}"] if g and f else []
    return keys + [key for key in (g, f) if key]


def psf_prior_for(reference: Mapping[str, Any], instrument: str | None, grating: str | None,
                  filter: str | None) -> PsfPrior:  # noqa: A002 -- the jwst keyword's name
    """The prior of the most specific entry of an ``optxpsf`` reference for one exposure.

    The reference's ``default`` section, updated by the instrument's entry
    (``reference["instrument"][INSTRUMENT]``), updated by the first of that
    entry's ``disperser`` entries that matches `disperser_keys` (``G140M/F100LP``,
    then ``G140M``, then ``F100LP``). A more specific entry may hold only the
    values that differ. Names are matched case-insensitively.

    Parameters
    ----------
    reference : mapping
        The reference file's content (e.g. from ``load_reference``).
    instrument, grating, filter : str or None
        ``meta.instrument.name``, ``.grating`` and ``.filter`` of the exposure;
        None (or ``N/A``) where there is none.

    Returns
    -------
    PsfPrior
        With ``source`` naming the entry chosen.

    Raises
    ------
    ValueError
        When the merged entry lacks a value of `PSF_PRIOR_FIELDS` or holds an
        implausible one.
    """
    merged = dict(reference.get("default", {}))
    source = "default"
    name = _normalised(instrument)
    instruments = {str(key).upper(): value for key, value in reference.get("instrument", {}).items()}
    if name is not None and name in instruments:
        entry = dict(instruments[name])
        dispersers = {str(key).upper(): value for key, value in entry.pop("disperser", {}).items()}
        merged.update(entry)
        source = name
        for key in disperser_keys(grating, filter):
            if key in dispersers:
                merged.update(dispersers[key])
                source = f"{name} {key}"
                break
    return PsfPrior.from_entry(merged, source)
