"""JWST pixel DQ flags: the package's one copy of the bit values, and flag names to bit masks.

Every module takes its DQ bits from here, so that the middle layer and core
(which receive plain integers) never import stdatamodels for them.
"""

from __future__ import annotations

from stdatamodels.jwst.datamodels import dqflags

from ..exceptions import InputError

__all__ = ["DO_NOT_USE", "FLUX_ESTIMATED", "MSA_FAILED_OPEN", "OUTLIER", "dq_bits"]

DO_NOT_USE: int = int(dqflags.pixel["DO_NOT_USE"])
OUTLIER: int = int(dqflags.pixel["OUTLIER"])
FLUX_ESTIMATED: int = int(dqflags.pixel["FLUX_ESTIMATED"])
MSA_FAILED_OPEN: int = int(dqflags.pixel["MSA_FAILED_OPEN"])


def dq_bits(flags: str | int | None) -> int:
    """DQ bit mask from flag names (``"DO_NOT_USE, SATURATED"``), an integer, or None (DO_NOT_USE).

    Raises
    ------
    InputError
        For a name that is not a JWST pixel DQ flag.
    """
    if flags is None or flags == "":
        return DO_NOT_USE
    try:
        return int(dqflags.ap_interpret_bit_flags(flags, flag_name_map=dqflags.pixel))
    except (ValueError, TypeError, KeyError) as exc:
        raise InputError(f"cannot read DQ flags {flags!r} (names from {sorted(dqflags.pixel)}): {exc}") from exc
