"""Diagnostic figures of the trace and profile fits (matplotlib, optional).

`plot_slit` draws, for one slit: the 2D data with the fitted trace (and the
negative traces), the profile fit against the normalised pixels in trace
offset, the residual image (data minus model) in units of sigma, and the
optimal spectrum against the box spectrum with their errors. Steps with ``save_plots`` write it as
``<output>_<slit>_<kind>.png``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .. import core
from ..drivers.fit import ProfileFit, TraceFit
from ..io import SlitData

__all__ = ["plot_slit", "save_slit_plot"]

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
