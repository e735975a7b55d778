"""Writing JWST datamodels to FITS: ``model.to_fits``, without its cost growing with the square of the extensions.

stdatamodels writes a model by walking its schema: for every FITS keyword and
every array it looks the target extension up by ``(EXTNAME, EXTVER)`` in the
``HDUList`` it is filling, and astropy finds each by reading the name and
version of every extension before it. An x1d of 200 spectra (each with some
twenty keywords of its own) took 11-17 s to save, most of it in those scans
(4 600 lookups reading 470 000 headers values). `write_fits` hands the same
stdatamodels writer an ``HDUList`` that finds an extension by name and
version in a dictionary; everything else -- the schema walk, the headers, the
tables, the ASDF extension -- is stdatamodels' own, so the file is the one
``model.save`` writes (``tests/test_x1d_writing.py`` compares the two).
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import IO

from astropy.io import fits
from stdatamodels import DataModel, fits_support

__all__ = ["KeyedHDUList", "write_fits"]

log = logging.getLogger(__name__)


def write_fits(model: DataModel, target: str | os.PathLike | IO[bytes], **kwargs) -> None:
    """Write ``model`` to a FITS file as ``model.to_fits(target, **kwargs)`` does, in a time linear in its size.

    Parameters
    ----------
    model : DataModel
        Any stdatamodels model (its ``on_save`` hook runs first, as for ``to_fits``).
    target : str, path or binary file object
        Where to write.
    **kwargs
        Passed to `astropy.io.fits.HDUList.writeto` (e.g. ``overwrite=True``).
    """
    model.on_save(os.fspath(target) if isinstance(target, os.PathLike) else target)
    hdulist = fits_support.to_fits(model._instance, model._schema, hdulist=KeyedHDUList([fits.PrimaryHDU()]))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Card is too long")  # as stdatamodels
        if getattr(model, "_no_asdf_extension", False) and "ASDF" in hdulist:
            del hdulist["ASDF"]
        hdulist.writeto(target, **kwargs)


class KeyedHDUList(fits.HDUList):
    """An HDUList being filled, whose ``(EXTNAME, EXTVER)`` lookups are a dictionary's, not a scan.

    The dictionary holds the first position of every ``(name, version)``.
    Appending (how stdatamodels adds extensions) adds the new extension to
    it; any other change to the list forgets it, to be made again on the
    next lookup. A position found is checked against the extension there, so
    that an extension renamed in place is looked for again by astropy's scan
    (and the dictionary made again); a name given to an extension in place
    is found only after that. stdatamodels' writer names every extension
    before it appends it.
    """

    def __init__(self, hdus=None, file=None):
        self._positions: dict[tuple[str, int], int] | None = None
        super().__init__(hdus if hdus is not None else [], file=file)

    @staticmethod
    def _key(hdu) -> tuple[str, int]:
        name = hdu.name
        return (name.strip().upper() if isinstance(name, str) else name), hdu.ver

    def _index(self) -> dict[tuple[str, int], int]:
        if self._positions is None:
            self._positions = {}
            for position, hdu in enumerate(self):
                self._positions.setdefault(self._key(hdu), position)
        return self._positions

    def index_of(self, key):
        if isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], str) and isinstance(key[1], int):
            wanted = (key[0].strip().upper(), key[1])
            if wanted[0] != "PRIMARY":  # astropy's special case: always the first HDU
                position = self._index().get(wanted)
                if position is None:
                    raise KeyError(f"Extension {key!r} not found.")
                if position < len(self) and self._key(self[position]) == wanted:
                    return position
                self._positions = None  # changed in place: astropy's scan, and a new index next time
        return super().index_of(key)

    def append(self, hdu) -> None:
        super().append(hdu)
        if self._positions is not None:
            self._positions.setdefault(self._key(self[-1]), len(self) - 1)

    def _forget(self, *args, **kwargs):
        self._positions = None

    def insert(self, index, hdu) -> None:
        self._forget()
        super().insert(index, hdu)

    def __setitem__(self, key, hdu) -> None:
        self._forget()
        super().__setitem__(key, hdu)

    def __delitem__(self, key) -> None:
        self._forget()
        super().__delitem__(key)

    def remove(self, hdu) -> None:
        self._forget()
        super().remove(hdu)

    def pop(self, index=-1):
        self._forget()
        return super().pop(index)
