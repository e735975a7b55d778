"""The datamodel I/O layer: the only part of the package that touches stdatamodels."""

from .opening import open_datamodel
from .slits import SlitData, geometry_cache, iter_slits, read_slit, slit_store
from .spectra import FluxUnits, Spectrum, flux_units, make_output_model, to_specmodel

__all__ = [
    "FluxUnits",
    "SlitData",
    "Spectrum",
    "flux_units",
    "geometry_cache",
    "iter_slits",
    "make_output_model",
    "open_datamodel",
    "read_slit",
    "slit_store",
    "to_specmodel",
]
