"""The spline profile's former module; it is now the ``spline`` kind of `jwst_optextract.core.profiles`."""

from .profiles.spline import SplineProfile, fit_spline_profile, offset_knots

__all__ = ["SplineProfile", "fit_spline_profile", "offset_knots"]
