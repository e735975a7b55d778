"""Synthetic JWST slit spectroscopy with known truth.

This package builds realistic JWST calibrated 2D (``*_cal``) and 3D
(``*_calints``) spectroscopic datamodels -- :class:`~stdatamodels.jwst.datamodels.SlitModel`,
:class:`~stdatamodels.jwst.datamodels.MultiSlitModel`,
:class:`~stdatamodels.jwst.datamodels.CubeModel` and (for
:func:`write_example` with MIRI LRS) :class:`~stdatamodels.jwst.datamodels.ImageModel` --
together with a :class:`SceneTruth` describing exactly what was simulated.
It is meant for unit tests (bias and variance of an extraction compared
with the Cramér–Rao bound), documentation demos and benchmarks.

Geometry
--------
All arrays are built in a *canonical* layout ``(ny, nx)`` (``(nints, ny, nx)``
for 3D data) in which the dispersion runs along ``x`` (the last axis).  For
``dispersion_axis=2`` (MIRI LRS-like) every image-shaped array is transposed at
the end, so that the data have shape ``(..., nx, ny)``.  Row ``j`` of the
canonical image covers ``[j - 0.5, j + 0.5]`` (pixel-centre convention).

The trace is ``trace(x) = trace_center + trace_tilt * u + 4 * trace_curvature * u**2``
with ``u = (x - (nx - 1) / 2) / (nx - 1)`` in ``[-1/2, 1/2]``, i.e. the trace
changes by ``trace_tilt`` pixels across the detector and the edges sag by
``trace_curvature`` pixels relative to the middle column.  The
cross-dispersion profile is the Gaussian / Moffat / double-Gaussian profile
*integrated over each pixel* (analytically: Gaussian CDF differences and the
closed-form Moffat CDF, written with the regularised incomplete beta
function) and normalised to sum to one over the ``ny`` rows of each column.

Noise model
-----------
With ``t = exptime`` (seconds), ``g = gain`` (e-/DN), ``sigma_r = read_noise``
(e-), ``f = flat_error`` and the expected rate in DN/s::

    R[y, x] = flux_x[x] * profile[y, x] + background[y, x],

the observed rate is::

    data = (Poisson(t * g * max(R, 0)) + Normal(0, sigma_r)) / (t * g)
    data *= 1 + f * Normal(0, 1)          (only if f > 0)

The *true* variance of every pixel (:attr:`SceneTruth.variance`) is therefore

    V = (max(R, 0) / (t g) + sigma_r**2 / (t g)**2) * (1 + f**2) + (f R)**2,

which equals ``max(R,0)/(t g) + sigma_r**2/(t g)**2 + (f R)**2`` to first order
in ``f**2`` (exactly so for ``f = 0``).  The variance arrays stored in the
model are derived from the *data*, as the JWST pipeline does:
``var_poisson = max(data, 0) / (t g)``, ``var_rnoise = sigma_r**2 / (t g)**2``,
``var_flat = (f * data)**2`` and ``err = sqrt(var_poisson + var_rnoise + var_flat)``.
Because ``var_poisson`` uses the noisy data, it is a noisy (and, for optimal
weighting, slightly biased) estimate of the truth -- exactly the situation an
extraction code faces with real data.

Defects are injected afterwards: cosmic rays and hot pixels are positive
spikes of 20-200 sigma that are *not* flagged in DQ (their ``var_poisson``,
``var_flat`` and ``err`` are recomputed from the spiked data, like the
pipeline would); flagged pixels and whole flagged columns are set to NaN in
``data`` and ``err``, 0 in the variance arrays and get ``DO_NOT_USE`` in DQ.
For calibrated units (``"MJy/sr"``, ``"MJy"``) data are multiplied by a
constant conversion factor ``k`` (:data:`MJYSR_PER_DNS`, :data:`MJY_PER_DNS`)
and variances by ``k**2``; all truth quantities are reported in the final
data units.  The simulation and the truth are float64; the model arrays are
float32 like pipeline products.  With ``noise=False`` the data equal the
expected rate while ``SceneTruth.variance`` still describes the noise model.

Examples
--------
>>> from jwst_optextract.simulate import make_slit, cramer_rao_variance
>>> model, truth = make_slit(nx=512, background=5.0, cosmic_ray_fraction=1e-3, seed=1)
>>> model.data.shape, truth.flux.shape
((32, 512), (512,))
>>> bound = cramer_rao_variance(truth)  # best achievable variance per column

WCS
---
Every model carries a :class:`gwcs.wcs.WCS` with the frames
``detector -> slit_frame -> world``.  ``slit_frame`` is (``x_slit``,
``y_slit``, wavelength) where ``y_slit`` is the cross-dispersion offset from
the nominal (non-jittered) trace in units of the slit length (``1 / ny`` per
pixel), so the source sits at ``source_xpos = source_ypos = 0``; ``world`` is
(ra, dec, wavelength [micron]).  The wavelength is linear in the dispersion
coordinate with a small dependence on the distance from the trace (tilted
iso-wavelength lines), and the ``WAVELENGTH`` array is the same function
evaluated at the pixel centres.  The transform from ``slit_frame`` back to
``detector`` is exact, so :func:`jwst.extract_1d` source-location code works.

The package, by concept (the names above are re-exported here, the one public path):

- `~jwst_optextract.simulate.scene`: what is simulated -- :class:`SceneConfig`,
  :class:`SceneTruth`, the trace, wavelengths and spectrum, and :func:`cramer_rao_variance`;
- `~jwst_optextract.simulate.pixels`: the pixel model -- pixel-integrated profiles, noise,
  pipeline-like variances, defects, units and the output layout (numpy and scipy only);
- `~jwst_optextract.simulate.wcs`: the ``detector -> slit_frame -> world`` gwcs;
- `~jwst_optextract.simulate.metadata`: exposure and slit metadata of the datamodels;
- `~jwst_optextract.simulate.exposures`: the datamodel builders :func:`make_slit`,
  :func:`make_multislit`, :func:`make_nods`, :func:`make_tso` and :func:`add_background`;
- `~jwst_optextract.simulate.examples`: :func:`write_example`, realistic files on disk.
"""

from .examples import write_example
from .exposures import add_background, make_multislit, make_nods, make_slit, make_tso
from .scene import MJY_PER_DNS, MJYSR_PER_DNS, SceneConfig, SceneTruth, cramer_rao_variance

__all__ = [
    "SceneTruth",
    "SceneConfig",
    "make_slit",
    "make_multislit",
    "make_tso",
    "make_nods",
    "add_background",
    "write_example",
    "cramer_rao_variance",
    "MJYSR_PER_DNS",
    "MJY_PER_DNS",
]
