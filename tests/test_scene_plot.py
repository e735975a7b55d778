"""The scene diagnostics: the parts of the scene model, their plot (headless), and the steps that write it."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from jwst_optextract import PsfFitStep, simulate
from jwst_optextract.core import MoffatProfile, SceneBackground
from jwst_optextract.core.fitted import ProfileFit, TraceFit
from jwst_optextract.core.profiles.shape import legendre_from_values
from jwst_optextract.core.scene_parts import negative_images, profile_in_slit
from jwst_optextract.drivers.background import BackgroundParameters, estimate_slit, subtract_background
from jwst_optextract.drivers.fit import fit_slit_profile
from jwst_optextract.drivers.parameters import FitParameters
from jwst_optextract.io.slits import read_slit
from jwst_optextract.steps.background_step import BackgroundStep
from jwst_optextract.tools.plotting import column_wavelength, plot_scene, save_scene_plot, slit_scene

TITLES = ("data", "source model", "background model", "residual (data - model) / sigma")


@pytest.fixture(scope="module")
def nod_difference():
    """One nod less the mean of the two others (negative images of weight -1/2 at -+7.5 rows), on a background."""
    nods = [simulate.make_slit(nx=400, ny=32, flux=30.0, profile="moffat", width=1.8, lines=0, background=4.0,
                               trace_center=center, trace_curvature=0.5, seed=40 + i)
            for i, center in enumerate((8.3, 15.8, 23.3))]
    model = nods[1][0]
    difference = subtract_background(model, BackgroundParameters(method="nod"), [m for m, _ in (nods[0], nods[2])])[0]
    difference.data = difference.data + np.float32(2.0)  # a background left in the difference
    return difference, nods[1][1]


def _image_axes(fig):
    return [ax for ax in fig.axes if ax.get_title()]


def test_scene_parts_add_up_and_find_the_negative_images(nod_difference):
    """With the true profile, and offsets to the nearest pixel as the trace fit finds them."""
    model, truth = nod_difference
    slit = read_slit(model, model, model.name)
    center_coeffs, alpha_coeffs = legendre_from_values(truth.trace, np.full(slit.nx, 1.8))
    profile = ProfileFit(slit.name, "moffat", truth.trace,
                         MoffatProfile(center_coeffs, alpha_coeffs, 2.5, slit.nx, slit.ny))
    trace = TraceFit(slit.name, truth.trace, negative_offsets=np.array([-8.0, 7.0]))
    mean = slit.mean_image()

    def image_at(offset):
        return profile_in_slit(profile, slit.ny, truth.trace + offset)

    background = SceneBackground("smooth", 2, 32.0)
    offsets, _, weights = negative_images(mean.image, mean.good, mean.var_rnoise, mean.var_poisson, image_at,
                                          trace.negative_offsets, background)
    np.testing.assert_allclose(offsets, [-7.5, 7.5], atol=0.1)
    np.testing.assert_allclose(weights, [-0.5, -0.5], atol=0.05)
    parts = slit_scene(slit, trace, profile, background)
    np.testing.assert_allclose(parts.weights, weights)
    assert np.isfinite(parts.residual).mean() > 0.99
    assert abs(np.nanmean(parts.residual)) < 0.05 and 0.9 < np.nanstd(parts.residual) < 1.1
    assert abs(np.nanmedian(parts.background) - 2.0) < 0.05
    np.testing.assert_allclose(parts.model, parts.source + parts.negative + parts.background)
    assert np.all(np.argmax(parts.source, axis=0) == np.round(truth.trace).astype(int))
    assert parts.negative.min() < -0.3 * parts.source.max()


def test_the_scene_plot_runs_headless_with_wavelength_on_the_x_axis(nod_difference, tmp_path):
    model, _ = nod_difference
    slit = read_slit(model, model, model.name)
    trace, profile = fit_slit_profile(slit, None, FitParameters(scene_background="smooth"))
    parts = slit_scene(slit, trace, profile, SceneBackground("smooth", 2, 32.0))
    fig = plot_scene(slit, parts)
    axes = _image_axes(fig)
    assert len(axes) == 4
    for ax, title in zip(axes, TITLES):
        assert title in ax.get_title()
        assert ax.get_xlabel() == "wavelength (µm)"
        assert ax.get_ylabel() == "cross-dispersion pixel"
    assert "negative nod images" in axes[1].get_title()
    wavelength = column_wavelength(slit)
    low, high = sorted(axes[0].get_xlim())
    assert low <= wavelength.min() < wavelength.max() <= high < wavelength.max() + 0.01
    plt.close(fig)
    path = save_scene_plot(tmp_path / "scene.png", slit, parts)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_without_wavelengths_the_x_axis_says_pixels(nod_difference):
    model, _ = nod_difference
    slit = read_slit(model, model, model.name)
    trace, profile = fit_slit_profile(slit, None, FitParameters(scene_background="smooth"))
    parts = slit_scene(slit, trace, profile, SceneBackground("smooth", 2, 32.0))
    slit.wavelength = np.full(slit.wavelength.shape, np.nan)
    assert column_wavelength(slit) is None
    fig = plot_scene(slit, parts)
    assert _image_axes(fig)[0].get_xlabel() == "dispersion pixel (no wavelength)"
    plt.close(fig)


def test_background_step_masks_the_negative_images_and_plots_its_scene(nod_difference, tmp_path):
    model, truth = nod_difference
    _, source = estimate_slit(read_slit(model, model, model.name), BackgroundParameters())
    rows = np.arange(model.data.shape[0])[:, None]
    for offset in (-7.5, 0.0, 7.5):
        assert source[np.abs(rows - (truth.trace[None, :] + offset)) <= 1.0].all(), offset
    model.meta.filename = "nods_cal.fits"
    result = BackgroundStep.call(model, save_plots=True, output_dir=str(tmp_path))
    away = ~source & np.isfinite(result.data)
    assert abs(np.mean(result.data[away])) < 0.05  # +0.02; a fixed 5-row half width: +0.18 (the images' wings)
    assert [p.name for p in tmp_path.glob("*.png")] == [f"nods_{model.name}_bsub_scene.png"]


def test_psf_step_save_plots_writes_the_scene_plot_next_to_its_output(tmp_path):
    model, _ = simulate.make_slit(nx=256, ny=24, flux=30.0, profile="moffat", width=1.8, lines=0, background=3.0,
                                  seed=3)
    model.meta.filename = "demo_cal.fits"
    PsfFitStep.call(model, save_plots=True, scene_background="smooth", output_dir=str(tmp_path))
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    assert names == [f"demo_{model.name}_psf.png", f"demo_{model.name}_scene.png"]
