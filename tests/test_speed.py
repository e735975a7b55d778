"""What was done for speed (issue 15) changes no number: the shortcuts give those of the code they replace."""

from __future__ import annotations

import gc
import subprocess
import sys

import numpy as np
import pytest
from scipy.special import erf

from jwst_optextract.core.profiles import gaussian, moffat
from jwst_optextract.core.scene import _block_median, _median_last


@pytest.mark.parametrize("count", [1, 7, 31, 8])
def test_median_of_the_last_axis_is_numpys(count):
    rng = np.random.default_rng(count)
    values = rng.normal(size=(2, 5, 3, count))
    values[0, 1, 2, 0] = np.nan
    values[1, 0, 0] = 4.0  # ties
    np.testing.assert_array_equal(_median_last(values), np.median(values, axis=-1))


def test_block_median_is_that_of_numpys_medians():
    rng = np.random.default_rng(3)
    values = rng.normal(size=(1, 4, 100))
    expected = np.concatenate([np.repeat(np.median(values[..., :93].reshape(1, 4, 3, 31), axis=-1), 31, axis=-1),
                               np.broadcast_to(np.median(values[..., 93:], axis=-1, keepdims=True), (1, 4, 7))],
                              axis=-1)
    np.testing.assert_array_equal(_block_median(values, 31), expected)


def test_gaussian_from_shared_edges_is_the_per_row_formula():
    """Each row's upper edge is the next row's lower edge: evaluated once, the same numbers as twice."""
    ny = 23
    center = np.linspace(5.3, 15.8, 64)
    sigma = np.linspace(0.7, 1.9, 64)
    rows = np.arange(ny, dtype=float)[:, None]
    u_hi, u_lo = (rows + 0.5 - center) / sigma, (rows - 0.5 - center) / sigma
    phi_hi, phi_lo = np.exp(-0.5 * u_hi**2) / np.sqrt(2 * np.pi), np.exp(-0.5 * u_lo**2) / np.sqrt(2 * np.pi)
    g, d = gaussian._gaussian_derivatives(ny, center, sigma)
    np.testing.assert_array_equal(g, 0.5 * (erf(u_hi / np.sqrt(2.0)) - erf(u_lo / np.sqrt(2.0))))
    np.testing.assert_array_equal(d["center"], (phi_lo - phi_hi) / sigma)
    np.testing.assert_array_equal(d["width"], (phi_lo * u_lo - phi_hi * u_hi) / sigma)
    s = sigma * np.sqrt(2.0)
    np.testing.assert_array_equal(gaussian._integrated_gaussian(ny, center, sigma),
                                  0.5 * (erf((rows + 0.5 - center) / s) - erf((rows - 0.5 - center) / s)))


def test_moffat_centre_derivative_from_shared_edges():
    ny, beta = 19, 2.7
    center = np.linspace(6.2, 11.9, 40)
    alpha = np.linspace(1.1, 2.3, 40)
    rows = np.arange(ny, dtype=float)[:, None]
    g, d = moffat._moffat_derivatives(ny, center, alpha, beta)
    norm = alpha * moffat.beta_function(0.5, beta - 0.5)

    def edge_density(offset):
        return np.exp(-beta * np.log1p(((rows + offset - center) / alpha) ** 2)) / norm

    np.testing.assert_array_equal(d["center"], edge_density(-0.5) - edge_density(0.5))


def test_extract_1d_modules_load_without_the_step():
    """The x1d's spectral WCS and the WCS source position without importing Extract1dStep (2 s of imports)."""
    code = ("import sys\n"
            "from jwst_optextract.io.jwst_modules import extract_1d_module\n"
            "wcs = extract_1d_module('spec_wcs')\n"
            "location = extract_1d_module('source_location')\n"
            "assert callable(wcs.create_spectral_wcs) and callable(location.location_from_wcs)\n"
            "assert location.__name__ == 'jwst.extract_1d.source_location'\n"
            "assert 'jwst.extract_1d' not in sys.modules and 'matplotlib' not in sys.modules\n"
            "assert extract_1d_module('spec_wcs') is wcs\n"
            "import jwst.extract_1d.spec_wcs\n"
            "assert extract_1d_module('spec_wcs') is jwst.extract_1d.spec_wcs\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_steps_freeze_the_heap_only_while_they_run():
    """stpipe's full collection at the start of every step skips the objects that exist before it."""
    from jwst_optextract.steps.base import OptxStep

    class Probe(OptxStep):
        class_alias = "optx_test_probe"

        def process(self, value):
            return gc.get_freeze_count()

    assert gc.get_freeze_count() == 0
    assert Probe().run(1) > 0
    assert gc.get_freeze_count() == 0


def _fitted_trace_gaussians(monkeypatch, model, decisive):
    """The Gaussians `fit_trace` fits to a slit (in order) and its trace, with the simple fit's skip at ``decisive``."""
    from jwst_optextract import core
    from jwst_optextract.drivers import fit
    from jwst_optextract.drivers.parameters import FitParameters
    from jwst_optextract.io import read_slit

    fitted = []

    def recorded(*args, **kwargs):
        fitted.append(original(*args, **kwargs))
        return fitted[-1]

    original = gaussian.fit_gaussian_profile
    monkeypatch.setattr(core, "fit_gaussian_profile", recorded)
    monkeypatch.setattr(fit, "DECISIVE_LEAD", decisive)
    params = FitParameters(scene_background="smooth", trace_degree=2, psf_sigma=0.9)
    trace = fit.fit_trace(read_slit(model, model, "test"), params)
    return fitted, trace


def test_wald_prediction_of_the_simple_trace_gaussian_is_its_fit():
    """The chi-square the simpler Gaussian would lose, predicted from the full fit, is what fitting it loses."""
    from jwst_optextract import simulate

    model, _ = simulate.make_slit(nx=1024, ny=30, width=(0.9, 1.4), trace_curvature=1.5, flux=20.0,
                                  background=1.0, seed=11)
    with pytest.MonkeyPatch.context() as monkeypatch:
        (full, simple), _ = _fitted_trace_gaussians(monkeypatch, model, np.inf)
    assert full.sigma_coeffs.size == 3 and simple.sigma_coeffs.size == 1
    predicted = full.held_chi2_increase(simple.center_coeffs.size - 1, 0)
    actual = simple.chi2 - full.chi2
    assert actual > 1000  # the width varies: a test of the prediction where it decides
    assert predicted == pytest.approx(actual, rel=0.1)


@pytest.mark.parametrize("width, flux, skipped", [((0.9, 1.4), 20.0, True), (1.0, 0.3, False)],
                         ids=["width-varies", "faint-constant-width"])
def test_trace_leaves_out_only_a_simple_gaussian_it_could_not_choose(monkeypatch, width, flux, skipped):
    """Where the full Gaussian's lead is beyond doubt the simple one is not fitted, and the trace is the same."""
    from jwst_optextract import simulate

    model, _ = simulate.make_slit(nx=1024, ny=30, width=width, trace_curvature=1.5, flux=flux, background=1.0,
                                  seed=12)
    both, reference = _fitted_trace_gaussians(monkeypatch, model, np.inf)
    fitted, trace = _fitted_trace_gaussians(monkeypatch, model, 10.0)
    assert len(both) == 2 and len(fitted) == (1 if skipped else 2)
    np.testing.assert_array_equal(trace.center, reference.center)
    np.testing.assert_array_equal(trace.gaussian.sigma, reference.gaussian.sigma)


@pytest.mark.parametrize("flux, measured", [(20.0, False), (0.02, True)], ids=["bright", "faint"])
def test_detection_is_measured_with_the_background_only_where_in_doubt(monkeypatch, flux, measured):
    """A source whose held-background S/N is far above the threshold is detected without the scene fit that
    measures it with the background's uncertainty; near the threshold that fit decides, as before."""
    from jwst_optextract import simulate
    from jwst_optextract.drivers import fit

    model, _ = simulate.make_slit(nx=1024, ny=30, width=1.0, flux=flux, background=1.0, seed=13)
    calls = []
    original = fit._snr
    monkeypatch.setattr(fit, "_snr", lambda *args: calls.append(original(*args)) or calls[-1])
    _, trace = _fitted_trace_gaussians(monkeypatch, model, 10.0)
    assert bool(calls) == measured
    if measured:
        held = trace.gaussian.shape_fit.snr
        assert held < fit.CLEAR_DETECTION * 5.0 and 0.8 < calls[0] / held < 1.3
    else:
        assert trace.detected and trace.gaussian.shape_fit.snr > fit.CLEAR_DETECTION * 5.0


@pytest.mark.parametrize("half_rows", [False, True], ids=["grid", "grouped"])
def test_medians_of_light_extent_are_numpys_per_offset(half_rows):
    """`light_extent`'s medians of every offset from the trace, made at once, are numpy's, one offset at a time
    (ties and bad pixels included; with centres exactly half a row off a row, two rows share an offset)."""
    from jwst_optextract.core.profiles.spline import _offset_medians

    rng = np.random.default_rng(8)
    ny, nx = 23, 301
    center = ny / 2 + np.linspace(-2.0, 2.5, nx) + 0.01
    if half_rows:
        center = np.round(center * 2) / 2
    values = np.round(rng.normal(size=(ny, nx)), 1)  # ties
    good = rng.random((ny, nx)) > 0.1
    offsets = np.rint(np.arange(ny)[:, None] - center[None, :]).astype(int)
    index = offsets - offsets.min()
    count = np.bincount(index[good], minlength=index.max() + 1)
    medians = _offset_medians(index, good, values, count)
    for k, n in enumerate(count):
        at = good & (index == k)
        assert n == at.sum()
        if n:
            assert medians[k] == np.median(values[at])
        else:
            assert np.isnan(medians[k])
