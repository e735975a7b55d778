"""Where a slit's WCS puts its source: the row at the middle of the spectrum, and the row in every column.

jwst's ``extract_1d`` finds both with ``location_from_wcs``. For NIRSpec it
evaluates the whole WCS (``detector -> world``) down the middle column for
the middle wavelength, and ``detector -> slit_frame`` over every pixel of the
slit for the range of wavelengths, before it projects the source's slit
position (``source_xpos``, ``source_ypos``) back to the detector with
``slit_frame -> detector``. The slit's wavelengths are those two evaluations'
answer, and `read_slit` holds them already (the WAVELENGTH array, or the WCS's
wavelengths where there is none): `nirspec_source_position` reads the middle
wavelength and the range from them and evaluates only the projection. On the
CEERS MOS slitlet (25 x 341, PRISM) that is 6 ms instead of 30 ms; on a
200-slit exposure, seconds. The answer is jwst's: the same projection, at
the same wavelengths to the interpolation between two columns (see
``tests/test_wcs_source.py``). One difference is deliberate: jwst evaluates
its interpolated trace at columns counted from 0, not from the bounding
box's first column, which puts it in the wrong columns of a full-frame image
whose box starts elsewhere; here the columns are the box's.

Other instruments (MIRI LRS: the dithered pointing through the inverse WCS)
go to jwst's function.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

__all__ = ["NIRSPEC_SLIT_TYPES", "nirspec_source_position"]

log = logging.getLogger(__name__)

NIRSPEC_SLIT_TYPES = frozenset({"NRS_FIXEDSLIT", "NRS_MSASPEC", "NRS_BRIGHTOBJ"})
"""The exposure types whose WCS has a ``slit_frame`` that ``source_xpos`` and ``source_ypos`` are positions in."""


def nirspec_source_position(node, wavelength: np.ndarray) -> tuple[float | None, np.ndarray | None] | None:
    """The source's row at the middle wavelength and its row per column, projected from its slit position.

    Parameters
    ----------
    node : DataModel
        The slit (or a single-slit model): its ``meta.wcs``, ``source_xpos``
        and ``source_ypos``. The dispersion runs along x.
    wavelength : ndarray
        ``(ny, nx)`` wavelengths in microns of the whole frame of ``node``'s
        data (NaN where undefined).

    Returns
    -------
    (location, trace) or None
        Full-frame pixel coordinates: ``location`` the row, ``trace`` ``(nx,)``
        the row in every column (NaN outside the bounding box), both None when
        the source's slit position is unknown or the WCS puts it outside the
        bounding box; None when the WCS has no ``slit_frame``, for the caller
        to ask jwst's ``location_from_wcs``.
    """
    wcs = getattr(node.meta, "wcs", None)
    if wcs is None or "slit_frame" not in wcs.available_frames:
        return None
    xpos, ypos = getattr(node, "source_xpos", None), getattr(node, "source_ypos", None)
    if xpos is None or ypos is None or not np.isfinite([xpos, ypos]).all():
        return None, None
    ny, nx = wavelength.shape
    bbox = wcs.bounding_box
    (x0, x1), (y0, y1) = ((-0.5, nx - 0.5), (-0.5, ny - 0.5)) if bbox is None else (
        tuple(b) for b in bbox.bounding_box(order="F"))
    # slit_frame's wavelengths are in metres where the WCS goes through the grating wheel (gwa), as jwst's
    to_frame = 1e-6 if "gwa" in wcs.available_frames else 1.0
    middle = _middle_wavelength(wavelength, 0.5 * (x0 + x1), int(round(y1)))
    columns = slice(max(int(np.ceil(x0)), 0), min(int(np.floor(x1)) + 1, nx))
    rows = slice(max(int(np.ceil(y0)), 0), min(int(np.floor(y1)) + 1, ny))
    inside = wavelength[rows, columns]
    if middle is None or not np.isfinite(inside).any():
        return None, None
    n_columns = int(x1 - x0)
    waves = np.append(np.linspace(np.nanmin(inside), np.nanmax(inside), n_columns), middle) * to_frame
    slit2det = wcs.get_transform("slit_frame", "detector")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        x, y = slit2det(np.full(waves.size, float(xpos)), np.full(waves.size, float(ypos)), waves)
    x, y = np.asarray(x, float), np.asarray(y, float)
    location = float(y[-1])
    if not np.isfinite(location) or not y0 <= location <= y1:
        log.warning("Slit %s: the WCS puts the source (slit position %.3f, %.3f) at row %.2f, outside the bounding "
                    "box (rows %.1f to %.1f): no source position from the WCS", getattr(node, "name", None) or "",
                    xpos, ypos, location, y0, y1)
        return None, None
    trace = np.full(nx, np.nan)
    trace[columns] = _linear(x[:-1], y[:-1], np.arange(columns.start, columns.stop, dtype=float))
    return location, trace


def _middle_wavelength(wavelength: np.ndarray, column: float, n_rows: int) -> float | None:
    """Mean over the first ``n_rows`` rows of the wavelength at (fractional) ``column``, as jwst takes it."""
    ny, nx = wavelength.shape
    if not 0 <= column <= nx - 1:
        return None
    left = min(int(np.floor(column)), nx - 2) if nx > 1 else 0
    frac = column - left
    rows = wavelength[:max(min(n_rows, ny), 1)]
    values = rows[:, left] if nx == 1 else (1 - frac) * rows[:, left] + frac * rows[:, left + 1]
    return float(np.nanmean(values)) if np.isfinite(values).any() else None


def _linear(x: np.ndarray, y: np.ndarray, at: np.ndarray) -> np.ndarray:
    """``y(x)`` interpolated linearly at ``at``, extrapolated along its end segments (as scipy's interp1d)."""
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 2:
        return np.full(at.shape, np.nan)
    order = np.argsort(x)
    x, y = x[order], y[order]
    out = np.interp(at, x, y)
    below, above = at < x[0], at > x[-1]
    first, last = (np.divide(y[j] - y[i], x[j] - x[i]) if x[j] > x[i] else 0.0 for i, j in ((0, 1), (-2, -1)))
    out[below] = y[0] + (at[below] - x[0]) * first
    out[above] = y[-1] + (at[above] - x[-1]) * last
    return out
