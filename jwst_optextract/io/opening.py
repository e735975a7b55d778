"""Opening JWST datamodels: ``datamodels.open``, without its cost growing with the square of the slits.

stdatamodels attaches every array of a FITS product by looking its extension
up by ``(EXTNAME, EXTVER)`` in the ``HDUList``, and astropy finds each by a
scan of all the headers: a MOS ``_cal`` file of 200 slits (1200 extensions)
takes 31 s to open, 60 % of it in those scans. `open_datamodel` gives
stdatamodels an ``HDUList`` that finds an extension by name and version in a
dictionary; the model is the one ``datamodels.open`` makes.

It does not validate the file's ASDF tree against the schemas of its tags
again (``AsdfConfig.validate_on_read``): asdf validated it when it was
written, and for a MOS exposure it is the schemas of thousands of WCS
transforms, a third of the opening. A tree that does not hold what its tags
say still fails where it is converted (a transform that cannot be built).
"""

from __future__ import annotations

import os
from pathlib import Path

import asdf
from astropy.io import fits
from stdatamodels.jwst import datamodels

__all__ = ["IndexedHDUList", "open_datamodel"]


def open_datamodel(item):
    """``datamodels.open(item)``, faster for FITS files of many extensions (a model is returned as is).

    A FITS file whose primary header names its datamodel (``DATAMODL``, as
    the pipeline writes) is read as that model's constructor reads a path;
    anything else goes to ``datamodels.open``.
    """
    if isinstance(item, datamodels.JwstDataModel):
        return item
    if not isinstance(item, (str, os.PathLike)) or Path(item).suffix.lower() not in (".fits", ".fit"):
        return datamodels.open(item)
    with fits.open(item, memmap=False) as hdulist:  # as the constructors read a path: arrays read into memory
        cls = getattr(datamodels, str(hdulist[0].header.get("DATAMODL", "")), None)
        if not (isinstance(cls, type) and issubclass(cls, datamodels.JwstDataModel)):
            return datamodels.open(item)
        with asdf.config_context() as config:
            config.validate_on_read = False
            model = cls(IndexedHDUList(list(hdulist)))
    model.meta.filename = Path(item).name
    return model


class IndexedHDUList(fits.HDUList):
    """An HDUList whose ``(EXTNAME, EXTVER)`` lookups are a dictionary's, not a scan of every header."""

    _index: dict[tuple[str, int], int] = {}

    def index_of(self, key):
        if isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], str) and isinstance(key[1], int):
            if len(self._index) != len(self):  # made on the first lookup, again if HDUs were added
                self._index = {}
                for position, hdu in enumerate(self):
                    self._index.setdefault((str(hdu.name).strip().upper(), hdu.ver), position)  # astropy's first
            position = self._index.get((key[0].strip().upper(), key[1]))
            if position is not None:
                return position
        return super().index_of(key)
