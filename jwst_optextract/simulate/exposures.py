"""The datamodel builders: simulated exposures as calwebb_spec2 writes them, with their truth.

:func:`make_slit` (a ``SlitModel``), :func:`make_multislit` (a ``MultiSlitModel`` of MOS or
fixed slits), :func:`make_nods` (the nodded exposures of one source), :func:`make_tso` (a
``calints``-like time series with a transit) and :func:`add_background` (a background of any
shape added to a simulated exposure).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from stdatamodels.jwst import datamodels

from .metadata import NIRSPEC_FS_SLITS, fill_exposure_meta, fill_slit, new_model
from .pixels import simulate_slit
from .scene import SceneConfig, SceneTruth, as_rng, resolve_config, transit_curve, validate_config, wavelength_canonical
from .wcs import DEC0, RA0

__all__ = ["make_slit", "make_multislit", "make_tso", "make_nods", "add_background"]


def make_slit(
    config: SceneConfig | None = None, **overrides: Any
) -> tuple[datamodels.SlitModel, SceneTruth]:
    """Simulate a single-slit exposure.

    Parameters
    ----------
    config : SceneConfig, optional
        Base configuration (defaults to ``SceneConfig()``).
    **overrides
        Any :class:`SceneConfig` field, overriding ``config``.

    Returns
    -------
    model : stdatamodels.jwst.datamodels.SlitModel
        2D (or 3D if ``nints`` is set) calibrated slit model with WCS.
    truth : SceneTruth
        The known truth.

    Examples
    --------
    >>> model, truth = make_slit(nx=256, seed=3)
    >>> model.data.shape
    (32, 256)
    """
    cfg = resolve_config(config, overrides)
    real = simulate_slit(cfg)
    real.extras.update(ystart=_default_ystart(cfg))
    return new_model(datamodels.SlitModel, real), real.truth


def _default_ystart(cfg: SceneConfig) -> int:
    """Plausible 1-based detector row of the cutout."""
    return 1 if cfg.exp_type in ("NRS_BRIGHTOBJ", "MIR_LRS-SLITLESS") else 1000


def make_multislit(
    n_slits: int = 3, config: SceneConfig | None = None, **overrides: Any
) -> tuple[datamodels.MultiSlitModel, list[SceneTruth]]:
    """Simulate a multi-slit exposure (NIRSpec MOS or fixed slits).

    Each slit gets its own name, source id, seed, flux (halving from slit to
    slit), sky position and a trace centre shifted by up to one pixel.  For
    ``exp_type="NRS_MSASPEC"`` the slit names are slitlet numbers and MSA
    attributes (``shutter_state`` etc.) are set; otherwise fixed-slit names
    are used (starting with ``config.slit_name``).

    Parameters
    ----------
    n_slits : int
        Number of slits.
    config : SceneConfig, optional
        Base configuration for all slits.
    **overrides
        Any :class:`SceneConfig` field.

    Returns
    -------
    model : stdatamodels.jwst.datamodels.MultiSlitModel
        The exposure, with ``model.slits[i]`` the slits.
    truths : list of SceneTruth
        Truth of every slit, in the same order.
    """
    if n_slits < 1:
        raise ValueError("n_slits must be >= 1")
    base = resolve_config(config, overrides)
    rng = as_rng(base.seed)
    seeds = rng.integers(0, 2**63 - 1, size=n_slits)
    offsets = rng.uniform(-1.0, 1.0, size=n_slits)
    model = datamodels.MultiSlitModel()
    fill_exposure_meta(model, base)
    mos = base.exp_type == "NRS_MSASPEC"
    if not mos:
        others = [s for s in NIRSPEC_FS_SLITS if s != base.slit_name]
        fs_names = [base.slit_name, *others]
    truths = []
    for i in range(n_slits):
        if mos:
            name = str(i + 1 + 10 * base.source_id)
        else:
            name = fs_names[i] if i < len(fs_names) else f"SLIT{i + 1}"
        cfg = dataclasses.replace(
            base,
            slit_name=name,
            source_id=base.source_id + i,
            seed=int(seeds[i]),
            flux=base.flux * 0.5**i,
            trace_center=base.center + offsets[i],
        )
        validate_config(cfg)
        real = simulate_slit(cfg)
        real.extras.update(
            radec=(RA0 + 0.003 * i, DEC0 - 0.002 * i),
            xstart=1 + 37 * i,
            ystart=150 + 60 * i,
            slitlet_id=int(name) if mos else i + 1,
            shutter_id=1000 + 3 * i,
            quadrant=1 + i % 4,
        )
        slit = datamodels.SlitModel()
        fill_exposure_meta(slit, cfg)  # as extract_2d does (slit.update(input))
        fill_slit(slit, real)
        model.slits.append(slit)
        truths.append(real.truth)
    return model, truths


def make_nods(
    n_nods: int = 3, repeats: int = 1, nod_throw: float = 5.0, config: SceneConfig | None = None,
    **overrides: Any,
) -> tuple[list[datamodels.MultiSlitModel], list[SceneTruth]]:
    """Simulate the exposures of one source nodded along its slit (MOS or fixed slit).

    Exposure ``k`` (of ``n_nods * repeats``) is at nod position ``k % n_nods``;
    the source sits ``(position - (n_nods - 1) / 2) * nod_throw`` pixels from
    the slit's centre row. Every exposure sees the same spectrum, background
    and wavelengths through independent noise and defects, as real nods do;
    each WCS is centred on its own source position (as NIRSpec's is on the
    source shutter). MOS exposures say their nod position in
    ``shutter_state`` (``"x11"``, ``"1x1"``, ``"11x"`` for three nods), all in
    ``meta.dither.position_number``.

    Parameters
    ----------
    n_nods, repeats : int
        Nod positions, and exposures at each.
    nod_throw : float
        Pixels between neighbouring nod positions.
    config : SceneConfig, optional
        Base configuration (``exp_type="NRS_MSASPEC"`` for MOS metadata).
    **overrides
        Any :class:`SceneConfig` field.

    Returns
    -------
    models : list of MultiSlitModel
        One exposure each, with one slit.
    truths : list of SceneTruth
        Truth of every exposure, in the same order.
    """
    if n_nods < 1 or repeats < 1:
        raise ValueError("n_nods and repeats must be >= 1")
    base = resolve_config(config, overrides)
    rng = as_rng(base.seed)
    spectrum_seed = base.spectrum_seed if base.spectrum_seed is not None else int(rng.integers(0, 2**31))
    seeds = rng.integers(0, 2**63 - 1, size=n_nods * repeats)
    wavelength = wavelength_canonical(base)
    mos = base.exp_type == "NRS_MSASPEC"
    models, truths = [], []
    for k, seed in enumerate(seeds):
        position = k % n_nods
        cfg = dataclasses.replace(
            base, seed=int(seed), spectrum_seed=spectrum_seed,
            trace_center=base.center + (position - (n_nods - 1) / 2) * nod_throw,
        )
        validate_config(cfg)
        real = simulate_slit(cfg)
        real.wavelength = np.ascontiguousarray(
            wavelength if cfg.dispersion_axis == 1 else wavelength.T, dtype=np.float32)
        real.truth.wavelength = real.wavelength.astype(float)
        real.extras.update(xstart=1, ystart=_default_ystart(cfg), slitlet_id=base.source_id,
                           shutter_id=1000 + base.source_id, quadrant=1)
        model = datamodels.MultiSlitModel()
        fill_exposure_meta(model, cfg)
        model.meta.observation.exposure_number = str(k + 1)
        model.meta.dither.position_number = position + 1
        model.meta.dither.total_points = n_nods
        model.meta.filename = f"jw01234001001_03101_{k + 1:05d}_nrs1_cal.fits"
        slit = datamodels.SlitModel()
        fill_exposure_meta(slit, cfg)
        fill_slit(slit, real)
        if mos:
            slit.name = str(base.source_id)
            slit.shutter_state = "".join("x" if i == position else "1" for i in range(n_nods))
        model.slits.append(slit)
        models.append(model)
        truths.append(real.truth)
    return models, truths


def add_background(
    model: datamodels.SlitModel, truth: SceneTruth, background: np.ndarray, photons_per_unit: float,
    seed: int | np.random.Generator | None = 0,
) -> None:
    """Add a background of any shape to a simulated single-frame exposure, in place.

    Its photons are an independent Poisson draw, so the data stay exactly
    Poisson in the total rate; ``var_poisson`` and ``err`` are derived from the
    new data as the pipeline would, and ``truth.background`` and
    ``truth.variance`` gain the background and its variance.

    Parameters
    ----------
    model : SlitModel
        A 2D exposure from `make_slit` (dispersion along x).
    truth : SceneTruth
        Its truth.
    background : ndarray
        ``(ny, nx)`` background rate in the data's units.
    photons_per_unit : float
        Counted photons per unit of the data (``exptime * gain`` for DN/s).
    seed : int or numpy.random.Generator, optional
        Random seed of the photons.
    """
    rng = as_rng(seed)
    data = model.data.astype(np.float64) + rng.poisson(background * photons_per_unit) / photons_per_unit
    good = ~truth.flagged
    model.data = np.where(good, data, np.nan).astype(np.float32)
    model.var_poisson = np.where(good, np.maximum(data, 0) / photons_per_unit, 0).astype(np.float32)
    model.err = np.sqrt(model.var_poisson + model.var_rnoise).astype(np.float32)
    truth.background = background
    truth.variance = truth.variance + background / photons_per_unit


def make_tso(
    nints: int = 50, config: SceneConfig | None = None, **overrides: Any
) -> tuple[datamodels.SlitModel | datamodels.CubeModel, SceneTruth]:
    """Simulate a time-series (``calints``-like) exposure with a transit.

    The source flux of every integration is multiplied by a trapezoidal
    transit light curve of depth ``transit_depth``; ``jitter_rms`` adds a
    random trace shift per integration.  Without ``config`` the defaults are
    NIRSpec BOTS-like (``NRS_BRIGHTOBJ``, slit ``S1600A1``).

    Parameters
    ----------
    nints : int
        Number of integrations (overrides ``config.nints``).
    config : SceneConfig, optional
        Base configuration.
    **overrides
        Any :class:`SceneConfig` field (except ``nints``).

    Returns
    -------
    model : SlitModel or CubeModel
        A 3D ``SlitModel`` (``CubeModel`` for ``exp_type="MIR_LRS-SLITLESS"``)
        with an ``INT_TIMES`` table.
    truth : SceneTruth
        Truth; ``truth.flux`` is ``(nints, nx)``.
    """
    defaults = {"exp_type": "NRS_BRIGHTOBJ", "slit_name": "S1600A1"}
    cfg = resolve_config(config, {**overrides, "nints": int(nints)}, **defaults)
    real = simulate_slit(cfg, white=transit_curve(cfg.nints, cfg.transit_depth))
    real.extras.update(ystart=_default_ystart(cfg))
    if cfg.exp_type == "MIR_LRS-SLITLESS":
        return new_model(datamodels.CubeModel, real, slit_attrs=False), real.truth
    return new_model(datamodels.SlitModel, real), real.truth
