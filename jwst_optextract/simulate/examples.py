"""Realistic calibrated example files on disk (:func:`write_example`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from stdatamodels.jwst import datamodels

from .exposures import make_multislit, make_tso
from .metadata import new_model
from .pixels import simulate_slit
from .scene import SceneConfig, resolve_config

__all__ = ["write_example"]

log = logging.getLogger(__name__)

_EXAMPLES: dict[str, dict[str, Any]] = {
    "nirspec_fs": dict(
        exp_type="NRS_FIXEDSLIT",
        slit_name="S200A1",
        units="MJy",
        nx=1024,
        ny=32,
        lines=6,
        cosmic_ray_fraction=3e-4,
        hot_pixels=3,
        nan_fraction=2e-3,
        nan_columns=1,
    ),
    "nirspec_mos": dict(
        exp_type="NRS_MSASPEC",
        units="MJy",
        nx=1024,
        ny=24,
        width=(0.8, 1.4),
        background=2.0,
        trace_curvature=1.0,
        cosmic_ray_fraction=3e-4,
        hot_pixels=2,
        nan_fraction=2e-3,
    ),
    "miri_lrs": dict(
        exp_type="MIR_LRS-FIXEDSLIT",
        slit_name="LRS",
        units="MJy/sr",
        dispersion_axis=2,
        nx=388,
        ny=44,
        wavelength_range=(5.0, 12.0),
        width=(0.9, 2.2),
        profile="moffat",
        trace_center=22.3,
        trace_curvature=0.5,
        trace_tilt=0.3,
        background=50.0,
        background_gradient=(0.1, 0.5),
        read_noise=30.0,
        flux=3000.0,
        lines=3,
        cosmic_ray_fraction=3e-4,
        hot_pixels=2,
        nan_fraction=1e-3,
    ),
    "nirspec_bots": dict(
        exp_type="NRS_BRIGHTOBJ",
        slit_name="S1600A1",
        units="MJy",
        nx=512,
        ny=32,
        nints=20,
        flux=20000.0,
        exptime=60.0,
        jitter_rms=0.02,
        lines=0,
        cosmic_ray_fraction=1e-4,
    ),
}

_EXAMPLE_FILENAMES = {
    "nirspec_fs": "jw01234001001_04101_00001_nrs1_cal.fits",
    "nirspec_mos": "jw01234002001_03101_00001_nrs1_cal.fits",
    "miri_lrs": "jw01234003001_03102_00001_mirimage_cal.fits",
    "nirspec_bots": "jw01234004001_04101_00001-seg001_nrs1_calints.fits",
}


def write_example(path: str | os.PathLike[str], kind: str = "nirspec_fs", seed: int = 0) -> Path:
    """Write a realistic calibrated example file.

    Parameters
    ----------
    path : str or path-like
        Output file name, or an existing directory in which a JWST-style
        file name (``jw..._cal.fits`` / ``_calints.fits``) is created.
    kind : {"nirspec_fs", "nirspec_mos", "miri_lrs", "nirspec_bots"}
        * ``nirspec_fs``: ``MultiSlitModel`` with one S200A1 slit, MJy.
        * ``nirspec_mos``: ``MultiSlitModel`` with three MSA slitlets, MJy.
        * ``miri_lrs``: ``ImageModel`` (as the pipeline's LRS fixed-slit
          ``cal`` product), MJy/sr, dispersion along y.
        * ``nirspec_bots``: 3D ``SlitModel`` (``calints``) with 20
          integrations and a transit.
    seed : int
        Random seed.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    if kind not in _EXAMPLES:
        raise ValueError(f"kind must be one of {sorted(_EXAMPLES)}, got {kind!r}")
    path = Path(path)
    if path.is_dir():
        path = path / _EXAMPLE_FILENAMES[kind]
    cfg = SceneConfig(**_EXAMPLES[kind], seed=seed)
    model: datamodels.JwstDataModel
    if kind == "nirspec_fs":
        model, _ = make_multislit(1, cfg)
    elif kind == "nirspec_mos":
        model, _ = make_multislit(3, cfg)
    elif kind == "nirspec_bots":
        model, _ = make_tso(cfg.nints or 20, cfg)
    else:
        real = simulate_slit(resolve_config(cfg, {}))
        model = new_model(datamodels.ImageModel, real, slit_attrs=False)
    with model:
        model.save(path)
    log.info("Wrote %s example to %s", kind, path)
    return path
