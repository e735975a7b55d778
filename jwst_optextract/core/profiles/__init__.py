"""Cross-dispersion profile kinds: each one module with one `Profile` class, registered in `PROFILES` by name.

A new kind is a new module here whose class follows `Profile` and is
decorated with ``@register("name")``, and one import line below
(``from .name import NameProfile as NameProfile``): the steps' options, the
product (de)serialisation, the time-series trace shifts, the plots and the
exports of this package and of `jwst_optextract.core` take it from the registry.
"""

from .base import PROFILES, Profile, ProfileProblem, profile_class, register

# One line a kind's module, in the order the steps list them.
from .spline import Spline2DProfile as Spline2DProfile, SplineProfile as SplineProfile, fit_spline_profile
from .gaussian import GaussianProfile as GaussianProfile, fit_gaussian_profile, gaussian_profile
from .moffat import MoffatProfile as MoffatProfile, fit_moffat_profile, moffat_profile
from .pair import PairProfile as PairProfile, pair_profile
from .template import ProfileTemplate, TemplateProfile as TemplateProfile, fit_template_profile

__all__ = [
    "PROFILES", "Profile", "ProfileProblem", "ProfileTemplate", "fit_gaussian_profile", "fit_moffat_profile",
    "fit_spline_profile", "fit_template_profile", "gaussian_profile", "moffat_profile", "pair_profile",
    "profile_class", "register",
    *(kind.__name__ for kind in PROFILES.values()),  # every kind's class, also exported by `jwst_optextract.core`
]
