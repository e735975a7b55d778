"""Optimal (Horne 1986) extraction with signal-independent weights.

For every column the flux is the weighted least-squares amplitude of a profile
``P`` normalised to ``sum(P) = 1`` over the slit,

    f = sum(P D / V) / sum(P**2 / V),        var(f) = 1 / sum(P**2 / V),

with the sums over good pixels only, so a masked pixel changes the noise but
not the expectation of ``f``.

The weights ``V`` must not depend on the noise of the pixel they weight, or
faint fluxes come out biased low (a pixel that fluctuates down gets a smaller
data-derived Poisson variance and so more weight). ``V`` is therefore the read
noise and flat variance plus a smooth *model* of the Poisson variance (see
`poisson_terms`).

Cosmic rays and hot pixels that no DQ flag marks are rejected iteratively:
the pixel furthest above the model ``f P`` in each column is dropped while it
is more than ``reject_sigma`` standard deviations above it, and only the
columns that changed are solved again.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from .pixels import VarianceComponents
from .robust import nanmedian

__all__ = ["OptimalResult", "optimal_extract", "sharp_along_dispersion"]

log = logging.getLogger(__name__)


@dataclass
class OptimalResult(VarianceComponents):
    """Optimally extracted spectrum.

    Arrays of per-column quantities have the data's shape without the row axis
    ``(..., nx)``; ``rejected`` has the data's shape.
    """

    flux: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray
    var_flat: np.ndarray
    npixels: np.ndarray
    """Effective number of pixels, ``sum_good(P) / sum(P**2)`` (jwst's definition)."""
    coverage: np.ndarray
    """Fraction of the profile on good pixels."""
    n_rejected: np.ndarray
    rejected: np.ndarray
    """True for pixels rejected as outliers by the extraction itself."""
    valid: np.ndarray
    """False for columns that could not be extracted (their flux is NaN)."""
    inverse_variance: np.ndarray | None = None
    """Final weights ``1/V`` of every pixel (0 where not used), if asked for."""


def optimal_extract(
    data: np.ndarray,
    profile: np.ndarray,
    var_rnoise: np.ndarray,
    var_poisson: np.ndarray | None = None,
    var_flat: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    reject_sigma: float | None = 5.0,
    max_reject_iterations: int = 10,
    min_coverage: float = 0.3,
    chunk_pixels: int = 1 << 19,
    return_inverse_variance: bool = False,
) -> OptimalResult:
    """Extract a spectrum by profile-weighted least squares, column by column.

    Parameters
    ----------
    data : ndarray
        Shape ``(..., ny, nx)``: rows cross-dispersion, dispersion along the
        last axis, any leading axes (integrations) extracted independently.
    profile : ndarray
        Cross-dispersion profile, broadcastable to ``data``; it is normalised
        here to sum to one over the rows of every column. It may be negative
        where a fitted profile's wings scatter about zero; pixels where it is
        exactly zero are not used.
    var_rnoise : ndarray
        Read-noise variance, broadcastable to ``data``; used in the weights.
    var_poisson : ndarray, optional
        The pipeline's (data-derived) Poisson variance. Only its per-column
        fit ``a + b P`` enters the weights and the reported Poisson variance.
    var_flat : ndarray, optional
        Flat-field variance; used in the weights and propagated.
    mask : ndarray of bool, optional
        True for good pixels, broadcastable to ``data``. Non-finite data or
        variances, and pixels with no positive variance, are always bad.
    reject_sigma : float or None
        Threshold for rejecting the worst pixel of a column, in standard
        deviations *above* the model (cosmic rays and hot pixels are
        positive); None disables outlier rejection.
    max_reject_iterations : int
        At most this many pixels are rejected per column.
    min_coverage : float
        Columns whose good pixels hold less than this fraction of the profile
        are not extracted (NaN flux, ``valid`` False).
    chunk_pixels : int
        Leading-axis chunks of about this many pixels are solved at a time, to
        keep the working arrays in cache and the memory bounded.
    return_inverse_variance : bool
        Also return the final pixel weights ``1/V`` (a data-sized array).

    Returns
    -------
    OptimalResult
        Float32 input is computed in float32, anything else in float64.
    """
    data = np.asarray(data)
    shape = data.shape
    if data.ndim < 2:
        raise ValueError(f"data must have at least 2 dimensions (rows, columns); got shape {shape}")
    dtype = np.float32 if data.dtype == np.float32 else np.float64
    lead = shape[:-2]
    out_shape = lead + shape[-1:]
    result = OptimalResult(
        flux=np.empty(out_shape, dtype),
        var_poisson=np.empty(out_shape, dtype),
        var_rnoise=np.empty(out_shape, dtype),
        var_flat=np.empty(out_shape, dtype),
        npixels=np.empty(out_shape, dtype),
        coverage=np.empty(out_shape, dtype),
        n_rejected=np.zeros(out_shape, np.int32),
        rejected=np.zeros(shape, bool),
        valid=np.empty(out_shape, bool),
        inverse_variance=np.zeros(shape, dtype) if return_inverse_variance else None,
    )
    # Integrations flattened to one leading axis; the chunks are slices of it.
    n_lead = math.prod(lead)
    P = _normalise(np.asarray(profile, dtype=dtype))
    inputs = [data.reshape((n_lead,) + shape[-2:])]
    inputs += [_frames(a, shape, n_lead) for a in (P, var_rnoise, var_poisson, var_flat, mask)]
    outputs = {name: value.reshape((n_lead,) + value.shape[len(lead):])
               for name, value in vars(result).items() if value is not None}
    per_chunk = max(1, chunk_pixels // math.prod(shape[-2:]))
    for start in range(0, n_lead, per_chunk):
        part = slice(start, start + per_chunk)
        arrays = [None if a is None else np.asarray(a if a.ndim == 2 else a[part], dt)
                  for a, dt in zip(inputs, (dtype,) * 5 + (bool,))]
        _extract_chunk(*arrays, {name: value[part] for name, value in outputs.items()},
                       reject_sigma=reject_sigma, max_iterations=max_reject_iterations, min_coverage=min_coverage)
        _report_progress(start + per_chunk, n_lead, per_chunk)
    return result


def _report_progress(done: int, total: int, per_chunk: int) -> None:
    """Log each quarter of a long (many-chunk) extraction, so long runs show progress."""
    chunks = -(-total // per_chunk)
    if chunks < 8:
        return
    quarter = -(-chunks // 4) * per_chunk
    if done % quarter < per_chunk or done >= total:
        log.info("optimal extraction: %d of %d integrations done", min(done, total), total)


def _frames(a, shape, n_lead):
    """``a`` as one ``(ny, nx)`` frame for every integration, or as ``(n_lead, ny, nx)``; None stays None."""
    if a is None:
        return None
    a = np.asarray(a)
    if a.ndim <= 2:
        return np.broadcast_to(a, shape[-2:])
    return np.broadcast_to(a, shape).reshape((n_lead,) + shape[-2:])


def _extract_chunk(data, P, vr, vp, vf, mask, out, reject_sigma, max_iterations, min_coverage):
    """Extract ``(n, ny, nx)`` integrations into ``out``, views of the result's arrays.

    ``P``, the variances and ``mask`` are either ``(n, ny, nx)`` or one
    ``(ny, nx)`` frame for all integrations.
    """
    good = np.broadcast_to(P != 0, data.shape).copy()  # C order (np.array would keep the broadcast axis last)
    if mask is not None:
        good &= mask
    # Bad where not finite, or negative for a variance; non-finite values are
    # zeroed so that none reaches a sum (0 * inf is NaN); finite values of bad
    # pixels stay: they get zero weight.
    D, vr, vp, vf = (None if a is None else _screen(a, good, non_negative=non_negative)
                     for a, non_negative in ((data, False), (vr, True), (vp, False), (vf, True)))
    bad = None if good.all() else ~good
    P_pos = np.maximum(P, 0)
    terms = None if vp is None else poisson_terms(D, P, P_pos, vr, vp, vf, good, bad)
    sol, bad = solve_columns(D, P, vr, vf, _model_variance(D.shape, vr, vf, terms, P_pos), bad)
    if bad is not None:
        np.logical_not(bad, out=good)
    coverage = _wsum(good, P)
    if reject_sigma is not None and reject_sigma > 0:
        _reject_outliers(D, P, vr, vf, terms, good, sol, coverage, out, reject_sigma, max_iterations)
    valid = (coverage >= min_coverage) & (sol["inv_var"] > 0) & np.isfinite(sol["flux"])
    nan = np.where(valid, 1, np.nan).astype(D.dtype)
    if "inverse_variance" in out:
        final = None if terms is None else (terms[0], terms[1], sol["flux"])
        V = _model_variance(D.shape, vr, vf, final, P_pos, out=out["inverse_variance"])
        _inverse(V, ~good)
    sum_p2 = _wsum(P, P)
    out["flux"][...] = sol["flux"] * nan
    out["var_poisson"][...] = np.clip(sol["var_total"] - sol["var_rnoise"] - sol["var_flat"], 0, None) * nan
    out["var_rnoise"][...] = sol["var_rnoise"] * nan
    out["var_flat"][...] = sol["var_flat"] * nan
    out["npixels"][...] = np.divide(coverage, sum_p2, out=np.zeros_like(coverage), where=sum_p2 > 0)
    out["coverage"][...] = coverage
    out["valid"][...] = valid


def _screen(a, good, non_negative):
    """Mark in ``good`` the pixels where ``a`` is not finite (or is negative); ``a`` with them zeroed."""
    if non_negative:  # one comparison catches NaN and negatives; +inf, rare, costs a second look
        usable = a >= 0
        if not a.max(initial=0) < np.inf:
            usable &= a < np.inf
    else:
        usable = np.isfinite(a)
    good &= usable
    if usable.all() or not non_negative:
        return a if usable.all() else np.where(usable, a, 0)
    return np.where(np.isfinite(a), a, 0)


def _normalise(profile: np.ndarray) -> np.ndarray:
    # Signed: a fitted profile's wings scatter about zero where the data are
    # noise; clipping them at zero would rectify that noise into a positive
    # floor and bias the flux.
    profile = np.where(np.isfinite(profile), profile, 0)
    total = profile.sum(axis=-2, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, profile / total, 0).astype(profile.dtype)


def _wsum(*arrays, dtype=None):
    """Sum over the row axis (``-2``) of the product of ``arrays``, without a full-size temporary.

    ``dtype`` is that of the products and the sum (default: the arrays' own).
    """
    return np.einsum(",".join(["...yx"] * len(arrays)) + "->...x", *arrays, dtype=dtype)


def _model_variance(shape, vr, vf, poisson, P_pos, out=None):
    """The variance in the weights of every pixel, of ``shape`` (in ``out`` if given).

    ``vr + vf`` plus, if ``poisson = (a, q, flux)`` is given, the modelled
    Poisson variance ``a + max(q f, 0) max(P, 0)`` (``P_pos`` is ``max(P, 0)``).
    """
    if poisson is None:
        V = np.empty(shape, vr.dtype) if out is None else out
        V[...] = vr
    else:
        a, q, flux = poisson
        V = np.multiply(P_pos, _source(q, flux)[..., None, :], out=out)
        V += a[..., None, :]
        V += vr
    if vf is not None:
        V += vf
    return V


def _source(q, flux):
    """The source's Poisson variance per unit profile, ``max(q f, 0)`` (zero where undefined)."""
    return np.clip(np.nan_to_num(q * flux), 0, None)


def _inverse(V, bad):
    """``1/V``, computed in place, zero on bad pixels.

    Pixels whose ``V`` is not positive and finite become bad. Returns the
    inverse and the bad-pixel mask (None if there is no bad pixel). ``V`` is a
    sum of screened, finite, non-negative terms, so one reduction (its
    minimum) tells whether any pixel needs a look.
    """
    if not V.min() > 0:
        unusable = ~((V > 0) & (V < np.inf))
        bad = unusable if bad is None else bad | unusable
    if bad is not None:
        np.copyto(V, np.inf, where=bad)
    return np.divide(1, V, out=V), bad


def solve_columns(D, P, vr, vf, V, bad):
    """Weighted amplitude and propagated variances of every column.

    Arrays are ``(..., ny, nx)`` or broadcast to it. ``D`` must be finite;
    ``V`` is the variance in the weights (overwritten by its inverse); pixels
    where ``bad`` is True, or ``V`` is not positive, get zero weight. Returns
    the solution and the bad-pixel mask (None if there is no bad pixel).
    """
    iv, bad = _inverse(V, bad)
    pv = P * iv
    # The two sums that make the flux are accumulated in float64 (the terms stay
    # float32 for float32 data): float32 sums over hundreds of rows lose ~1e-6.
    inv_var = _wsum(pv, P, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        var_total = np.where(inv_var > 0, 1 / inv_var, np.nan)
    flux = (_wsum(pv, D, dtype=np.float64) * np.nan_to_num(var_total)).astype(P.dtype)
    var_total = var_total.astype(P.dtype)
    # Normalised weights: free of the scale of V, so no overflow or underflow.
    w = np.multiply(pv, np.nan_to_num(var_total)[..., None, :], out=pv)
    return {
        "flux": flux,
        "inv_var": inv_var.astype(P.dtype),
        "var_total": var_total,
        "var_rnoise": _wsum(w, w, vr),
        "var_flat": _wsum(w, w, vf) if vf is not None else np.zeros_like(flux),
        "iv": iv,
    }, bad


def poisson_terms(D, P, P_pos, vr, vp, vf, good, bad, window: int = 31):  # window odd
    """Smooth model of the Poisson variance: background term ``a`` and ``q`` per column.

    The pipeline's ``VAR_POISSON`` is ``q S + a`` for a source signal ``S``,
    with ``q`` (variance per unit signal: gain, flat, photometric conversion)
    and the background term ``a`` smooth along the dispersion. Per column,
    ``vp ~ a + b P`` is fitted by least squares; ``q = b / f`` (with ``f`` a
    first flux estimate) and ``a`` are then medians over blocks of ``window``
    columns, robust to cosmic rays. The Poisson variance of a pixel is modelled
    as ``a + q max(f, 0) P`` (`_model_variance`), so that its weight depends on
    its own noise only through averages over hundreds of pixels. Data-derived
    variances instead bias faint fluxes low (tens of percent when photon
    limited); a per-column fit alone still leaves several tenths of a percent.

    Arrays are ``(..., ny, nx)`` or broadcast to it; ``D`` and ``vp`` must be
    finite, ``bad`` is ``~good`` or None if all pixels are good, ``P_pos`` is
    ``max(P, 0)``.

    Returns
    -------
    a, q, flux : ndarray
        Per-column arrays ``(..., nx)``; ``flux`` is the first flux estimate.
    """
    g = good.astype(P.dtype)
    gp = g * P
    n = g.sum(axis=-2)
    sp = gp.sum(axis=-2)
    spp = _wsum(gp, P)
    sv = _wsum(vp, g)
    spv = _wsum(vp, gp)
    with np.errstate(invalid="ignore", divide="ignore"):
        det = n * spp - sp * sp
        b = np.clip(np.where(det > 0, (n * spv - sp * sv) / det, 0), 0, None)
        a = np.clip(np.where(n > 0, (sv - b * sp) / n, 0), 0, None)
    # First flux estimate, weighted as the final one will be (an unweighted sum
    # would let each pixel's noise into its own weight and bias faint fluxes high).
    # With q = 1, f = b the model is a + max(b, 0) max(P, 0) = a + max(b P, 0).
    pv = _inverse(_model_variance(D.shape, vr, vf, (a, 1, b), P_pos), bad)[0]
    pv *= P
    with np.errstate(invalid="ignore", divide="ignore"):
        flux = np.nan_to_num(_wsum(pv, D) / _wsum(pv, P))
    median_b, median_f, a = _block_median(np.stack([b, np.clip(flux, 0, None), a]), window)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.where(median_f > 0, median_b / median_f, 0)
    return a, q, flux


def _block_median(values: np.ndarray, window: int) -> np.ndarray:
    """Median over consecutive blocks of ``window`` columns, repeated back to every column.

    A piecewise-constant smoother, robust to single outlying columns and much
    faster than a running median; the weights need not be smooth, only free
    of each pixel's own noise. A short last block has its own median.
    """
    nx = values.shape[-1]
    nfull = nx // window
    blocks = values[..., :nfull * window].reshape(values.shape[:-1] + (nfull, window))
    middle = window // 2  # an odd window has one middle element: partition is enough
    smooth = [np.repeat(np.partition(blocks, middle, axis=-1)[..., middle], window, axis=-1)]
    if nfull * window < nx:
        tail = values[..., nfull * window:]
        smooth.append(np.broadcast_to(np.median(tail, axis=-1, keepdims=True), tail.shape))
    return np.concatenate(smooth, axis=-1)


def _reject_outliers(D, P, vr, vf, terms, good, sol, coverage, out, reject_sigma, max_iterations):
    """Drop the worst pixel per column while it is an outlier; update the solution in place.

    ``sol``, ``good`` and ``coverage`` are updated, ``out["rejected"]`` and
    ``out["n_rejected"]`` set. After the full first pass only the columns with
    an outlier are gathered, as ``(n_columns, ny, 1)`` arrays, and solved again;
    each iteration keeps only the columns that still have one. The modelled
    Poisson variance of a column follows its flux as outliers leave it, and
    its outliers are looked for again against each new solution: a second
    cosmic ray in a column, below its model while the first one pulled it up,
    shows only once the first is gone.
    """
    threshold = reject_sigma
    # Signed: only pixels above the model are outliers. Cosmic rays and hot
    # pixels are positive, and a column inflated by one pulls its model above
    # the good pixels, which must not be rejected in its place.
    chi = P * sol["flux"][..., None, :]
    np.subtract(D, chi, out=chi)
    iv = sol.pop("iv")
    chi *= np.sqrt(iv, out=iv)
    columns = np.nonzero(chi.max(axis=-2) > threshold)
    if not columns[0].size:
        return
    z = _gather(chi, columns)
    c = z > threshold
    candidate, row = np.nonzero(c[..., 0])
    pixels = (columns[0][candidate], row, columns[1][candidate])
    c[candidate, row, 0] = sharp_along_dispersion(chi, sol["flux"], pixels, threshold)
    keep = c.any(axis=(-2, -1))
    if not keep.any():
        return
    sel = tuple(index[keep] for index in columns)
    c, z = c[keep], z[keep]
    neighbours = _neighbour_residuals(chi, sol["flux"], sel)
    d, p, r, f, g = (_gather(a, sel) for a in (D, P, vr, vf, good))
    p_pos = np.maximum(p, 0)
    a_col, q_col = (None, None) if terms is None else (terms[0][sel][:, None], terms[1][sel][:, None])
    rej = np.zeros_like(g)
    result = {k: sol[k][sel][:, None] for k in _RESULT_KEYS}
    todo = np.arange(len(g))
    row = np.argmax(np.where(c, z, -np.inf), axis=-2)[:, 0]

    def variance(todo, flux):
        """The modelled variance of the columns ``todo`` for their ``flux``."""
        poisson = None if terms is None else (a_col[todo], q_col[todo], flux)
        return _model_variance(d[todo].shape, r[todo], None if f is None else f[todo], poisson, p_pos[todo])

    V = variance(todo, result["flux"])
    for _ in range(max_iterations):
        g[todo, row] = False
        rej[todo, row] = True
        d_t, p_t, f_t = d[todo], p[todo], None if f is None else f[todo]
        s, bad = solve_columns(d_t, p_t, r[todo], f_t, V, ~g[todo])
        g[todo] = ~bad
        for k in _RESULT_KEYS:
            result[k][todo] = s[k]
        # judged, and solved next, with the variance of the new flux, no longer pulled up by the outlier
        V = variance(todo, s["flux"])
        with np.errstate(invalid="ignore", divide="ignore"):
            chi_t = (d_t - s["flux"][..., None, :] * p_t) / np.sqrt(V)
        sharp = _sharper_than(chi_t[..., 0], s["flux"][:, 0], *(a[todo] for a in neighbours), threshold)
        chi_t = np.where(g[todo] & sharp[..., None], chi_t, -np.inf)
        row = np.argmax(chi_t, axis=-2)[:, 0]
        still = chi_t[np.arange(todo.size), row, 0] > threshold
        todo, row, V = todo[still], row[still], V[still]
        if todo.size == 0:
            break
    for k in _RESULT_KEYS:
        sol[k][sel] = result[k][:, 0]
    good[sel[0], :, sel[1]] = g[..., 0]
    out["rejected"][sel[0], :, sel[1]] = rej[..., 0]
    out["n_rejected"][sel] = rej.sum(axis=(-2, -1))
    coverage[sel] = _wsum(g, p)[:, 0]


def _gather(a, columns):
    """The ``columns`` (integration indices, x indices) of a chunk array or frame, as ``(n, ny, 1)``."""
    if a is None:
        return None
    picked = a.T[columns[1]] if a.ndim == 2 else a[columns[0], :, columns[1]]
    return picked[..., None]


def _neighbour_residuals(chi: np.ndarray, flux: np.ndarray, columns: tuple) -> tuple[np.ndarray, np.ndarray]:
    """The residuals ``(n_columns, 2 _NEIGHBOURS, ny)`` of the columns either side of ``columns`` and their fluxes.

    Beyond the slit's ends the residual is NaN (no neighbour to compare with).
    """
    i, x = columns
    nx = chi.shape[-1]
    sides = x[:, None] + _STEPS  # (n, 2 _NEIGHBOURS)
    inside = (sides >= 0) & (sides < nx)
    sides = np.clip(sides, 0, nx - 1)
    residuals = np.where(inside[..., None], chi[i[:, None], :, sides], np.nan)
    return residuals, flux[i[:, None], sides]


def _sharper_than(chi: np.ndarray, flux: np.ndarray, residuals: np.ndarray, fluxes: np.ndarray,
                  threshold: float) -> np.ndarray:
    """`sharp_along_dispersion` of whole columns ``chi`` ``(n, ny)`` of flux ``(n,)`` against their neighbours."""
    return _stands_out(chi, residuals * _flux_ratio(flux[:, None], fluxes)[..., None], threshold, axis=1)


def _flux_ratio(here: np.ndarray, there: np.ndarray) -> np.ndarray:
    """What scales a neighbouring column's residuals to this column's flux: the ratio of the two, within a factor
    of two, and 1 where either is not positive."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((here > 0) & (there > 0), np.clip(here / there, 0.5, 2.0), 1.0)


def _stands_out(chi: np.ndarray, scaled: np.ndarray, threshold: float, axis: int) -> np.ndarray:
    """``chi`` above the median of its neighbours' ``scaled`` residuals (along ``axis``) by ``threshold`` and
    `_MISFIT_SPREAD` of that median; NaN neighbours do not count, and none at all is not sharp."""
    typical = nanmedian(np.where(np.isfinite(scaled), scaled, np.nan), axis=axis)  # NaN: no neighbour at all
    # A misfit of hundreds of sigma differs from column to column by a few per cent of itself (the fluxes' noise).
    excess = chi - typical - _MISFIT_SPREAD * np.maximum(typical, 0.0)
    return np.nan_to_num(excess, nan=-np.inf) > threshold


def sharp_along_dispersion(chi: np.ndarray, flux: np.ndarray, pixels: tuple, threshold: float) -> np.ndarray:
    """True where a residual stands out from those of the same row in the neighbouring columns, for the given pixels.

    Cosmic rays and hot pixels are sharp along the dispersion; a profile that
    does not match the data leaves residuals that vary smoothly from column to
    column, and those pixels must not be rejected (at high signal to noise they
    can be hundreds of sigma). A pixel is an outlier candidate only if its
    residual exceeds the median of those of the same row in the
    ``_NEIGHBOURS`` columns either side, each scaled by the ratio of the two
    columns' fluxes, by ``threshold`` and by `_MISFIT_SPREAD` of that median.
    A median, not the least of them: a neighbouring column with a cosmic ray
    of its own has its amplitude pulled up and its other residuals down, and
    a core pixel of a bright source next to it then stood out from it.
    Columns beyond the slit's ends, and pixels without a residual (``inf``),
    do not count.

    ``chi`` is ``(n, ny, nx)``, ``flux`` ``(n, nx)`` and ``pixels`` the
    (integration, row, x) indices of the pixels to test.
    """
    nx = chi.shape[-1]
    i, y, x = pixels
    sides = x[:, None] + _STEPS  # (n, 2 _NEIGHBOURS)
    inside = (sides >= 0) & (sides < nx)
    sides = np.clip(sides, 0, nx - 1)
    ratio = _flux_ratio(flux[i, x][:, None], flux[i[:, None], sides])
    scaled = np.where(inside, chi[i[:, None], y[:, None], sides] * ratio, np.nan)
    return _stands_out(chi[i, y, x], scaled, threshold, axis=1)


_NEIGHBOURS = 2
"""Columns either side whose residuals a pixel's is compared with (`sharp_along_dispersion`)."""
_STEPS = np.array([*range(-_NEIGHBOURS, 0), *range(1, _NEIGHBOURS + 1)])
"""The neighbouring columns' offsets."""
_MISFIT_SPREAD = 0.1
"""Fraction of the neighbouring columns' residual by which a pixel's must exceed it, besides the threshold, to be
sharp along the dispersion (`sharp_along_dispersion`)."""


_RESULT_KEYS = ("flux", "inv_var", "var_total", "var_rnoise", "var_flat")
