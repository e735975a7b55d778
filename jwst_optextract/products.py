"""Trace and profile products: self-describing ASDF datamodels with schemas of their own.

`TraceModel` and `ProfileModel` are jwst datamodels (they carry the usual
``meta``), whose schemas ship in ``jwst_optextract/schemas`` and are registered
with asdf through the ``asdf.resource_mappings`` entry point. Saved as ``.asdf``
they open with plain ``asdf.open`` (a tree of numbers and arrays), with
``stdatamodels`` datamodels, or with these classes.
"""

from __future__ import annotations

import importlib.resources

from asdf.resource import DirectoryResourceMapping
from stdatamodels.jwst.datamodels import JwstDataModel

__all__ = ["ProfileModel", "TraceModel", "get_resource_mappings"]

SCHEMA_PREFIX = "http://jwst-optextract.org/schemas/"


class TraceModel(JwstDataModel):
    """Traces of the slits of one exposure (``traces``: one entry per slit)."""

    schema_url = SCHEMA_PREFIX + "trace.schema"

    def trace_for(self, name: str):
        """The entry of slit ``name``, or None."""
        return next((entry for entry in self.traces if entry.name == name), None)


class ProfileModel(JwstDataModel):
    """Cross-dispersion profiles of the slits of one exposure (``profiles``: one entry per slit)."""

    schema_url = SCHEMA_PREFIX + "profile.schema"

    def profile_for(self, name: str):
        """The entry of slit ``name``, or None."""
        return next((entry for entry in self.profiles if entry.name == name), None)


def get_resource_mappings() -> list[DirectoryResourceMapping]:
    """The package's schemas, for the ``asdf.resource_mappings`` entry point."""
    root = importlib.resources.files("jwst_optextract") / "schemas"
    return [DirectoryResourceMapping(root, SCHEMA_PREFIX)]
