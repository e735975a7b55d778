"""The ``nod`` background method: minus the mean of the other nods of a nodded observation.

The source is in every other nod, so their difference leaves negative
traces, which the profile fit models; a median of two would be their mean anyway.
"""

from __future__ import annotations

from typing import ClassVar

from .base import register
from .exposures import ExposuresBackground


@register("nod")
class NodBackground(ExposuresBackground):
    """The mean of the other nods."""

    summary: ClassVar[str] = "minus the mean of the other nods"
    statistic: ClassVar[str] = "mean"
