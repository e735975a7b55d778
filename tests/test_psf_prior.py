"""The cross-dispersion PSF prior: its law, the choice of reference entry, the packaged optxpsf reference, and the
profile fit of ``benchmarks/measure_psf_prior.py`` that measured it (on synthetic images of known truth)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from jwst_optextract.core.profiles.moffat import moffat_profile, sigma_for_alpha
from jwst_optextract.core.psf_prior import (
    EXPOSURE_MIN_SOURCES, GAUSSIAN_INVERSE_BETA, PsfPrior, disperser_keys, exposure_prior, psf_prior_for,
)
from jwst_optextract.reference_files import PACKAGED_REFERENCES, load_reference, packaged_reference

REPO = Path(__file__).resolve().parents[1]
PN = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "nirspec_fs_s200a1_pn_msaexp"


def _measure_module():
    """``benchmarks/measure_psf_prior.py`` as a module (it is a script, not part of the package)."""
    name = "measure_psf_prior"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / "measure_psf_prior.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def measure():
    return _measure_module()


@pytest.fixture(scope="module")
def packaged():
    return load_reference(packaged_reference("optxpsf"))


def diffraction_k(scale_arcsec: float) -> float:
    """sigma per micron of FWHM = 1.03 lambda / D, D = 6.5 m, in pixels of ``scale_arcsec``."""
    return 1.03e-6 / 6.5 * 206264.806 / (2.0 * np.sqrt(2.0 * np.log(2.0))) / scale_arcsec


# ------------------------------------------------------------------------------------------------ the law


def test_the_law_adds_the_terms_in_quadrature():
    prior = PsfPrior(sigma_0=0.3, k=0.1, beta=2.0, width_sd=0.2, inverse_beta_sd=0.1)
    np.testing.assert_allclose(prior.sigma(np.array([0.0, 4.0, 40.0])), [0.3, 0.5, np.hypot(0.3, 4.0)])
    assert np.ndim(prior.sigma(2.0)) == 0 and prior.sigma(np.ones((2, 3))).shape == (2, 3)
    assert prior.inverse_beta == 0.5
    # no Gaussian-fit law given: the Gaussian kind gets the same sigma
    np.testing.assert_allclose(prior.gaussian_sigma([1.0, 3.0]), prior.sigma([1.0, 3.0]))
    gaussian = PsfPrior(0.3, 0.1, 2.0, 0.2, 0.1, gaussian_sigma_0=0.4, gaussian_k=0.0)
    np.testing.assert_allclose(gaussian.gaussian_sigma([1.0, 5.0]), [0.4, 0.4])


def test_alpha_has_the_width_of_the_law_at_beta():
    prior = PsfPrior(sigma_0=0.45, k=0.11, beta=2.2, width_sd=0.25, inverse_beta_sd=0.13)
    wavelength = np.linspace(0.7, 5.2, 7)
    np.testing.assert_allclose(sigma_for_alpha(prior.alpha(wavelength), prior.beta), prior.sigma(wavelength))


def test_prior_residuals_are_the_normalised_deviations():
    prior = PsfPrior(sigma_0=0.5, k=0.0, beta=2.0, width_sd=0.25, inverse_beta_sd=0.1)
    r = prior.residuals(np.array([0.5, 0.5 * np.e]), np.array([1.0, 2.0]), inverse_beta=0.6)
    np.testing.assert_allclose(r, [0.0, 4.0, 1.0])
    assert prior.residuals([0.5], [1.0]).shape == (1,)


@pytest.mark.parametrize("values", [dict(beta=0.4), dict(width_sd=0.0), dict(inverse_beta_sd=-1.0),
                                    dict(sigma_0=0.0, k=0.0), dict(k=np.nan)])
def test_implausible_priors_are_refused(values):
    with pytest.raises(ValueError):
        PsfPrior(**{"sigma_0": 0.5, "k": 0.1, "beta": 2.0, "width_sd": 0.2, "inverse_beta_sd": 0.1, **values})


# ------------------------------------------------------------------------------------------------ entry choice

REFERENCE = {
    "default": {"sigma_0": 1.0, "k": 0.0, "beta": 2.5, "width_sd": 0.7, "inverse_beta_sd": 0.25},
    "instrument": {
        "NIRSPEC": {"sigma_0": 0.4, "k": 0.1, "beta": 2.1, "width_sd": 0.25, "inverse_beta_sd": 0.13,
                    "disperser": {"G140M/F100LP": {"sigma_0": 0.41, "beta": 2.2},
                                  "G395H": {"k": 0.09},
                                  "PRISM/CLEAR": {"beta": 2.3}}},
        "miri": {"sigma_0": 0.42, "k": 0.12, "beta": 2.0, "width_sd": 0.3, "inverse_beta_sd": 0.2,
                 "disperser": {"P750L": {"beta": 1.8}}},
    },
}


def test_disperser_keys_go_from_most_to_least_specific():
    assert disperser_keys("g140m", "f100lp") == ["G140M/F100LP", "G140M", "F100LP"]
    assert disperser_keys(None, "P750L") == ["P750L"]
    assert disperser_keys("N/A", " p750l ") == ["P750L"]
    assert disperser_keys(None, None) == []


@pytest.mark.parametrize(("instrument", "grating", "filter_", "source", "expected"), [
    # the disperser entry, merged over the instrument's (it holds only what differs)
    ("NIRSPEC", "G140M", "F100LP", "NIRSPEC G140M/F100LP", (0.41, 0.1, 2.2, 0.25, 0.13)),
    ("nirspec", "g140m", "f100lp", "NIRSPEC G140M/F100LP", (0.41, 0.1, 2.2, 0.25, 0.13)),
    # a grating-only key matches any filter
    ("NIRSPEC", "G395H", "F290LP", "NIRSPEC G395H", (0.4, 0.09, 2.1, 0.25, 0.13)),
    ("NIRSPEC", "PRISM", "CLEAR", "NIRSPEC PRISM/CLEAR", (0.4, 0.1, 2.3, 0.25, 0.13)),
    # no entry for this disperser: the instrument's
    ("NIRSPEC", "G140M", "F070LP", "NIRSPEC", (0.4, 0.1, 2.1, 0.25, 0.13)),
    # MIRI LRS: no grating, the filter is the disperser; instrument keys are matched case-insensitively
    ("MIRI", None, "P750L", "MIRI P750L", (0.42, 0.12, 1.8, 0.3, 0.2)),
    ("MIRI", "N/A", "F770W", "MIRI", (0.42, 0.12, 2.0, 0.3, 0.2)),
    # anything else: the default
    ("NIRISS", "GR700XD", "CLEAR", "default", (1.0, 0.0, 2.5, 0.7, 0.25)),
    (None, None, None, "default", (1.0, 0.0, 2.5, 0.7, 0.25)),
])
def test_the_most_specific_entry_is_chosen(instrument, grating, filter_, source, expected):
    prior = psf_prior_for(REFERENCE, instrument, grating, filter_)
    assert prior.source == source
    np.testing.assert_allclose((prior.sigma_0, prior.k, prior.beta, prior.width_sd, prior.inverse_beta_sd), expected)


def test_an_incomplete_reference_is_refused():
    with pytest.raises(ValueError, match="width_sd"):
        psf_prior_for({"default": {"sigma_0": 1.0, "k": 0.0, "beta": 2.5, "inverse_beta_sd": 0.2}}, "NIRSPEC",
                      "G140M", "F100LP")


# ------------------------------------------------------------------------------------------------ packaged file


def test_the_reference_type_is_registered_and_loads(packaged):
    assert PACKAGED_REFERENCES["optxpsf"] == "optx_psf_prior.json"
    assert Path(packaged_reference("optxpsf")).name == "optx_psf_prior.json"
    assert packaged["reftype"] == "optxpsf"
    for key in ("description", "pedigree", "useafter", "units"):
        assert packaged[key]
    # every entry, merged as psf_prior_for merges them, makes a valid prior
    for name, entry in packaged["instrument"].items():
        for key in [None, *entry.get("disperser", {})]:
            grating, _, filter_ = (key or "").partition("/")
            prior = psf_prior_for(packaged, name, grating or None, filter_ or None)
            assert prior.source == (name if key is None else f"{name} {key}")


def test_the_packaged_nirspec_prior_is_physical(packaged):
    native = diffraction_k(0.105)  # 0.132 px/um on NIRSpec's 0.105 arcsec rows
    wavelength = np.linspace(0.6, 5.3, 48)
    for grating, filter_ in [(None, None), ("PRISM", "CLEAR"), ("G140H", "F070LP"), ("G395M", "F290LP")]:
        prior = psf_prior_for(packaged, "NIRSPEC", grating, filter_)
        sigma = prior.sigma(wavelength)
        assert np.all(np.diff(sigma) > 0)  # wider with wavelength
        assert 0.3 < sigma[0] < 0.6 and 0.5 < sigma[-1] < 1.0  # about 1 to 2 px FWHM, undersampled at 1 um
        # measured 0.80 of the diffraction expectation FWHM = 1.03 lambda / D (the law's sigma_0 takes part
        # of the slope at short wavelengths): well within a factor 2
        assert 0.5 * native < prior.k < 2.0 * native
        assert np.all(prior.gaussian_sigma(wavelength) > sigma)  # a Gaussian fit absorbs the Moffat's wings
        assert 1.5 < prior.beta < 3.0
        assert 0.1 <= prior.width_sd <= 0.5 and 0.05 <= prior.inverse_beta_sd <= 0.3


def test_the_packaged_miri_and_default_priors(packaged):
    miri = psf_prior_for(packaged, "MIRI", None, "P750L")
    assert 0.5 * diffraction_k(0.11) < miri.k < 2.0 * diffraction_k(0.11)
    assert 1.0 < miri.sigma(7.5) < 1.5  # the imager's 2.4 px FWHM at 7.5 um
    nirspec = psf_prior_for(packaged, "NIRSPEC", "G235M", "F170LP")
    default = psf_prior_for(packaged, "NIRCAM", "GRISMR", "F444W")
    # what is documented but not measured is less certain; the default is the least informative
    assert nirspec.width_sd < miri.width_sd < default.width_sd
    assert nirspec.inverse_beta_sd < miri.inverse_beta_sd <= default.inverse_beta_sd


# ------------------------------------------------------------------------------------------------ the fit


def _moffat_image(rng, alpha, beta, ny=25, nx=40, center=12.3, noise=0.002, shifts=None):
    """Columns of a pixel-integrated Moffat of known width and index, amplitudes varying, Gaussian noise."""
    amplitude = rng.uniform(0.5, 1.5, nx)
    centers = np.full(nx, center)
    if shifts is None:
        profile = moffat_profile(ny, centers, np.full(nx, alpha), beta)
    else:
        profile = sum(w * moffat_profile(ny, centers + s, np.full(nx, alpha), beta) for s, w in zip(*shifts))
    image = amplitude * profile + rng.normal(0.0, noise, (ny, nx))
    return image, np.full((ny, nx), noise**2), centers


def test_the_fit_recovers_a_moffat(measure):
    rng = np.random.default_rng(1)
    alpha, beta = 1.1, 2.2
    image, variance, trace = _moffat_image(rng, alpha, beta)
    fit = measure.fit_profile(image, variance, trace + 0.2, "moffat")
    assert abs(fit.sigma / sigma_for_alpha(alpha, beta) - 1.0) < 0.03
    assert abs(1.0 / fit.beta - 1.0 / beta) < 3.0 * fit.inverse_beta_err + 0.02
    assert abs(fit.beta - beta) < 0.25
    assert abs(fit.center + 0.2) < 0.02
    assert 0.7 < fit.chi2_red < 1.3 and fit.snr > 100


def test_the_fit_recovers_a_gaussian(measure):
    rng = np.random.default_rng(2)
    ny, nx, sigma = 21, 30, 0.7
    centers = np.full(nx, 10.6)
    image = measure.gaussian_pixels(ny, centers, sigma) * rng.uniform(0.5, 2.0, nx) + rng.normal(0, 0.002, (ny, nx))
    fit = measure.fit_profile(image, np.full((ny, nx), 0.002**2), centers, "gaussian")
    assert abs(fit.sigma / sigma - 1.0) < 0.02


def test_the_fit_undoes_a_known_drizzle_kernel(measure):
    rng = np.random.default_rng(3)
    alpha, beta = 0.9, 2.3
    kernel = measure.box_kernel([1.0, 1.0])
    shifts, weights = kernel
    assert np.isclose(weights.sum(), 1.0) and np.isclose(np.sum(weights * shifts**2), 2.0 / 12.0)
    image, variance, trace = _moffat_image(rng, alpha, beta, shifts=kernel)
    with_kernel = measure.fit_profile(image, variance, trace, "moffat", kernel=kernel)
    without = measure.fit_profile(image, variance, trace, "moffat")
    assert abs(with_kernel.sigma / sigma_for_alpha(alpha, beta) - 1.0) < 0.04
    assert abs(with_kernel.beta - beta) < 0.4
    assert without.sigma > 1.1 * with_kernel.sigma  # the kernel's blur, left in


def test_the_fit_models_nod_negatives_with_the_same_profile(measure):
    rng = np.random.default_rng(4)
    alpha, beta, ny, nx = 1.0, 2.5, 25, 40
    centers = np.full(nx, 12.0)
    amplitude = rng.uniform(0.5, 1.5, nx)
    profile = moffat_profile(ny, centers, np.full(nx, alpha), beta)
    negatives = sum(0.5 * moffat_profile(ny, centers + d, np.full(nx, alpha), beta) for d in (-5.0, 5.0))
    image = amplitude * (profile - negatives) + rng.normal(0.0, 0.002, (ny, nx))
    fit = measure.fit_profile(image, np.full((ny, nx), 0.002**2), centers, "moffat",
                              images=[(-5.0, -0.5), (5.0, -0.5)])
    assert abs(fit.sigma / sigma_for_alpha(alpha, beta) - 1.0) < 0.03
    assert abs(fit.beta - beta) < 0.35


def test_the_width_law_fit_recovers_its_parameters(measure):
    wavelength = np.linspace(0.7, 5.2, 30)
    sigma = np.hypot(0.43, 0.106 * wavelength)
    sigma_0, k, rms = measure.fit_width_law(wavelength, sigma)
    assert abs(sigma_0 - 0.43) < 1e-4 and abs(k - 0.106) < 1e-4 and rms < 1e-6
    assert abs(measure.diffraction_k() - diffraction_k(0.105)) < 1e-6


@pytest.mark.skipif(not PN.is_dir(), reason=f"the SMP LMC 58 spectra are not in {PN}")
def test_one_real_disperser_agrees_with_the_packaged_law(measure, packaged):
    """G395M/F290LP of SMP LMC 58, re-measured: inside the packaged prior's width sd, index near its beta."""
    rows = measure.measure_pn_file(next(PN.glob("calib_g395m-f290lp_*.spec.fits.gz")), n_bins=3)
    rows = [r for r in rows if r.selection == "continuum" and measure.usable(r)]
    assert len(rows) == 3
    prior = psf_prior_for(packaged, "NIRSPEC", "G395M", "F290LP")
    for row in rows:
        assert abs(np.log(row.sigma / prior.sigma(row.wavelength))) < prior.width_sd
        assert abs(1.0 / row.moffat.beta - prior.inverse_beta) < 2.0 * prior.inverse_beta_sd


def test_the_reference_entry_is_what_the_script_writes(measure):
    law = {"sigma_0": 0.4281, "sigma_0_err": 0.0101, "k": 0.10583, "k_err": 0.0089, "fractional_rms": 0.053,
           "per_disperser_ratio": {"PRISM/CLEAR": (1.025, 15)}}
    law_gauss = {"sigma_0": 0.568, "k": 0.1207}
    betas = {"beta": (2.13, 0.19), "inverse_beta": (0.469, 0.041), "per_disperser": {"PRISM/CLEAR": (2.22, 0.4, 15)}}
    entry = measure.reference_entry(law, law_gauss, betas)
    json.dumps(entry)
    assert entry["sigma_0"] == 0.428 and entry["k"] == 0.1058 and entry["beta"] == 2.13
    assert entry["disperser"]["PRISM/CLEAR"]["sigma_0"] == round(0.4281 * 1.025, 3)
    prior = psf_prior_for({"instrument": {"NIRSPEC": entry}}, "NIRSPEC", "PRISM", "CLEAR")
    assert prior.beta == 2.22 and prior.width_sd == measure.WIDTH_SD


def test_a_faint_moffat_index_shrinks_toward_the_prior_and_a_bright_one_does_not():
    """``fit_moffat_profile``'s ``inverse_beta_prior``: the data decide where they can, the prior where they cannot."""
    from jwst_optextract.core.profiles.moffat import alpha_for_sigma, fit_moffat_profile

    ny, nx, beta = 25, 300, 3.5
    center = np.full(nx, 12.3)
    alpha = alpha_for_sigma(np.full(nx, 1.2), beta)
    profile = moffat_profile(ny, center, alpha, beta)
    rng = np.random.default_rng(8)
    fitted = {}
    for flux in (3.0, 3000.0):
        data = rng.normal(flux * profile, 1.0)
        for prior in (None, (0.5, 0.02)):
            fit = fit_moffat_profile(data, np.ones((ny, nx), bool), np.ones((ny, nx)), None, center,
                                     alpha_guess=alpha, beta_guess=2.5, alpha_degree=0, inverse_beta_prior=prior)
            fitted[flux, prior] = fit.beta
    assert abs(1 / fitted[3.0, (0.5, 0.02)] - 0.5) < 0.03  # faint: the prior's 1/beta within its sd
    assert abs(fitted[3000.0, (0.5, 0.02)] - beta) < 0.15  # bright: the data's beta whatever the prior
    assert abs(fitted[3000.0, None] - beta) < 0.15


# ------------------------------------------------------------------------------------- the exposure's prior


def _nirspec_prior(packaged):
    return psf_prior_for(packaged, "NIRSPEC", "PRISM", "CLEAR")


def test_an_exposure_prior_needs_enough_bright_sources(packaged):
    instrument = _nirspec_prior(packaged)
    assert exposure_prior(instrument, [0.3] * (EXPOSURE_MIN_SOURCES - 1)) is instrument
    assert exposure_prior(instrument, [0.3, 0.3, np.nan, np.nan]) is instrument  # non-finite values do not count


def test_alike_bright_sources_narrow_the_index_prior_to_theirs(packaged):
    """Point sources sharing the PSF: the faint ones' prior is the bright ones' index, with the floor's sd."""
    instrument = _nirspec_prior(packaged)
    values = np.random.default_rng(3).normal(0.30, 0.01, 12)
    prior = exposure_prior(instrument, values)
    assert prior.sources == 12 and "12 bright sources" in prior.source and instrument.source in prior.source
    assert abs(prior.inverse_beta - values.mean()) < 0.005  # the instrument's 0.45 +- 0.13 hardly counts
    assert 0.05 <= prior.inverse_beta_sd < 0.06  # the least scatter, and the mean's own error
    assert (prior.sigma_0, prior.k, prior.width_sd) == (instrument.sigma_0, instrument.k, instrument.width_sd)


def test_differing_bright_sources_leave_a_wide_prior(packaged):
    """Gaussian-like and winged sources in one exposure: the faint ones are left to their own data."""
    instrument = _nirspec_prior(packaged)
    values = [GAUSSIAN_INVERSE_BETA] * 4 + [0.25, 0.33, 0.5, 0.4]
    prior = exposure_prior(instrument, values)
    assert prior.inverse_beta_sd > np.std(values, ddof=1)  # the scatter and the mean's error
    assert prior.inverse_beta_sd > 0.15


def test_only_a_learnt_prior_weighs_in_the_choice_of_profile(packaged):
    from jwst_optextract.core.profiles.choice import wing_prior_cost

    instrument = _nirspec_prior(packaged)
    learnt = exposure_prior(instrument, [0.29, 0.3, 0.31])
    assert wing_prior_cost(GAUSSIAN_INVERSE_BETA, instrument) == 0.0
    assert wing_prior_cost(GAUSSIAN_INVERSE_BETA, None) == 0.0
    assert wing_prior_cost(None, learnt) == 0.0  # a template: its wings are given
    expected = ((GAUSSIAN_INVERSE_BETA - learnt.inverse_beta) / learnt.inverse_beta_sd) ** 2
    assert wing_prior_cost(GAUSSIAN_INVERSE_BETA, learnt) == pytest.approx(expected)
    assert wing_prior_cost(learnt.inverse_beta, learnt) == 0.0
    # the reference's prior weighs the profiles whose index it held in their fit (a Moffat), and those alone
    held = ((0.25 - instrument.inverse_beta) / instrument.inverse_beta_sd) ** 2
    assert wing_prior_cost(0.25, instrument, held=True) == pytest.approx(held)
    assert wing_prior_cost(0.25, instrument) == 0.0


def test_a_gaussian_source_is_not_given_the_moffat_the_prior_held(scorecard_profile):
    """The scorecard's slit S009 of seed 9393939: a Gaussian source (FWHM 3.7 to 3.3 px, S/N 4.7, 22 rows). The
    Moffat, its index held toward the PRISM prior's (beta 2.2), ended at beta 7.9 with wings heavier than the
    source's, tied the Gaussian on the data (Akaike 14953 against 14955) and was chosen: +3.3 % (5.3 sigma).
    With the prior's term in its criterion the Gaussian is chosen: +0.09 %."""
    scene, _, fit = scorecard_profile(9393939, "S009")
    assert scene.kind == "gaussian"
    assert fit.kind == "gaussian"


def test_faint_sources_take_the_index_the_bright_ones_of_their_exposure_show(packaged, caplog):
    """Ten MOS slits of one Moffat PSF (beta 3.5, far from NIRSpec's 2.1), halving in flux: ``optx_psf``'s driver
    learns the index from the bright ones and fits the faint ones with it. Fitted alone, the faint ones go to a
    Gaussian or to the instrument's index (seeds 1 and 2: beta 2.2-2.6 or Gaussian; here 3.0-3.9)."""
    import logging

    from jwst_optextract.drivers import psf as psf_driver
    from jwst_optextract.drivers.parameters import FitParameters
    from jwst_optextract.simulate import make_multislit

    model, _ = make_multislit(n_slits=10, exp_type="NRS_MSASPEC", profile="moffat", moffat_beta=3.5, nx=400, ny=28,
                              flux=6.0, seed=1, background=0.05, width=(1.0, 1.4))
    params = FitParameters(psf_prior=_nirspec_prior(packaged), scene_background="smooth", shared_psf=True)
    with caplog.at_level(logging.INFO, logger="jwst_optextract"):
        product, run = psf_driver.run(model, params)
    learnt = [r.getMessage() for r in caplog.records if "Moffat index of the exposure" in r.getMessage()]
    assert len(learnt) == 1 and "from 5 slits" in learnt[0]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="jwst_optextract"):
        alone, _ = psf_driver.run(model, dataclasses.replace(params, shared_psf=False))  # the default
    assert not any("Moffat index of the exposure" in r.getMessage() for r in caplog.records)
    assert [abs(1.0 / e.beta - 1.0 / 3.5) < 0.06 for e in alone.profiles[5:9] if e.kind == "moffat"].count(True) < 4
    assert [name for name, _ in run.done] == [slit.name for slit in model.slits]  # every slit, in slit order
    entries = product.profiles
    faint = [entry for entry in entries[5:] if entry.kind == "moffat"]
    assert len(faint) >= 4  # the faintest, at a median S/N of 0.7 per column, may stay Gaussian
    for entry in list(entries[:5]) + faint:
        assert abs(1.0 / entry.beta - 1.0 / 3.5) < 0.06, (entry.name, entry.beta)


def test_optx_extract_alone_learns_the_index_too(packaged, caplog):
    """``optx_extract`` with ``profile_kind=auto`` fitting its own profiles: the same two passes as ``optx_psf``,
    the product's spectra in slit order, and the faint slits' fluxes closer to the truth than fitted alone."""
    import logging

    from jwst_optextract.drivers import extract as extract_driver
    from jwst_optextract.drivers.parameters import ExtractionParameters
    from jwst_optextract.simulate import make_multislit

    model, truths = make_multislit(n_slits=10, exp_type="NRS_MSASPEC", profile="moffat", moffat_beta=3.5, nx=400,
                                   ny=28, flux=6.0, seed=2, background=0.05, width=(1.0, 1.4))
    params = ExtractionParameters(psf_prior=_nirspec_prior(packaged), scene_background="smooth", profile_kind="auto",
                                  shared_psf=True)
    with caplog.at_level(logging.INFO, logger="jwst_optextract"):
        output, summary = extract_driver.run(model, params)
    assert sum("Moffat index of the exposure" in r.getMessage() for r in caplog.records) == 1
    assert [spec.name for spec in output.spec] == [slit.name for slit in model.slits]
    assert [name for name, _ in summary.run.done] == [slit.name for slit in model.slits]
    # seed 2, fitted alone: slits 7-9 Gaussian, -3.7 %, -3.9 %, -4.8 %; learnt: Moffat, -1.5 %, -1.7 %, +2.0 %
    biases = [np.nansum(spec.spec_table["FLUX"]) / np.nansum(truth.flux) - 1 for spec, truth in
              zip(output.spec[6:9], truths[6:9])]
    assert abs(np.mean(biases)) < 0.02


def test_the_simplest_of_the_candidates_within_the_margin_is_chosen():
    from jwst_optextract.core.profiles.choice import AKAIKE_MARGIN, parsimonious

    sizes = {"gaussian": 0, "moffat": 1, "pair": 3, "spline": 40}
    criterion = {"gaussian": 100.0, "moffat": 99.5, "pair": 99.0, "spline": 120.0}
    assert parsimonious(list(sizes), criterion.get, sizes.get) == "gaussian"
    criterion["moffat"], criterion["pair"] = 101.0, 100.0 - AKAIKE_MARGIN - 0.1  # a lead beyond the margin
    assert parsimonious(list(sizes), criterion.get, sizes.get) == "pair"
    criterion["moffat"] = criterion["pair"] + 1.0  # and the simplest within the margin of it is kept
    assert parsimonious(list(sizes), criterion.get, sizes.get) == "moffat"


def test_a_faint_gaussian_source_is_not_given_a_pair_that_wins_by_a_point(scorecard_profile):
    """The scorecard's slit S055 of seed 4545454 (a Gaussian source, S/N 2.6): a pair with 4 % of the flux 6.6 rows
    from the source beat the Gaussian by one point of Akaike's criterion (26651 against 26652) and took 5.3 %
    too much flux. Within `AKAIKE_MARGIN` the simpler is kept: +0.8 %."""
    scene, _, fit = scorecard_profile(4545454, "S055")
    assert scene.kind == "gaussian"
    assert fit.kind == "gaussian"


def test_a_companion_the_data_do_not_detect_by_itself_is_no_pair(scorecard_profile):
    """The scorecard's slit S083 of seed 1711363111 (a Gaussian source, S/N 2.9 per column, 40 rows): a pair
    whose second source held 92-98 % of the flux and the first the rest, 6 px away, beat the Gaussian by 5.6 in
    Akaike's criterion and came out 10.2 % high (4.2 sigma_shape). Its fainter source has S/N 3.3 by itself
    (`companion_snr`), below 5: no pair; the Gaussian, +1.9 %."""
    from jwst_optextract.core.profiles.choice import companion_snr

    scene, _, fit = scorecard_profile(1711363111, "S083")
    assert scene.kind == "gaussian"
    assert fit.kind == "gaussian"
    # a source of flux 10 per column and variance 4 over 100 columns: S/N 50 in all; a tenth of it, S/N 5
    flux, variance = np.full(100, 10.0), np.full(100, 4.0)
    assert companion_snr(flux, variance, np.full(100, 0.9)) == pytest.approx(5.0)
    assert companion_snr(flux, variance, np.full(100, 0.1)) == pytest.approx(5.0)  # either source the fainter
    assert companion_snr(flux, variance, np.full(100, 0.5)) == pytest.approx(25.0)
