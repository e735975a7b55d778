"""A spline profile shared by all exposures of a source, fitted to all of them at once (`optx_combine`'s ``spline``).

The single-slit spline (`~jwst_optextract.core.profiles.spline`) learns the
profile of a source that is neither a Gaussian nor a Moffat (a double-peaked
galaxy, a resolved disc) from the pixels themselves. Here one such spline,
``S(u, x)`` in the offset ``u`` from each exposure's trace, is fitted to the
pixels of every exposure at once: exposure ``e`` is modelled as
``f(x) [S(y - c_e(x)) - sum_o w_eo S(y - c_o(x))]``, the source less its
negative images in a nod difference with their known weights ``w_eo`` (the
shares of `~jwst_optextract.core.combine.NodDifference`), and with the
background removed as the combination removes it (nod differences or a smooth
model per exposure). As in the single-slit fit with a background, the spline
is free only within a support about the trace and ends there with zero value
and slope (in a nod difference a pedestal under the source cancels: the
support is what fixes the flux scale), a Moffat (where Akaike's criterion
preferred one to the Gaussian) in a fitted amount is the light beyond it,
each exposure's trace is shifted by a constant of its own and all of them by
a smooth correction along the dispersion, and outliers are judged against
the spline. For given amplitudes ``f(x)`` this is one sparse penalised
least-squares problem; amplitudes and shape alternate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, sparse

from .combine import ExposureStack, negative_images, source_model
from .joint import JointShape, joint_shape, refine_jointly
from .profiles.choice import SHAPES_MIN_SNR, akaike, beyond_noise, parsimonious
from .profiles.shape import normalised
from .psf_prior import PsfPrior
from .profiles.spline import (
    _BACKGROUND_ROWS,
    _DEGREE_U,
    _REJECT_PASSES,
    _SUPPORT_MARGIN,
    _SUPPORT_SIGMA,
    SplineProfile,
    _design,
    _penalty,
    _shift_basis,
    _solve_joint,
    _wing_taper,
    binned_coherent_chi2,
    column_knots,
    light_extent,
    support_knots,
)

__all__ = ["JointSpline", "fit_joint_spline", "joint_profile", "pooled_cost", "refit_joint_spline",
           "signal_independent_weights"]

log = logging.getLogger(__name__)

_PASSES, _WARM_PASSES = 5, 3
"""Alternations of amplitudes and shape from a parametric start, and from an earlier joint spline."""
_CHI_CAP = 5.0
"""Residuals are capped at this many sigma when profiles are compared (unflagged cosmic rays are no one's model)."""


@dataclass
class JointSpline:
    """The spline profile shared by all exposures of a source, about each exposure's trace.

    Attributes
    ----------
    spline : SplineProfile
        The shape within ``support`` of the trace (its ``wings`` unused).
    support : float
        Half-width in pixels of the spline's support.
    wings : JointShape or None
        The parametric shape (a Moffat) of the light beyond the support, or
        None for none.
    wing_scale : float
        The amount of ``wings``, fitted with the spline.
    n_extra : int
        Parameters fitted besides the spline's coefficients (wing amount, trace shifts).
    rival : JointShape or None
        The parametric profile the spline was preferred to (None when the
        spline was asked for): `refit_joint_spline` judges them again.
    """

    spline: SplineProfile
    support: float
    wings: JointShape | None = None
    wing_scale: float = 0.0
    n_extra: int = 0
    rival: JointShape | None = None
    kind = "spline"

    def values(self, ny: int, centers: np.ndarray) -> np.ndarray:
        """``(n_exposures, ny, nx)``: the spline and its wings about each trace, as fitted (not normalised)."""
        centers = np.asarray(centers, float)
        values = self.spline.values(ny, centers)
        if self.wings is not None and self.wing_scale != 0.0:
            offset = np.arange(ny, dtype=float)[:, None] - centers[..., None, :]
            values = values + self.wing_scale * _wing_taper(offset, self.support) * self.wings.profile(ny, centers)
        return values

    def profile(self, ny: int, centers: np.ndarray) -> np.ndarray:
        """``(n_exposures, ny, nx)`` normalised profiles about each exposure's trace."""
        return normalised(self.values(ny, centers))

    @property
    def n_parameters(self) -> float:
        """The spline's effective parameters (its penalty makes them fewer than its coefficients) and the rest."""
        return float(self.spline.effective_parameters) + self.n_extra

    def describe(self) -> str:
        wings = f", {self.wings.kind} wings x{self.wing_scale:.3f}" if self.wings is not None else ""
        return (f"spline of {self.spline.effective_parameters:.0f} effective parameters within "
                f"{self.support:.1f} px{wings}")


def joint_profile(work: ExposureStack, centers: np.ndarray, gaussian: JointShape, degree: int,
                  kinds: tuple[str, ...], reject_sigma: float | None = 5.0, psf_prior: PsfPrior | None = None
                  ) -> tuple[np.ndarray, JointShape | JointSpline]:
    """The traces and the profile shared by all exposures: the best of ``kinds`` (gaussian, moffat, spline).

    The parametric kinds are fitted and chosen first (`joint_shape`; with
    ``spline`` alone, both, as a start); the spline starts from the best of
    them, with its wings where that is a Moffat (whose index the instrument's
    ``psf_prior`` holds, `joint_shape`). With a parametric kind among
    ``kinds`` the spline is fitted only from a median S/N per column of
    `~jwst_optextract.core.profiles.choice.SHAPES_MIN_SNR` (a shape learnt
    from faint data is biased, as in `optx_psf`) and kept where Akaike's
    criterion prefers it, both profiles judged on the same pixels by
    `pooled_cost`. A spline that cannot be fitted leaves the parametric profile (with a warning).
    """
    parametric = tuple(k for k in kinds if k != "spline") or ("gaussian", "moffat")
    centers, best = joint_shape(work, centers, gaussian, degree, parametric, psf_prior=psf_prior)
    if "spline" not in kinds:
        return centers, best
    ny = work.data.shape[1]
    best_profile = best.profile(ny, centers)
    snr = _column_snr(work, best_profile)
    alone = kinds == ("spline",)
    if not alone and not snr >= SHAPES_MIN_SNR:
        log.info("Joint profile: no spline at a median S/N of %.1f per column (from %.0f)", snr, SHAPES_MIN_SNR)
        return centers, best
    if not alone:
        gain, n_bins = _coherent_gain(work, centers, best_profile, best.sigma)
        log.debug("Joint profile: coherent residuals of the %s, chi2 %.0f in %d bins", best.kind, gain, n_bins)
        if not beyond_noise(gain, n_bins):
            log.info("Joint profile: the %s leaves no coherent residuals (chi2 %.0f in %d bins); no spline",
                     best.kind, gain, n_bins)
            return centers, best
    candidates = {}
    # A Moffat that beat the Gaussian may owe it to wings, or to a second peak it took for wings (a double
    # source's spline then gave its Moffat wings 17 times their amount, +3 %): the spline with and without.
    for wings in ((best, None) if best.kind == "moffat" else (None,)):
        try:
            candidates["spline" if wings is None else "spline with wings"] = fit_joint_spline(
                work, centers, best, best.sigma, wings=wings, reject_sigma=reject_sigma)
        except ValueError as error:
            log.warning("The exposures give no joint spline profile (%s)", error)
    if not candidates:
        log.warning("Joint profile: keeping the %s", best.kind)
        return centers, best
    iv = signal_independent_weights(work)
    scores = {name: akaike(pooled_cost(work, spline.profile(ny, fitted), iv), spline.n_parameters)
              for name, (fitted, spline) in candidates.items()}
    sizes = {name: spline.n_parameters for name, (_, spline) in candidates.items()}
    if not alone:
        scores[best.kind] = akaike(pooled_cost(work, best_profile, iv), best.n_parameters)
        sizes[best.kind] = best.n_parameters
    chosen = parsimonious(list(scores), scores.get, sizes.get)
    log.info("Joint profile of all exposures at a median S/N of %.1f per column: Akaike %s", snr,
             ", ".join(f"{kind} {value:.1f}" for kind, value in scores.items()))
    if chosen == best.kind:
        return centers, best
    fitted, spline = candidates[chosen]
    if not alone:
        spline.rival = best
    log.info("Joint profile of all exposures: %s", spline.describe())
    return fitted, spline


def refit_joint_spline(work: ExposureStack, centers: np.ndarray, spline: JointSpline, degree: int,
                       reject_sigma: float | None = 5.0
                       ) -> tuple[np.ndarray, JointSpline | JointShape]:
    """``spline`` fitted again to ``work`` (without the outliers found since), its knots and support kept.

    The first choice was made before the cosmic rays were flagged, which a
    nod difference holds as negative spikes in the other exposures: broad
    wings, or a spline's freedom, can soak them up. So a spline with wings
    is fitted without them too, the parametric profile it beat (its
    ``rival``) is fitted again (`refine_jointly`, width of Legendre degree
    ``degree``), and Akaike's criterion chooses among them once more.
    """
    ny = work.data.shape[1]
    fits = {"spline": fit_joint_spline(work, centers, spline, wings=spline.wings, reject_sigma=reject_sigma)}
    if spline.wings is not None:
        fits["spline without wings"] = fit_joint_spline(work, centers, spline, wings=None, reject_sigma=reject_sigma)
    if spline.rival is not None:
        traces, rival, cost, _ = refine_jointly(work, centers, spline.rival, degree)
        if cost is not None:
            fits[rival.kind] = (traces, rival)
    if len(fits) == 1:
        return fits["spline"]
    iv = signal_independent_weights(work)
    scores = {name: akaike(pooled_cost(work, fitted.profile(ny, traces), iv), fitted.n_parameters)
              for name, (traces, fitted) in fits.items()}
    chosen = parsimonious(list(scores), scores.get, lambda name: fits[name][1].n_parameters)
    log.info("Joint profile fitted again without the outliers: Akaike %s; %s kept",
             ", ".join(f"{name} {value:.1f}" for name, value in scores.items()), chosen)
    traces, fitted = fits[chosen]
    if isinstance(fitted, JointSpline):
        fitted.rival = spline.rival
    return traces, fitted


def _coherent_gain(work: ExposureStack, centers: np.ndarray, profile: np.ndarray, sigma: np.ndarray,
                   cap: float = _CHI_CAP) -> tuple[float, int]:
    """What a spline could gain over ``profile``: the chi-square of the coherent residuals of its pooled fit.

    As `~jwst_optextract.core.profiles.spline.coherent_gain` of one slit: the
    residuals (capped at ``cap`` sigma) are binned by offset from each
    exposure's own trace (half-pixel bins, as the spline's knots, as far as
    light is seen) and by half of the slit, and each bin's best correction of
    the profile, ``f(x)`` times a constant, lowers the chi-square by
    ``(sum w f r)**2 / sum w f**2``. (The correction's negative images are
    left out: this only decides whether a spline is worth fitting.) Returns
    the sum over the bins and their number.
    """
    ny, nx = work.data.shape[1:]
    iv = signal_independent_weights(work)
    use = iv > 0
    data = np.where(use, work.data, 0.0)
    model = source_model(work, profile)
    flux = _column_flux(data, iv, model)
    extent = _light_extent(work, centers, profile, data, iv)
    support = max(_SUPPORT_SIGMA * float(np.max(sigma)), extent) + _SUPPORT_MARGIN
    u = np.arange(ny, dtype=float)[None, :, None] - centers[:, None, :]
    use &= np.abs(u) < support
    root = np.sqrt(iv)
    chi = np.clip((data - flux * model) * root, -cap, cap)
    fw = np.broadcast_to(flux, data.shape) * root
    block = np.minimum(np.arange(nx) * 2 // nx, 1)
    return binned_coherent_chi2(u, block, 2, chi, fw, use, support, step=0.5)


def _column_snr(work: ExposureStack, profile: np.ndarray) -> float:
    """Median over the columns of the S/N of the pooled flux of ``profile`` (negative images in the model)."""
    iv = signal_independent_weights(work)
    usable = iv > 0
    model = source_model(work, profile)
    information = np.sum(iv * model * model, axis=(0, 1))
    flux = _column_flux(np.where(usable, work.data, 0.0), iv, model)
    seen = information > 0
    return float(np.median(flux[seen] * np.sqrt(information[seen]))) if seen.any() else 0.0


def pooled_cost(work: ExposureStack, profile: np.ndarray, iv: np.ndarray, cap: float | None = _CHI_CAP) -> float:
    """Chi-square of all exposures about ``f(x) M`` (``M`` = the profile less its negative images), ``f`` fitted.

    Over every pixel of every exposure with a weight ``iv`` (the same for
    every profile compared, so profiles compare fairly); each pixel's term
    is capped at ``cap**2`` (None: not capped).
    """
    usable = iv > 0
    data = np.where(usable, work.data, 0.0)
    model = source_model(work, profile)
    flux = _column_flux(data, iv, model)
    chi2 = iv * (data - flux * model) ** 2
    if cap is not None:
        chi2 = np.minimum(chi2, cap * cap)
    return float(chi2[usable].sum())


def signal_independent_weights(work: ExposureStack, half_window: int = 7) -> np.ndarray:
    """The pixels' weights in the fits: inverse variances with the Poisson term averaged along the dispersion.

    Each pixel's Poisson variance is replaced by the mean over the good pixels
    of its row within ``half_window`` columns: inverse variances of the data
    themselves weigh the pixels that fell low up, and bias a fit low at low
    S/N. The same for every profile compared.
    """
    good = work.good & np.isfinite(work.data)
    size = (1, 1, 2 * half_window + 1)
    poisson = np.where(good, np.nan_to_num(work.variances["var_poisson"]), 0.0)
    count = ndimage.uniform_filter(good.astype(float), size, mode="nearest")
    smooth = np.divide(ndimage.uniform_filter(poisson, size, mode="nearest"), count, out=np.zeros_like(poisson),
                       where=count > 0)
    variance = np.nan_to_num(work.variances["var_rnoise"]) + np.nan_to_num(work.variances["var_flat"]) + smooth
    usable = good & (variance > 0)
    return np.where(usable, 1.0 / np.where(usable, variance, 1.0), 0.0)


def _column_flux(data: np.ndarray, iv: np.ndarray, model: np.ndarray) -> np.ndarray:
    """The weighted least-squares amplitude of ``model`` in every column, over all exposures and rows."""
    information = np.sum(iv * model * model, axis=(0, 1))
    return np.divide(np.sum(iv * model * data, axis=(0, 1)), information, out=np.zeros_like(information),
                     where=information > 0)


def fit_joint_spline(work: ExposureStack, centers: np.ndarray, start: JointShape | JointSpline,
                     sigma: np.ndarray | None = None,
                     wings: JointShape | None = None, reject_sigma: float | None = 5.0, smoothing: float = 30.0,
                     oversample: float = 2.0, support: float | None = None) -> tuple[np.ndarray, JointSpline]:
    """One spline profile fitted to all exposures with their negative nod images, and each exposure's trace.

    Parameters
    ----------
    work : ExposureStack
        The exposures, background removed (``work.nods`` when by nod differences).
    centers : ndarray
        ``(n_exp, nx)`` trace of every exposure.
    start : JointShape or JointSpline
        The profile whose amplitudes start the fit (the best parametric fit,
        or an earlier joint spline about ``centers``: fewer passes then).
    sigma : ndarray, optional
        ``(nx,)`` the joint Gaussian's width: the finely knotted core is
        three times it. Needed unless ``start`` is a `JointSpline`, whose
        knots and support are kept.
    wings : JointShape, optional
        The shape of the light beyond the support (the joint Moffat); None for none.
    reject_sigma : float or None
        Pixels further above the model than this are left out (cosmic rays).
    smoothing : float
        Weight of the spline's second-difference penalty, in chi-square units.
    oversample : float
        Knots per pixel in the core.
    support : float, optional
        The half-width of the spline's support; by default as far as light
        is seen about the traces (at least 2.5 ``sigma`` + 1.5 px), leaving
        `_BACKGROUND_ROWS` rows outside.

    Returns
    -------
    centers : ndarray
        ``(n_exp, nx)`` the traces, each shifted as fitted.
    JointSpline
        The profile about them.

    Raises
    ------
    ValueError
        When the pixels cannot constrain a spline (too few with signal).
    """
    ny = work.data.shape[1]
    centers = np.asarray(centers, float)
    profile = start.profile(ny, centers)
    iv = signal_independent_weights(work)
    data = np.where(iv > 0, work.data, 0.0)
    if isinstance(start, JointSpline):
        return _fit_passes(work, iv, centers, profile, start.spline.offset_knots, start.support, wings, reject_sigma,
                           smoothing, _WARM_PASSES)
    distance = np.abs(np.arange(ny, dtype=float)[None, :, None] - centers[:, None, :])
    keep = min(_BACKGROUND_ROWS, ny - 1)
    room = float(np.median(np.sort(distance, axis=1)[:, -keep])) - 0.5
    core = max(3.0 * float(np.max(sigma)), 2.0)
    base = _SUPPORT_SIGMA * float(np.max(sigma)) + _SUPPORT_MARGIN
    if support is not None:
        support = min(support, room)
        return _fit_passes(work, iv, centers, profile, support_knots(min(core, support), support, oversample), support,
                           wings, reject_sigma, smoothing, _PASSES)
    extent = _light_extent(work, centers, profile, data, iv)
    # Finely knotted wherever light is seen: about one peak of a double (where a narrow parametric fit sits), the
    # other lies beyond three of its sigma (coarse knots there left a double 2 % low).
    core = max(core, extent)
    support = min(max(base, extent + _SUPPORT_MARGIN), room)
    fitted, model = _fit_passes(work, iv, centers, profile, support_knots(min(core, support), support, oversample),
                                support, wings, reject_sigma, smoothing, _PASSES)
    # The start's negative images misplace a source it does not describe (a Gaussian on one peak of a
    # double): seen with the spline's own, the light may reach further.
    extent = _light_extent(work, fitted, model.profile(ny, fitted), data, iv)
    grown = min(extent + _SUPPORT_MARGIN, room)
    if grown > support + 0.5:
        core = max(core, extent)
        log.debug("joint spline: light seen to %.1f px about the traces, beyond its support of %.1f px", grown,
                  support)
        fitted, model = _fit_passes(work, iv, fitted, model.profile(ny, fitted),
                                    support_knots(min(core, grown), grown, oversample), grown, wings, reject_sigma,
                                    smoothing, _PASSES)
    return fitted, model


def _fit_passes(work: ExposureStack, iv: np.ndarray, centers: np.ndarray, profile: np.ndarray, knots_u: np.ndarray,
                support: float, wings: JointShape | None, reject_sigma: float | None, smoothing: float,
                iterations: int) -> tuple[np.ndarray, JointSpline]:
    """`fit_joint_spline`'s alternation of amplitudes and shape, from ``profile``, with the knots ``knots_u``."""
    n_exp, ny, nx = work.data.shape
    usable = iv > 0
    data = np.where(usable, work.data, 0.0)
    knots_x = column_knots(nx, float(nx), 1)  # one shape blended linearly along the slit
    n_u, n_x = len(knots_u) - _DEGREE_U - 1, len(knots_x) - 2
    penalty = smoothing * _penalty(n_u, n_x)
    pixels = np.nonzero(usable)
    weights_all = iv[pixels]
    target = data[pixels]
    rejected = np.zeros(target.size, bool)
    two_sided = work.nods is not None  # the other exposures' cosmic rays are negative spikes in a nod difference
    model = None
    shifts_basis = _shift_basis(nx)
    n_shift = (n_exp - 1) + shifts_basis.shape[1]
    for iteration in range(iterations):
        use = iv.copy()
        use[pixels] = np.where(rejected, 0.0, weights_all)
        flux = _column_flux(data, use, source_model(work, profile))
        if (use > 0).sum() < 2 * len(knots_u) or not flux.any():
            raise ValueError("too few pixels with signal to fit a spline profile")
        last = iteration == iterations - 1
        extra = []
        if wings is not None:
            offset = np.arange(ny, dtype=float)[:, None] - centers[:, None, :]
            extra.append(source_model(work, flux * _wing_taper(offset, support) * wings.profile(ny, centers)))
        if model is not None and not last:
            extra.extend(_shift_images(work, model, flux, centers, shifts_basis))
        design = _joint_spline_design(work, pixels, centers, flux, knots_u, knots_x, extra)
        weights = np.where(rejected, 0.0, weights_all)
        for _ in range(_REJECT_PASSES):
            solution, chi2, effective = _solve_joint(design, target, weights, penalty, n_u, n_x, last)
            excess = (target - design @ solution) * np.sqrt(weights)
            if two_sided:
                excess = np.abs(excess)
            outliers = (weights > 0) & (excess > (reject_sigma or np.inf))
            if not outliers.any():
                break
            weights = np.where(outliers, 0.0, weights)
        rejected = weights == 0
        n_spline = n_u * n_x
        coefficients = solution[:n_spline].reshape(n_u, n_x)
        amounts = solution[n_spline:]
        scale = 0.0
        if wings is not None:
            scale, amounts = float(amounts[0]), amounts[1:]
        if amounts.size:
            own = np.r_[0.0, amounts[:n_exp - 1]]
            centers = centers + own[:, None] + (shifts_basis @ amounts[n_exp - 1:])[None, :]
        spline = SplineProfile(knots_u, knots_x, 1, coefficients, chi2, effective, support=support)
        model = JointSpline(spline, support, wings, scale, n_extra=int(wings is not None) + n_shift)
        profile = model.profile(ny, centers)
        log.debug("joint spline pass %d: support %.2f px, chi2 %.3f per pixel, wing scale %.3f, shifts %s",
                  iteration, support, chi2, scale, np.round(centers[:, 0] - centers[0, 0], 3))
    return centers, model


def _light_extent(work: ExposureStack, centers: np.ndarray, profile: np.ndarray, data: np.ndarray,
                  iv: np.ndarray) -> float:
    """How far from the traces light is seen (`light_extent`, its farther side), the median over the exposures.

    In a nod difference the source's negative images lie a throw away, within
    its wings: those of ``profile`` are added back first, so that the source
    is seen alone.
    """
    alone = data
    if work.nods is not None:
        flux = _column_flux(data, iv, source_model(work, profile))
        alone = data + flux * negative_images(work.nods, profile)
    variance = np.where(iv > 0, 1.0 / np.where(iv > 0, iv, 1.0), 0.0)
    return float(np.median([max(light_extent(alone[e], iv[e] > 0, variance[e], centers[e]))
                            for e in range(data.shape[0])]))


def _joint_spline_design(work: ExposureStack, pixels: tuple, centers: np.ndarray, flux: np.ndarray,
                         knots_u: np.ndarray, knots_x: np.ndarray, extra: list[np.ndarray]) -> sparse.csr_array:
    """The unweighted design on ``pixels`` (indices into ``(n_exp, ny, nx)``): the spline's coefficients, then
    one column per ``(n_exp, ny, nx)`` image of ``extra``.

    A pixel of exposure ``e`` holds the spline about its own trace and, where
    nods were differenced, minus ``w_eo`` times the spline about the trace of
    every other-nod exposure ``o`` (`~jwst_optextract.core.combine.negative_images`).
    """
    e_idx, y_idx, x_idx = pixels
    n_exp = centers.shape[0]
    n_x = len(knots_x) - 2
    n_spline = (len(knots_u) - _DEGREE_U - 1) * n_x
    lo, hi = knots_u[_DEGREE_U], knots_u[-_DEGREE_U - 1]
    rows, cols, vals = [], [], []
    for o in range(n_exp):
        coefficient = (e_idx == o).astype(float)
        if work.nods is not None:
            nods = work.nods
            coefficient -= (nods.other[e_idx, o] * nods.share[e_idx, y_idx, x_idx]
                            * nods.source_good[o, y_idx, x_idx])
        u = y_idx - centers[o, x_idx]
        at = np.nonzero((coefficient != 0) & (u > lo) & (u < hi))[0]
        if not at.size:
            continue
        vu, iu = _design(u[at], knots_u, _DEGREE_U)
        vx, ix = _design(x_idx[at].astype(float), knots_x, 1)
        cols.append((iu[:, :, None] * n_x + ix[:, None, :]).reshape(at.size, -1))
        amplitude = coefficient[at] * flux[x_idx[at]]
        vals.append((vu[:, :, None] * vx[:, None, :]).reshape(at.size, -1) * amplitude[:, None])
        rows.append(np.broadcast_to(at[:, None], cols[-1].shape))
    spline = sparse.coo_array((np.concatenate(vals).ravel(), (np.concatenate(rows).ravel(),
                                                              np.concatenate(cols).ravel())),
                              shape=(e_idx.size, n_spline)).tocsr()
    if not extra:
        return spline
    images = np.stack([image[pixels] for image in extra], axis=1)
    return sparse.hstack([spline, sparse.csr_array(images)], format="csr")


def _shift_images(work: ExposureStack, model: JointSpline, flux: np.ndarray, centers: np.ndarray,
                  basis: np.ndarray, step: float = 0.05) -> list[np.ndarray]:
    """The change of the data model per unit shift of each exposure's trace but the first (a constant each), then
    per unit of each Legendre term of `_shift_basis` of all traces together; negative images included.

    A shift of all traces by a constant or a slope is the spline's own
    shape (its offset knots, and its linear blend along the columns): it is
    the first exposure's trace that anchors the spline.
    """
    ny = work.data.shape[1]
    slope = flux * (model.values(ny, centers + step) - model.values(ny, centers - step)) / (2 * step)
    images = []
    for e in range(1, centers.shape[0]):
        alone = np.zeros_like(slope)
        alone[e] = slope[e]
        images.append(source_model(work, alone))
    images.extend(source_model(work, slope * term[None, None, :]) for term in basis.T)
    return images
