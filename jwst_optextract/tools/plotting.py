"""Diagnostic figures of the trace and profile fits and of the scene model (matplotlib, optional).

`plot_slit` draws, for one slit: the 2D data with the fitted trace (and the
negative traces), the profile fit against the normalised pixels in trace
offset, the residual image (data minus model) in units of sigma, and the
optimal spectrum against the box spectrum with their errors. Steps with ``save_plots`` write it as
``<output>_<slit>_<kind>.png``.

`plot_scene` draws the scene model of one slit part by part, wavelength on
the x axis: the data, the source (with its negative nod images), the
background and the residual (data minus model) in units of sigma.
``optx_psf --save_plots`` writes it as ``<output>_<slit>_scene.png``, and
``optx_background --save_plots`` as ``<output>_<slit>_bsub_scene.png`` (its
background is the step's estimate, and the pixels it masked are outlined).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .. import core
from ..core.scene import SceneBackground
from ..core.scene_parts import SceneParts, negative_images, profile_in_slit, scene_parts
from ..drivers.fit import ProfileFit, TraceFit
from ..io import SlitData

__all__ = ["column_wavelength", "plot_scene", "plot_slit", "save_scene_plot", "save_slit_plot", "slit_scene"]

log = logging.getLogger(__name__)


def plot_slit(slit: SlitData, trace: TraceFit, profile: ProfileFit | None = None):
    """A figure of one slit's trace and (when given) profile fit.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    mean = slit.mean_image()
    image, good = mean.image, mean.good
    panels = 4 if profile is not None else 1
    fig, axes = plt.subplots(panels, 1, figsize=(11, 3.2 * panels), squeeze=False)
    axes = axes[:, 0]
    shown = np.where(good, image, np.nan)
    low, high = np.nanpercentile(shown, [2, 99.5])
    axes[0].imshow(shown, origin="lower", aspect="auto", vmin=low, vmax=high, cmap="viridis")
    x = np.arange(slit.nx)
    axes[0].plot(x, trace.center, color="red", lw=0.8, label="trace")
    for offset in trace.negative_offsets:
        axes[0].plot(x, trace.center + offset, color="white", lw=0.6, ls="--", label=f"negative {offset:+.0f}")
    axes[0].set_title(f"slit {slit.name}: data and trace ({'detected' if trace.detected else 'NOT detected'})")
    axes[0].set_xlabel("dispersion pixel")
    axes[0].set_ylabel("cross-dispersion pixel")
    axes[0].legend(loc="upper right", fontsize=7)
    if profile is not None:
        _profile_panels(slit, trace, profile, mean, axes[1], axes[2])
        _spectrum_panel(slit, trace, profile, mean, axes[3])
    fig.tight_layout()
    return fig


def _profile_panels(slit, trace, profile, mean, ax_profile, ax_residual):
    image = mean.image
    P = profile.evaluate(slit.ny, trace.center)
    result = core.optimal_extract(image, P, mean.var_rnoise, mean.var_poisson, mask=mean.good,
                                  min_coverage=0.0, return_inverse_variance=True)
    flux = np.nan_to_num(result.flux)
    iv = result.inverse_variance
    offset = np.arange(slit.ny)[:, None] - trace.center[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = flux / np.sqrt(result.var_total)
    bright = np.nan_to_num(snr) >= max(3.0, np.nanpercentile(snr, 75))  # normalised pixels are noise elsewhere
    use = (iv > 0) & bright[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        normalised = image / flux[None, :]
    ax_profile.plot(offset[use], normalised[use], ".", ms=1.5, color="0.3", alpha=0.3, label="pixels / flux")
    order = np.argsort(offset[use])
    ax_profile.plot(offset[use][order], P[use][order], ".", ms=1, color="red", label=f"{profile.kind} model")
    ax_profile.set_xlim(-8, 8)
    core_values = P[use]
    if core_values.size:
        ax_profile.set_ylim(-0.3 * core_values.max(), 1.5 * core_values.max())
    ax_profile.set_xlabel("offset from trace (pixels)")
    ax_profile.set_ylabel("normalised profile")
    ax_profile.set_title(f"profile fit ({profile.kind}{_shape_note(profile)}), chi2/pixel {profile.chi2_per_pixel:.3f}")
    ax_profile.legend(loc="upper right", fontsize=7)
    resid = np.where(iv > 0, (image - flux[None, :] * P) * np.sqrt(iv), np.nan)
    shown = ax_residual.imshow(resid, origin="lower", aspect="auto", vmin=-5, vmax=5, cmap="RdBu_r")
    ax_residual.set_title("residual (data - model) / sigma")
    ax_residual.figure.colorbar(shown, ax=ax_residual, fraction=0.02)


def _shape_note(profile: ProfileFit) -> str:
    """The fitted shape parameter worth a glance: Moffat index or template stretch."""
    note = profile.model.note
    return f", {note}" if note else ""


def _spectrum_panel(slit, trace, profile, mean, ax, box_width: float = 5.0):
    """Optimal against box spectrum of the mean image, with 1-sigma errors."""
    P = profile.evaluate(slit.ny, trace.center)
    optimal = core.optimal_extract(mean.image, P, mean.var_rnoise, mean.var_poisson, mask=mean.good)
    weights = core.aperture_weights(slit.ny, *core.trace_aperture(trace.center, box_width))
    box = core.box_extract(mean.image, weights, mean.var_rnoise, mean.var_poisson, mask=mean.good)
    x = np.arange(slit.nx)
    for name, flux, var, color in ((f"box {box_width:g} px", box.flux, box.var_total, "0.5"),
                                   ("optimal", optimal.flux, optimal.var_total, "C0")):
        ax.plot(x, flux, color=color, lw=0.7, label=name)
        ax.fill_between(x, flux - np.sqrt(var), flux + np.sqrt(var), color=color, alpha=0.25, lw=0)
    finite = np.isfinite(optimal.flux)
    if finite.any():
        low, high = np.nanpercentile(optimal.flux[finite], [1, 99])
        pad = 0.3 * (high - low + 1e-30)
        ax.set_ylim(low - pad, high + pad)
    ax.set_xlabel("dispersion pixel")
    ax.set_ylabel("flux (data units)")
    ax.set_title("optimal and box spectra (mean over integrations), 1-sigma bands")
    ax.legend(loc="upper right", fontsize=7)


def save_slit_plot(path: str | Path, slit: SlitData, trace: TraceFit, profile: ProfileFit | None = None) -> Path:
    """Write `plot_slit` to ``path`` (PNG); returns the path."""
    import matplotlib.pyplot as plt

    fig = plot_slit(slit, trace, profile)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    log.info("Slit %s: diagnostic plot saved in %s", slit.name, path)
    return Path(path)


def slit_scene(slit: SlitData, trace: TraceFit, profile: ProfileFit,
               background: SceneBackground | None = None) -> SceneParts:
    """The scene model of a slit's mean image for its fitted trace and profile (`scene_parts`).

    The negative nod images that the trace fit found are modelled with the
    same profile, at offsets refined to a fraction of a pixel and with
    fitted weights (`~jwst_optextract.core.scene_parts.negative_images`); ``background`` is the one fitted with
    the source (none: the data are background-subtracted).
    """
    mean = slit.mean_image()
    background = background or SceneBackground("none")

    def image_at(offset):
        return profile_in_slit(profile, slit.ny, trace.center + offset)

    _, negatives, _ = negative_images(mean.image, mean.good, mean.var_rnoise, mean.var_poisson, image_at,
                                      trace.negative_offsets, background)
    return scene_parts(mean.image, mean.good, mean.var_rnoise, mean.var_poisson, image_at(0.0), negatives,
                       background)


def column_wavelength(slit: SlitData) -> np.ndarray | None:
    """``(nx,)`` wavelength of every column (median over the rows, interpolated over gaps), or None.

    None when fewer than two columns have a wavelength or it is not
    monotonic along the dispersion (it cannot then label the x axis).
    """
    wavelength = np.asarray(slit.wavelength, float)
    if wavelength.ndim != 2 or wavelength.shape[-1] != slit.nx:
        return None
    finite = np.isfinite(wavelength)
    counts = finite.sum(axis=0)
    column = np.divide(np.where(finite, wavelength, 0).sum(axis=0), counts, out=np.full(slit.nx, np.nan),
                       where=counts > 0)
    known = np.isfinite(column)
    if known.sum() < 2:
        return None
    x = np.arange(slit.nx)
    column = np.interp(x, x[known], column[known])
    steps = np.diff(column[known.argmax():len(known) - known[::-1].argmax()])
    if not (np.all(steps > 0) or np.all(steps < 0)):
        return None
    # beyond the first and last known columns, extend linearly (np.interp holds the end values)
    slope = (column[known][-1] - column[known][0]) / max(x[known][-1] - x[known][0], 1)
    column = np.where(x < x[known][0], column[known][0] + slope * (x - x[known][0]), column)
    return np.where(x > x[known][-1], column[known][-1] + slope * (x - x[known][-1]), column)


def plot_scene(slit: SlitData, parts: SceneParts, source_mask: np.ndarray | None = None,
               background_label: str = "background model"):
    """A figure of one slit's scene model, part by part, wavelength on the x axis.

    Four panels: the data (the mean of the integrations), the source model
    (flux times profile, with the negative nod images where there are some),
    the background model, on one colour scale; and the residual, data minus
    the whole model, in units of sigma. Without a usable wavelength the x
    axis is the dispersion pixel (and says so).

    Parameters
    ----------
    slit : SlitData
        The slit (its name and wavelengths).
    parts : SceneParts
        Its scene model (`slit_scene`, or `~jwst_optextract.core.scene_parts.scene_parts`).
    source_mask : ndarray of bool, optional
        ``(ny, nx)`` pixels kept out of a background fit, outlined on the data.
    background_label : str
        Title of the background panel.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.colors
    import matplotlib.pyplot as plt

    wavelength = column_wavelength(slit)
    if wavelength is None:
        x_edges, x_label = np.arange(slit.nx + 1) - 0.5, "dispersion pixel (no wavelength)"
    else:
        middle = 0.5 * (wavelength[1:] + wavelength[:-1])
        x_edges = np.concatenate([[2 * wavelength[0] - middle[0]], middle, [2 * wavelength[-1] - middle[-1]]])
        x_label = "wavelength (µm)"
    y_edges = np.arange(slit.ny + 1) - 0.5
    shown = parts.data[parts.good] if parts.good.any() else np.zeros(1)
    low, high = np.nanpercentile(shown, [2, 99.5]) if np.isfinite(shown).any() else (0.0, 1.0)
    negatives = " and its negative nod images" if np.any(parts.weights) else ""
    source = parts.source + parts.negative
    # symmetric and logarithmic beyond 1 % of the peak: the wings (and negative images) show, not only the core
    peak = max(float(np.nanpercentile(np.abs(source), 99.9)), 1e-30)
    source_scale = matplotlib.colors.SymLogNorm(linthresh=0.01 * peak, vmin=-peak, vmax=peak)
    panels = [
        (parts.data, f"slit {slit.name}: data" + (" (mean of the integrations)" if slit.n_integrations else ""),
         "viridis", {"vmin": low, "vmax": high}),
        (source, f"source model: flux x profile{negatives} (logarithmic beyond 1 % of the peak)", "PuOr_r",
         {"norm": source_scale}),
        (parts.background, background_label + " (the data's colour scale)", "viridis", {"vmin": low, "vmax": high}),
        (parts.residual, "residual (data - model) / sigma", "RdBu_r", {"vmin": -5.0, "vmax": 5.0}),
    ]
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 2.6 * len(panels)), squeeze=False)
    for ax, (image, title, cmap, scale) in zip(axes[:, 0], panels):
        mesh = ax.pcolormesh(x_edges, y_edges, image, cmap=cmap, shading="flat", rasterized=True, **scale)
        fig.colorbar(mesh, ax=ax, fraction=0.025, pad=0.01)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(x_label)
        ax.set_ylabel("cross-dispersion pixel")
    if source_mask is not None:
        x_centres = 0.5 * (x_edges[1:] + x_edges[:-1])
        axes[0, 0].contour(x_centres, np.arange(slit.ny), np.broadcast_to(source_mask, parts.data.shape).astype(float),
                           levels=[0.5], colors="white", linewidths=0.6)
        axes[0, 0].set_title(panels[0][1] + "; white: the source mask of the background fit", fontsize=9)
    fig.tight_layout()
    return fig


def save_scene_plot(path: str | Path, slit: SlitData, parts: SceneParts, **kwargs) -> Path:
    """Write `plot_scene` to ``path`` (PNG); returns the path. ``kwargs`` go to `plot_scene`."""
    import matplotlib.pyplot as plt

    fig = plot_scene(slit, parts, **kwargs)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    log.info("Slit %s: scene plot saved in %s", slit.name, path)
    return Path(path)
