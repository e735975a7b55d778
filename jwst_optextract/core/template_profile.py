"""The template profile's former module; it is now the ``template`` kind of `jwst_optextract.core.profiles`."""

from .profiles.template import ProfileTemplate, TemplateProfile, fit_template_profile

__all__ = ["ProfileTemplate", "TemplateProfile", "fit_template_profile"]
