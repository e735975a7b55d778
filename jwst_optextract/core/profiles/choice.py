"""The choice among profile kinds: what the data can support, and Akaike's criterion among the candidates.

``auto`` (`optx_psf`, `optx_combine`) fits several kinds and keeps the one
with the lowest `akaike` value, or the simplest within `AKAIKE_MARGIN` of it
(`parsimonious`); a faint spectrum is offered only the simpler shapes
(`supported_shapes`), since a shape learnt from noise is biased.
Where the Moffat index's prior was learnt from the exposure's own bright
sources, the choice also weighs it (`wing_prior_cost`).
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Any

import numpy as np

from ..pixels import Variances

__all__ = ["AKAIKE_MARGIN", "COHERENT_SIGMAS", "COMPANION_MIN_SNR", "EXPOSURE_MIN_SNR", "MOFFAT_GATE_SNR",
           "MOFFAT_MIN_SNR", "SHAPES_MIN_SNR", "WINDOWS_MIN_SNR", "akaike", "beyond_noise", "chi2_per_pixel",
           "companion_snr", "median_column_snr", "parsimonious", "supported_shapes", "wing_prior_cost"]

SHAPES_MIN_SNR = 3.0
"""Median S/N per column from which ``auto`` considers a spline whose shape varies across the slit."""
MOFFAT_MIN_SNR = 1.0
"""Median S/N per column from which ``auto`` considers the Moffat: one number more than the Gaussian, learnt from
every column's wings at once, where a faint winged source's wings are otherwise lost (the Gaussian was 3-9 % low
on Moffat sources at a median S/N of 1-3 per column; Akaike's criterion keeps the Gaussian where they are none)."""
MOFFAT_GATE_SNR = 10.0
"""Median S/N per column from which ``auto`` fits the Moffat only where the Gaussian leaves coherent residuals
(`beyond_noise`, the spline's test): there a winged profile's core alone leaves them, and a Moffat that cannot beat
the Gaussian costs a third of the profile stage of a bright exposure. Below it the test cannot see faint wings,
and the Moffat is always fitted."""
WINDOWS_MIN_SNR = 10.0
"""Median S/N per column from which ``auto`` considers splines with knots every ``window`` columns."""
EXPOSURE_MIN_SNR = 10.0
"""Median S/N per column from which a slit's own fit tells its exposure the Moffat index (``optx_psf`` learns the
exposure's prior from those slits first, then fits the fainter ones with it; see `wing_prior_cost`)."""


COHERENT_SIGMAS = 3.0
"""How far above its expectation (in its standard deviations) a coherent residual chi-square must be before a spline
is fitted to what the best profile so far leaves (`beyond_noise`)."""


def beyond_noise(chi2: float, n_bins: int, sigmas: float = COHERENT_SIGMAS) -> bool:
    """Whether ``chi2`` of residuals in ``n_bins`` bins holds more than noise: above ``n + sigmas sqrt(2 n)``.

    A shape learnt from bins that hold only noise gains about ``n_bins`` in
    chi-square for about as many parameters, which Akaike's criterion (``2``
    per parameter) rejects: such a spline is not worth fitting.
    """
    return chi2 > n_bins + sigmas * np.sqrt(2.0 * n_bins)


def akaike(chi2: float, n_parameters: float) -> float:
    """Akaike's criterion, ``chi2 + 2 n_parameters``: the lower, the better the data support the model."""
    return chi2 + 2 * n_parameters


AKAIKE_MARGIN = 2.0
"""Candidates whose criterion is within this of the lowest are as well supported: the simplest of them is chosen."""


def parsimonious(candidates: list, criterion: Callable[[Any], float],
                 n_parameters: Callable[[Any], float] = attrgetter("n_parameters")) -> Any:
    """The candidate of fewest parameters among those whose ``criterion`` is within `AKAIKE_MARGIN` of the lowest.

    ``n_parameters`` of a candidate is its attribute of that name unless given.

    With several alternatives to the Gaussian, one of them beats it by a
    point or two of Akaike's criterion by chance (at a median S/N of 3.5 per
    column a pair with 4 % of the flux 6.6 rows from the source won by one
    point, and took 5 % too much flux): a difference of less than two is no
    evidence either way (Burnham & Anderson 2002), and the simpler model
    is kept.
    """
    scores = [criterion(c) for c in candidates]
    best = min(scores)
    supported = [c for c, score in zip(candidates, scores) if score <= best + AKAIKE_MARGIN]
    return min(supported, key=lambda c: (n_parameters(c), criterion(c)))


def wing_prior_cost(inverse_beta: float | None, prior, held: bool = False) -> float:
    """Minus twice the log prior of a profile's wings, for Akaike's criterion.

    ``inverse_beta`` is the profile's Moffat ``1 / beta``
    (`~jwst_optextract.core.psf_prior.GAUSSIAN_INVERSE_BETA` for a Gaussian
    or for a shape without wings, None for one whose wings no index
    describes). ``prior`` is a `~jwst_optextract.core.psf_prior.PsfPrior`
    or None. A prior learnt from the exposure's bright sources
    (``prior.sources > 0``) weighs every profile: it says what this
    exposure's sources look like, so a faint source whose chi-square cannot
    tell a Gaussian from the exposure's Moffat takes the Moffat. The
    reference's prior is for point sources alone and does not weigh the
    others; it weighs a profile whose index it ``held`` (a Moffat fitted with
    it, or a spline with that Moffat's wings), as that fit minimised its term
    too: where the data pull the index far from it, the fit is a compromise
    whose wings neither the data nor the prior chose (a Gaussian source's
    Moffat held at beta 7.9 against the prior's 2.2 tied the Gaussian on the
    data and took 3.3 % too much flux).
    """
    if prior is None or inverse_beta is None:
        return 0.0
    if getattr(prior, "sources", 0) == 0 and not held:
        return 0.0
    return float(((inverse_beta - prior.inverse_beta) / prior.inverse_beta_sd) ** 2)


COMPANION_MIN_SNR = 5.0
"""Total S/N at which the fainter source of `optx_psf`'s pair must be seen by itself (`companion_snr`) for the
pair to be a candidate, as a source must be for its trace (``detection_snr``). Not `optx_combine`'s joint pair:
it considers the Moffat only from `SHAPES_MIN_SNR`, and below that a pair is the one shape with wings (a faint
Moffat nod set, S/N 1.1 per column: +1.2 % with the pair, -3.3 % without)."""


def companion_snr(flux: np.ndarray, variance: np.ndarray, share: np.ndarray) -> float:
    """Total signal to noise of a pair's fainter source: its share of every column's flux, summed, over the noise
    of a source's flux summed over the columns (the columns' ``variance``, which understates the fainter one's
    where the two blend).

    Akaike's criterion counts a pair's five numbers more than the Gaussian's, but the separation of a companion
    that is not there is no number the data hold: searched for over the slit it finds the best noise or
    background residual to fit, and beats the Gaussian more often than the criterion allows (a Gaussian source
    at a median S/N of 2.9 per column in 40 rows took a "companion" of 2-8 % of its flux 6 px away, S/N 3 by
    itself, and came out 10 % high). ``flux``, ``variance`` and ``share`` (the second source's) are per column.
    """
    flux, variance, minor = np.broadcast_arrays(np.asarray(flux, float), np.asarray(variance, float),
                                                np.minimum(share, 1.0 - share))
    use = np.isfinite(flux) & np.isfinite(variance) & (variance > 0)
    noise = np.sqrt(np.sum(variance[use]))
    return float(np.sum((flux * minor)[use]) / noise) if noise > 0 else 0.0


def median_column_snr(result, min_coverage: float = 0.3) -> float:
    """Median over the columns of the signal to noise of an extraction ``result`` (`amplitudes`).

    Columns whose good pixels hold less than ``min_coverage`` of the profile are left out.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = np.where(result.coverage >= min_coverage, result.flux / np.sqrt(result.var_total), np.nan)
        return float(np.nanmedian(snr))


def supported_shapes(snr: float, nx: int, window: float) -> tuple[bool, list[float]]:
    """Whether ``auto`` may consider the Moffat and the pair, and which spline windows, given the median S/N per
    column.

    A spline fitted to pixels whose amplitudes come from the same noisy data is
    biased when those amplitudes are poor (errors in variables: +1 % at S/N 5
    per column with 128-column windows, -14 % at S/N 0.5). So: windows of
    ``window`` columns from S/N 10 per column, one shape varying linearly
    across the slit of ``nx`` columns from S/N 3 (PypeIt falls back to a
    parametric profile below S/N 4), and the Moffat, one number more than
    the Gaussian, and the pair of blended sources from S/N 1.
    """
    windows = [float(nx)] if snr >= SHAPES_MIN_SNR else []
    if snr >= WINDOWS_MIN_SNR and window < nx:
        windows.append(window)
    return snr >= MOFFAT_MIN_SNR, windows


def chi2_per_pixel(mean, P: np.ndarray, result) -> tuple[float, int]:
    """Chi-square per pixel of ``mean`` about ``f P`` (plus the fitted background), each term capped at 25.

    Over every good pixel of ``mean`` and with the same weights (the pixel
    variances) whatever the profile, so that profiles compare fairly: a
    Gaussian that is exactly zero far from the trace is judged on those pixels
    too. ``mean`` is anything with ``image``, ``good``, ``var_rnoise`` and
    ``var_poisson``; ``result`` is its fit with ``P`` (`amplitudes`, every column kept). Returns the
    chi-square per pixel and the number of pixels.
    """
    sky = getattr(result, "background", 0.0)
    variance = Variances(mean.var_rnoise, mean.var_poisson).total()
    use = mean.good & (variance > 0) & np.isfinite(result.flux)[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        resid2 = (mean.image - np.nan_to_num(result.flux) * P - sky) ** 2 / variance
    count = int(use.sum())
    # capped at 5 sigma: unflagged cosmic rays far from the trace are no one's model
    return float(np.minimum(resid2[use], 25.0).sum() / max(count, 1)), count
