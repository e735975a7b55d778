"""The ``detector -> slit_frame -> world`` gwcs of a simulated slit cutout (see the package docstring)."""

from __future__ import annotations

import numpy as np
from astropy import coordinates as coord
from astropy import units as u
from astropy.modeling import models as am
from gwcs import coordinate_frames as cf
from gwcs import wcs as gwcs_wcs

from .scene import WAVE_TILT, SceneConfig, linear_dispersion

RA0, DEC0, _PA = 53.16, -27.78, 30.0  # degrees
_PIXSCALE_ARCSEC = 0.1
_NIRSPEC_SLIT_WIDTH = {"S200A1": 0.2, "S200A2": 0.2, "S200B1": 0.2, "S400A1": 0.4, "S1600A1": 1.6}


def _trace_model(cfg: SceneConfig) -> am.Model:
    """Astropy model of the nominal (non-jittered) trace row versus column."""
    return (
        am.Shift(-0.5 * (cfg.nx - 1))
        | am.Scale(1.0 / (cfg.nx - 1))
        | am.Polynomial1D(2, c0=cfg.center, c1=cfg.trace_tilt, c2=4.0 * cfg.trace_curvature)
    )


def build_wcs(cfg: SceneConfig, ra: float = RA0, dec: float = DEC0) -> gwcs_wcs.WCS:
    """Build the ``detector -> slit_frame -> world`` gwcs of a slit cutout.

    Pixel coordinates are 0-based in the cutout.  In the canonical layout
    (dispersion along x), with ``d = y - trace(x)``::

        x_slit = 0
        y_slit = d / ny
        lambda = lambda0 + dlam * x + WAVE_TILT * dlam * d

    and the inverse ``(y_slit, lambda) -> (x, y)`` is exact.  For
    ``dispersion_axis=2`` the detector inputs are swapped.  ``slit_frame ->
    world`` is an affine map of slit units to the tangent plane (slit length
    ``ny * 0.1`` arcsec, position angle 30 deg) followed by a gnomonic
    projection centred on ``(ra, dec)``.
    """
    lam0, dlam = linear_dispersion(cfg)
    ny = cfg.ny
    tilt = WAVE_TILT * dlam
    trace = _trace_model(cfg)
    pick_x = am.Mapping((0,), n_inputs=2)
    pick_y = am.Mapping((1,), n_inputs=2)

    # detector (canonical x, y) -> slit frame
    offset = pick_y - (pick_x | trace)  # d = y - trace(x)
    x_slit = pick_x | am.Const1D(0.0)
    y_slit = offset | am.Scale(1.0 / ny)
    lam = (pick_x | am.Linear1D(slope=dlam, intercept=lam0)) + (offset | am.Scale(tilt))
    det2slit = am.Mapping((0, 1, 0, 1, 0, 1)) | (x_slit & y_slit & lam)

    # slit frame (x_slit, y_slit, lambda) -> canonical detector (x, y)
    # with d = ny * y_slit: x = (lambda - lam0 - tilt * d) / dlam ; y = trace(x) + d
    xdet = (pick_y - (pick_x | am.Scale(tilt * ny))) | am.Shift(-lam0) | am.Scale(1.0 / dlam)
    ydet = (xdet | trace) + (pick_x | am.Scale(float(ny)))
    slit2det = am.Mapping((1, 2, 1, 2)) | (xdet & ydet)

    if cfg.dispersion_axis == 2:
        det2slit = am.Mapping((1, 0)) | det2slit
        slit2det = slit2det | am.Mapping((1, 0))
    det2slit.inverse = slit2det

    width_arcsec = _NIRSPEC_SLIT_WIDTH.get(cfg.slit_name, 0.5)
    length_deg = ny * _PIXSCALE_ARCSEC / 3600.0
    pa = np.deg2rad(_PA)
    rot = np.array([[np.cos(pa), -np.sin(pa)], [np.sin(pa), np.cos(pa)]])
    matrix = rot @ np.diag([width_arcsec / 3600.0, length_deg])
    sky = (
        am.AffineTransformation2D(matrix=matrix, translation=[0.0, 0.0])
        | am.Pix2Sky_TAN()
        | am.RotateNative2Celestial(ra, dec, 180.0)
    )
    slit2world = sky & am.Identity(1)

    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    spectral = cf.SpectralFrame(
        name="spectral", axes_order=(2,), unit=(u.micron,), axes_names=("wavelength",)
    )
    slit_frame = cf.CompositeFrame(
        [
            cf.Frame2D(
                name="slit_spatial",
                axes_order=(0, 1),
                unit=("", ""),
                axes_names=("x_slit", "y_slit"),
            ),
            spectral,
        ],
        name="slit_frame",
    )
    world = cf.CompositeFrame(
        [
            cf.CelestialFrame(
                reference_frame=coord.ICRS(), name="sky", axes_order=(0, 1), unit=(u.deg, u.deg)
            ),
            spectral,
        ],
        name="world",
    )
    wcs = gwcs_wcs.WCS([(detector, det2slit), (slit_frame, slit2world), (world, None)])
    nrows, ncols = (cfg.ny, cfg.nx) if cfg.dispersion_axis == 1 else (cfg.nx, cfg.ny)
    wcs.bounding_box = ((-0.5, ncols - 0.5), (-0.5, nrows - 0.5))
    return wcs
