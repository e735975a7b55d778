"""Pure-array spectral extraction algorithms (numpy/scipy only, no datamodels).

Arrays are shaped ``(..., ny, nx)`` with the dispersion along the last axis and
any leading axis for integrations; ``mask`` arrays are True for good pixels.
"""

from .box import BoxResult, aperture_weights, box_extract, trace_aperture
from .optimal import OptimalResult, optimal_extract
from .profile import GaussianProfile, fit_gaussian_profile, gaussian_profile
from .trace import find_trace

__all__ = [
    "BoxResult",
    "GaussianProfile",
    "OptimalResult",
    "aperture_weights",
    "box_extract",
    "find_trace",
    "fit_gaussian_profile",
    "gaussian_profile",
    "optimal_extract",
    "trace_aperture",
]
