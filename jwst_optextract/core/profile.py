"""The parametric profiles' former module; they are now profile kinds in `jwst_optextract.core.profiles`."""

from .profiles.gaussian import GaussianProfile, fit_gaussian_profile, gaussian_profile
from .profiles.moffat import MoffatProfile, fit_moffat_profile, moffat_profile
from .profiles.shape import fit_shape

__all__ = [
    "GaussianProfile", "MoffatProfile", "fit_gaussian_profile", "fit_moffat_profile", "fit_shape",
    "gaussian_profile", "moffat_profile",
]
