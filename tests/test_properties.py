"""Property-based tests (hypothesis) of the core algorithms on small arrays.

Optimal and box extraction: linear in the data, free of the scale of the
variance where they should be, exact on noise-free data of any profile, NaN
(never finite) for columns with no good pixel, finite for every column that
has one. Trace and profile fits: a shift of the data by whole rows shifts the
fit by the same amount and changes nothing else.
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from jwst_optextract.core import box_extract, gaussian_profile, optimal_extract
from jwst_optextract.core.profile import fit_gaussian_profile
from jwst_optextract.core.robust import nanmedian
from jwst_optextract.core.spline_profile import fit_spline_profile

FAST = settings(max_examples=40, deadline=None)
SLOW = settings(max_examples=10, deadline=None)


@st.composite
def slits(draw, max_ny=8, max_nx=6):
    """Data, a positive profile, positive variances, a mask and other data, all shaped ``(ny, nx)``."""
    ny = draw(st.integers(1, max_ny))
    nx = draw(st.integers(1, max_nx))
    values = st.floats(-1e3, 1e3, allow_nan=False, width=64)
    data = draw(hnp.arrays(np.float64, (ny, nx), elements=values))
    profile = draw(hnp.arrays(np.float64, (ny, nx), elements=st.floats(0.01, 10.0)))
    var = draw(hnp.arrays(np.float64, (ny, nx), elements=st.floats(0.1, 100.0)))
    mask = draw(hnp.arrays(np.bool_, (ny, nx)))
    other = draw(hnp.arrays(np.float64, (ny, nx), elements=values))
    return data, profile, var, mask, other


def _optimal(data, profile, var, mask=None, **kwargs):
    return optimal_extract(data, profile, var, mask=mask, reject_sigma=None, min_coverage=0.0, **kwargs)


@FAST
@given(slits(), st.floats(-10, 10), st.floats(-10, 10))
def test_optimal_is_linear_in_the_data(slit, a, b):
    data, profile, var, mask, other = slit
    combined = _optimal(a * data + b * other, profile, var, mask).flux
    separate = a * _optimal(data, profile, var, mask).flux + b * _optimal(other, profile, var, mask).flux
    np.testing.assert_allclose(combined, separate, rtol=1e-9,
                               atol=1e-8 * (1 + np.abs(data).max() + np.abs(other).max()))


@FAST
@given(slits(), st.floats(1e-3, 1e3))
def test_optimal_flux_is_free_of_the_variance_scale(slit, scale):
    data, profile, var, mask, _ = slit
    base = _optimal(data, profile, var, mask, var_flat=0.5 * var)
    scaled = _optimal(data, profile, scale * var, mask, var_flat=0.5 * scale * var)
    np.testing.assert_allclose(scaled.flux, base.flux, rtol=1e-9, atol=1e-9 * (1 + np.abs(data).max()))
    np.testing.assert_allclose(scaled.var_rnoise, scale * base.var_rnoise, rtol=1e-9)
    np.testing.assert_allclose(scaled.var_flat, scale * base.var_flat, rtol=1e-9)


@FAST
@given(slits(), hnp.arrays(np.float64, 6, elements=st.floats(-1e4, 1e4)))
def test_optimal_is_exact_on_noise_free_data_of_any_profile(slit, amplitudes):
    _, profile, var, mask, _ = slit
    ny, nx = profile.shape
    flux = amplitudes[:nx]
    data = flux * profile / profile.sum(axis=0)
    result = _optimal(data, profile, var, mask)
    used = mask.any(axis=0)
    np.testing.assert_allclose(result.flux[used], flux[used], rtol=1e-9, atol=1e-9 * (1 + np.abs(flux).max()))


@FAST
@given(slits(), st.data())
def test_optimal_gives_nan_exactly_for_the_columns_without_a_good_pixel(slit, data_strategy):
    data, profile, var, mask, _ = slit
    nx = data.shape[1]
    dead = data_strategy.draw(hnp.arrays(np.bool_, nx))
    mask = mask & ~dead
    data = np.where(dead, np.nan, data)  # the masked pixels may hold anything, even NaN
    result = _optimal(data, profile, var, mask)
    has_good = mask.any(axis=0)
    assert not np.isfinite(result.flux[~has_good]).any()
    assert not np.isfinite(result.var_rnoise[~has_good]).any()
    assert np.isfinite(result.flux[has_good]).all()
    assert np.isfinite(result.var_rnoise[has_good]).all()
    np.testing.assert_array_equal(result.valid, has_good)


@FAST
@given(slits(), st.floats(0.1, 100.0), st.integers(0, 3))
def test_optimal_with_poisson_variance_and_rejection_is_never_nan_on_good_columns(slit, level, seed):
    data, profile, var, mask, _ = slit
    rng = np.random.default_rng(seed)
    var_poisson = np.abs(data) / level + rng.uniform(0, 1, data.shape)
    result = optimal_extract(data, profile, var, var_poisson, mask=mask, reject_sigma=3.0, min_coverage=0.0)
    has_good = mask.any(axis=0)
    assert np.isfinite(result.flux[has_good]).all()
    assert not np.isfinite(result.flux[~has_good]).any()
    assert (result.var_total[has_good] >= 0).all()


def _box(data, var, mask, weights=None):
    weights = np.ones_like(data) if weights is None else weights
    return box_extract(data, weights, var, mask=mask)


@FAST
@given(slits(), st.floats(-10, 10), st.floats(-10, 10))
def test_box_is_linear_in_the_data(slit, a, b):
    data, weights, var, mask, other = slit
    weights = np.clip(weights / 10, 0, 1)
    combined = _box(a * data + b * other, var, mask, weights).flux
    separate = a * _box(data, var, mask, weights).flux + b * _box(other, var, mask, weights).flux
    np.testing.assert_allclose(combined, separate, rtol=1e-9,
                               atol=1e-8 * (1 + np.abs(data).max() + np.abs(other).max()))


@FAST
@given(slits(), st.floats(1e-3, 1e3))
def test_box_flux_ignores_the_variance_which_scales_with_it(slit, scale):
    data, _, var, mask, _ = slit
    base, scaled = _box(data, var, mask), _box(data, scale * var, mask)
    np.testing.assert_array_equal(scaled.flux, base.flux)
    np.testing.assert_allclose(scaled.var_rnoise, scale * base.var_rnoise, rtol=1e-12)


@FAST
@given(slits(), hnp.arrays(np.float64, 6, elements=st.floats(-1e4, 1e4)))
def test_box_over_the_whole_slit_is_exact_on_noise_free_data_of_any_profile(slit, amplitudes):
    _, profile, var, _, _ = slit
    flux = amplitudes[: profile.shape[1]]
    data = flux * profile / profile.sum(axis=0)
    np.testing.assert_allclose(_box(data, var, None).flux, flux, rtol=1e-9, atol=1e-9 * (1 + np.abs(flux).max()))


@FAST
@given(slits(), st.data())
def test_box_gives_nan_exactly_for_the_columns_without_a_good_pixel(slit, data_strategy):
    data, _, var, mask, _ = slit
    dead = data_strategy.draw(hnp.arrays(np.bool_, data.shape[1]))
    mask = mask & ~dead
    result = _box(np.where(dead, np.nan, data), var, mask)
    has_good = mask.any(axis=0)
    assert not np.isfinite(result.flux[~has_good]).any()
    np.testing.assert_array_equal(result.var_rnoise[~has_good], 0.0)  # as jwst extract_1d
    assert np.isfinite(result.flux[has_good]).all() and np.isfinite(result.var_rnoise[has_good]).all()


def _gaussian_scene(ny, nx, center, sigma, flux=1000.0):
    P = gaussian_profile(ny, np.full(nx, center), np.full(nx, sigma))
    return flux * P, np.ones((ny, nx))


@SLOW
@given(st.floats(8.0, 12.0), st.floats(0.8, 2.0), st.integers(-4, 6))
def test_gaussian_trace_fit_is_shift_equivariant(center, sigma, shift):
    ny, nx = 24, 40
    data, var = _gaussian_scene(ny, nx, center, sigma)
    moved = np.roll(data, shift, axis=0)  # the source is far from the edges: nothing wraps
    good = np.ones_like(data, bool)
    start = np.full(nx, round(center))
    fit = fit_gaussian_profile(data, good, var, None, start, sigma_guess=1.0, center_degree=1, sigma_degree=0)
    fit_moved = fit_gaussian_profile(moved, good, var, None, start + shift, sigma_guess=1.0, center_degree=1,
                                     sigma_degree=0)
    np.testing.assert_allclose(fit_moved.center, fit.center + shift, atol=1e-6)
    np.testing.assert_allclose(fit_moved.sigma, fit.sigma, atol=1e-6)
    np.testing.assert_allclose(fit.center, center, atol=1e-4)


@SLOW
@given(st.floats(9.0, 11.0), st.floats(0.8, 1.6), st.integers(-3, 5))
def test_spline_profile_fit_is_shift_equivariant(center, sigma, shift):
    ny, nx = 26, 48
    data, var = _gaussian_scene(ny, nx, center, sigma)
    moved = np.roll(data, shift, axis=0)
    good = np.ones_like(data, bool)
    trace = np.full(nx, center)
    guess = gaussian_profile(ny, trace, np.full(nx, 1.2))
    kwargs = dict(core_half_width=4.0, window=16.0, column_degree=1, oversample=2.0, smoothing=30.0, reject_sigma=5.0)
    spline = fit_spline_profile(data, good, var, None, trace, guess, **kwargs)
    spline_moved = fit_spline_profile(moved, good, var, None, trace + shift, np.roll(guess, shift, axis=0), **kwargs)
    P, P_moved = spline.evaluate(ny, trace), spline_moved.evaluate(ny, trace + shift)
    expected = np.roll(P, shift, axis=0)
    # The knots span the offsets the slit covers, which move with the shift:
    # equal to 1e-5 of a peak of ~0.3 in the core, to 1e-4 in the far wings.
    core = np.abs(np.arange(ny)[:, None] - (trace + shift)) <= kwargs["core_half_width"]
    np.testing.assert_allclose(P_moved[core], expected[core], atol=1e-5)
    np.testing.assert_allclose(P_moved, expected, atol=1e-4)


@FAST
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6),
                  elements=st.floats(-1e300, 1e300) | st.sampled_from([np.nan, np.inf, -np.inf])), st.data())
def test_nanmedian_is_numpy_s(values, data):
    """The vectorised median gives numpy's numbers, NaN for slices with no value, on any axis.

    (Values near the largest double are left out: numpy's masked median adds a middle value to itself.)
    """
    import warnings

    axis = data.draw(st.integers(-values.ndim, values.ndim - 1))
    with warnings.catch_warnings(), np.errstate(invalid="ignore", over="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanmedian(values, axis=axis, keepdims=True)
        got = nanmedian(values, axis=axis, keepdims=True)
    np.testing.assert_array_equal(got, expected)
