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
from dataclasses import dataclass

import numpy as np

__all__ = ["OptimalResult", "optimal_extract"]

log = logging.getLogger(__name__)


@dataclass
class OptimalResult:
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

    @property
    def var_total(self) -> np.ndarray:
        return self.var_poisson + self.var_rnoise + self.var_flat


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
    P = _normalise(np.asarray(profile, dtype=dtype))
    lead = shape[:-2]
    out_shape = lead + shape[-1:]
    result = OptimalResult(
        flux=np.empty(out_shape, dtype),
        var_poisson=np.empty(out_shape, dtype),
        var_rnoise=np.empty(out_shape, dtype),
        var_flat=np.empty(out_shape, dtype),
        npixels=np.empty(out_shape, dtype),
        coverage=np.empty(out_shape, dtype),
        n_rejected=np.empty(out_shape, np.int32),
        rejected=np.zeros(shape, bool),
        valid=np.empty(out_shape, bool),
        inverse_variance=np.zeros(shape, dtype) if return_inverse_variance else None,
    )
    frame = shape[-2] * shape[-1]
    per_chunk = max(1, chunk_pixels // frame)
    n_lead = int(np.prod(lead)) if lead else 1
    for start in range(0, n_lead, per_chunk):
        index = np.unravel_index(np.arange(start, min(start + per_chunk, n_lead)), lead) if lead else ()
        part = {
            "data": data[index],
            "P": _take(P, index, lead, shape),
            "vr": _take(var_rnoise, index, lead, shape, dtype),
            "vp": _take(var_poisson, index, lead, shape, dtype),
            "vf": _take(var_flat, index, lead, shape, dtype),
            "mask": _take(mask, index, lead, shape, bool),
        }
        chunk = _extract_chunk(**part, reject_sigma=reject_sigma, max_iterations=max_reject_iterations,
                               min_coverage=min_coverage, weights=return_inverse_variance)
        for name, value in chunk.items():
            getattr(result, name)[index] = value
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


def _take(a, index, lead, shape, dtype=None):
    """The chunk ``index`` of ``a`` broadcast to ``shape`` (None stays None)."""
    if a is None:
        return None
    a = np.asarray(a) if dtype is None else np.asarray(a, dtype=dtype)
    if a.ndim <= 2:
        return np.broadcast_to(a, shape[-2:])
    return np.broadcast_to(a, shape)[index]


def _extract_chunk(data, P, vr, vp, vf, mask, reject_sigma, max_iterations, min_coverage, weights):
    shape = data.shape
    good = np.isfinite(data) & np.isfinite(vr) & (vr >= 0) & (P != 0)
    if vp is not None:
        good &= np.isfinite(vp)
    if vf is not None:
        good &= np.isfinite(vf) & (vf >= 0)
    if mask is not None:
        good &= mask
    good = np.broadcast_to(good, shape).copy()
    # Zero on bad pixels, so that no NaN or inf reaches a sum (0 * inf is NaN).
    D = np.where(good, data, 0).astype(P.dtype, copy=False)
    vr = np.where(good, vr, 0).astype(P.dtype, copy=False)
    if vf is not None:
        vf = np.where(good, vf, 0).astype(P.dtype, copy=False)
    terms = None
    vpm = None
    if vp is not None:
        terms = poisson_terms(D, P, vr, vp, vf, good)
        vpm = poisson_variance(*terms, P)
    sol = solve_columns(D, P, vr, vpm, vf, good, axis=-2)
    rejected = np.zeros(shape, dtype=bool)
    if reject_sigma is not None and reject_sigma > 0:
        _reject_outliers(D, P, vr, terms, vf, good, rejected, sol, reject_sigma, max_iterations)
    coverage = np.einsum("...yx,...yx->...x", good.astype(P.dtype), np.broadcast_to(P, shape))
    sum_p2 = np.einsum("...yx,...yx->...x", P, P)
    valid = (coverage >= min_coverage) & (sol["inv_var"] > 0) & np.isfinite(sol["flux"])
    nan = np.where(valid, 1.0, np.nan).astype(P.dtype)
    var_rnoise = sol["var_rnoise"]
    var_flat = sol["var_flat"]
    extra = {}
    if weights:
        V = np.broadcast_to(vr, shape) + (0 if vf is None else vf)
        if terms is not None:
            V = V + poisson_variance(terms[0], terms[1], sol["flux"], P)
        with np.errstate(invalid="ignore", divide="ignore"):
            extra["inverse_variance"] = np.where(good & (V > 0), 1 / V, 0)
    return extra | {
        "flux": sol["flux"] * nan,
        "var_poisson": np.clip(sol["var_total"] - var_rnoise - var_flat, 0, None) * nan,
        "var_rnoise": var_rnoise * nan,
        "var_flat": var_flat * nan,
        "npixels": np.divide(coverage, sum_p2, out=np.zeros_like(coverage), where=sum_p2 > 0),
        "coverage": coverage,
        "n_rejected": rejected.sum(axis=-2),
        "rejected": rejected,
        "valid": valid,
    }


def _normalise(profile: np.ndarray) -> np.ndarray:
    # Signed: a fitted profile's wings scatter about zero where the data are
    # noise; clipping them at zero would rectify that noise into a positive
    # floor and bias the flux.
    profile = np.where(np.isfinite(profile), profile, 0)
    total = profile.sum(axis=-2, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, profile / total, 0).astype(profile.dtype)


def _wsum(a, b, axis):
    """Sum of ``a * b`` along the row axis without a full-size temporary."""
    if axis == -2:
        return np.einsum("...yx,...yx->...x", a, b)
    return np.einsum("...y,...y->...", a, b)


def solve_columns(D, P, vr, vpm, vf, good, axis):
    """Weighted amplitude and propagated variances of every column.

    ``D`` must be zero on bad pixels; ``vpm`` is the *modelled* Poisson
    variance (see `poisson_variance_model`) or None; ``good`` is updated in
    place for pixels that turn out to have no positive variance.
    """
    g = good.astype(P.dtype)
    P = np.broadcast_to(P, D.shape)
    V = np.broadcast_to(vr, D.shape).copy()
    if vf is not None:
        V += vf
    if vpm is not None:
        V += vpm
    iv = np.divide(g, V, out=np.zeros_like(V), where=V > 0)
    good &= iv > 0
    pv = P * iv
    inv_var = _wsum(pv, P, axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        var_total = np.where(inv_var > 0, 1 / inv_var, np.nan).astype(P.dtype, copy=False)
    # Normalised weights: free of the scale of V, so no overflow or underflow.
    w = pv * np.expand_dims(np.nan_to_num(var_total), axis)
    flux = _wsum(w, D, axis)
    w2 = w * w
    var_rnoise = _wsum(w2, np.broadcast_to(vr, D.shape), axis)
    var_flat = _wsum(w2, np.broadcast_to(vf, D.shape), axis) if vf is not None else np.zeros_like(flux)
    return {
        "flux": flux,
        "inv_var": inv_var,
        "var_total": var_total,
        "var_rnoise": var_rnoise,
        "var_flat": var_flat,
        "iv": iv,
    }


def poisson_terms(D, P, vr, vp, vf, good, window: int = 31):  # window odd
    """Smooth model of the Poisson variance: background term ``a`` and ``q`` per column.

    The pipeline's ``VAR_POISSON`` is ``q S + a`` for a source signal ``S``,
    with ``q`` (variance per unit signal: gain, flat, photometric conversion)
    and the background term ``a`` smooth along the dispersion. Per column,
    ``vp ~ a + b P`` is fitted by least squares; ``q = b / f`` (with ``f`` a
    first flux estimate) and ``a`` are then medians over blocks of ``window``
    columns, robust to cosmic rays. The Poisson variance of a pixel is modelled
    as ``a + q max(f, 0) P`` (`poisson_variance`), so that its weight depends on
    its own noise only through averages over hundreds of pixels. Data-derived
    variances instead bias faint fluxes low (tens of percent when photon
    limited); a per-column fit alone still leaves several tenths of a percent.

    Arrays are ``(..., ny, nx)``; ``D`` and ``vp`` must be finite where ``good``.

    Returns
    -------
    a, q, flux : ndarray
        Per-column arrays ``(..., nx)``; ``flux`` is the first flux estimate.
    """
    g = good.astype(P.dtype)
    P = np.broadcast_to(P, D.shape)
    vp = np.where(good, vp, 0)
    n = g.sum(axis=-2)
    gp = g * P
    sp = gp.sum(axis=-2)
    spp = _wsum(gp, P, -2)
    sv = vp.sum(axis=-2)
    spv = _wsum(vp, P, -2)
    with np.errstate(invalid="ignore", divide="ignore"):
        det = n * spp - sp * sp
        b = np.clip(np.where(det > 0, (n * spv - sp * sv) / det, 0), 0, None)
        a = np.clip(np.where(n > 0, (sv - b * sp) / n, 0), 0, None)
    # First flux estimate, weighted as the final one will be (an unweighted sum
    # would let each pixel's noise into its own weight and bias faint fluxes high).
    source = b[..., None, :] * P
    np.maximum(source, 0, out=source)
    V = vr + a[..., None, :] + source
    if vf is not None:
        V += vf
    with np.errstate(invalid="ignore", divide="ignore"):
        pv = np.divide(g * P, V, out=np.zeros_like(V), where=V > 0)
        flux = np.nan_to_num(_wsum(pv, D, -2) / _wsum(pv, P, -2))
    median_b, median_f, a = (_block_median(v, window) for v in (b, np.clip(flux, 0, None), a))
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.where(median_f > 0, median_b / median_f, 0)
    return a, q, flux


def _block_median(values: np.ndarray, window: int) -> np.ndarray:
    """Median over consecutive blocks of ``window`` columns, repeated back to every column.

    A piecewise-constant smoother, robust to single outlying columns and much
    faster than a running median; the weights need not be smooth, only free
    of each pixel's own noise.
    """
    nx = values.shape[-1]
    nblocks = -(-nx // window)
    padded = np.full(values.shape[:-1] + (nblocks * window,), np.nan, dtype=values.dtype)
    padded[..., :nx] = values
    blocks = padded.reshape(values.shape[:-1] + (nblocks, window))
    # the last block may be short: fill it with its own median instead of NaN
    if nblocks * window > nx:
        tail = blocks[..., -1, :]
        tail[..., nx - (nblocks - 1) * window:] = np.median(values[..., (nblocks - 1) * window:], axis=-1, keepdims=True)
    middle = window // 2  # an odd window has one middle element: partition is enough
    medians = np.partition(blocks, middle, axis=-1)[..., middle]
    return np.repeat(medians, window, axis=-1)[..., :nx]


def poisson_variance(a, q, flux, P, axis=-2):
    """Modelled Poisson variance ``a + q max(f, 0) P`` of every pixel (rows on ``axis``)."""
    source = np.clip(np.nan_to_num(q * flux), 0, None)
    return (np.expand_dims(a, axis) + np.maximum(np.expand_dims(source, axis) * P, 0)).astype(P.dtype, copy=False)


def _reject_outliers(D, P, vr, terms, vf, good, rejected, sol, reject_sigma, max_iterations):
    """Drop the worst pixel per column while it is an outlier; update ``sol`` in place.

    After the full first pass only the columns with an outlier are gathered, as
    ``(n_columns, ny)`` arrays, and solved again; each iteration keeps only the
    columns that still have one. The modelled Poisson variance of a column
    follows its flux as outliers leave it.
    """
    threshold = reject_sigma
    # Signed: only pixels above the model are outliers. Cosmic rays and hot
    # pixels are positive, and a column inflated by one pulls its model above
    # the good pixels, which must not be rejected in its place.
    chi2 = (D - sol["flux"][..., None, :] * P) * np.sqrt(sol.pop("iv"))
    columns = np.nonzero(chi2.max(axis=-2) > threshold)
    if not columns[0].size:
        return
    # rows last, so that indexing by column gives (n_columns, ny)
    z = np.moveaxis(chi2, -2, -1)
    c = (z[columns] > threshold) & _sharp_along_dispersion(z, sol["flux"], columns, threshold)
    keep = c.any(axis=-1)
    if not keep.any():
        return
    sel = tuple(index[keep] for index in columns)
    c = c[keep]

    def gather(a):
        if a is None:
            return None
        if a.ndim == 2:  # one frame for all integrations (the profile): index columns only
            return a.T[sel[-1]]
        return np.moveaxis(np.broadcast_to(a, D.shape), -2, -1)[sel]

    d, p, r, f, g = (gather(a) for a in (D, P, vr, vf, good))
    a_col, q_col = (None, None) if terms is None else (terms[0][sel], terms[1][sel])
    rej = np.zeros_like(g)
    out = {k: sol[k][sel] for k in _RESULT_KEYS}
    todo = np.arange(g.shape[0])
    row = np.argmax(np.where(c, z[sel], -np.inf), axis=-1)
    for _ in range(max_iterations):
        g[todo, row] = False
        rej[todo, row] = True
        d[todo, row] = 0
        p_t = p[todo]
        vpm = None if terms is None else poisson_variance(a_col[todo], q_col[todo], out["flux"][todo], p_t, axis=-1)
        gt = g[todo]
        s = solve_columns(d[todo], p_t, r[todo], vpm, None if f is None else f[todo], gt, axis=-1)
        g[todo] = gt
        for k in _RESULT_KEYS:
            out[k][todo] = s[k]
        chi2 = np.where(c[todo], (d[todo] - s["flux"][:, None] * p_t) * np.sqrt(s["iv"]), -np.inf)
        row = np.argmax(chi2, axis=-1)
        still = chi2[np.arange(todo.size), row] > threshold
        todo, row = todo[still], row[still]
        if todo.size == 0:
            break
    for k in _RESULT_KEYS:
        sol[k][sel] = out[k]
    np.moveaxis(good, -2, -1)[sel] = g
    np.moveaxis(rejected, -2, -1)[sel] = rej


def _sharp_along_dispersion(z: np.ndarray, flux: np.ndarray, columns: tuple, threshold: float) -> np.ndarray:
    """True where a residual stands out from a neighbouring column, for the given columns only.

    Cosmic rays and hot pixels are sharp along the dispersion; a profile that
    does not match the data leaves residuals that vary smoothly from column to
    column, and those pixels must not be rejected (at high signal to noise they
    can be hundreds of sigma). A pixel is an outlier candidate only if its
    residual exceeds that of the same row in at least one neighbouring column,
    scaled by the ratio of the two columns' fluxes, by ``threshold``.

    ``z`` is ``(..., nx, ny)`` (rows last) and ``columns`` the indices of the
    columns to test; returns ``(n_columns, ny)``.
    """
    nx = z.shape[-2]
    lead, x = columns[:-1], columns[-1]
    here = z[columns]
    best = np.full(here.shape, np.inf, dtype=z.dtype)
    for step in (-1, 1):
        other = x + step
        inside = (other >= 0) & (other < nx)
        other = np.clip(other, 0, nx - 1)
        f_here, f_there = flux[columns], flux[lead + (other,)]
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where((f_here > 0) & (f_there > 0), np.clip(f_here / f_there, 0.5, 2.0), 1.0)
        neighbour = np.where(inside[:, None], z[lead + (other,)] * ratio[:, None], np.inf)
        best = np.minimum(best, neighbour)
    return here - best > threshold


_RESULT_KEYS = ("flux", "inv_var", "var_total", "var_rnoise", "var_flat")
