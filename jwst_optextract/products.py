"""The trace and profile products under their released name: they live in `jwst_optextract.io.products`.

``from jwst_optextract.products import TraceModel, ProfileModel, read_template``
keeps working for scripts and notebooks written against earlier versions.
"""

from .io.products import (
    SCHEMA_PREFIX,
    TEMPLATE_KEYS,
    ProfileModel,
    TraceModel,
    get_resource_mappings,
    new_profile_model,
    new_trace_model,
    read_template,
)

__all__ = ["SCHEMA_PREFIX", "TEMPLATE_KEYS", "ProfileModel", "TraceModel", "get_resource_mappings",
           "new_profile_model", "new_trace_model", "read_template"]
