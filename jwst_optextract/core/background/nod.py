"""The ``nod`` background method: minus the mean of the other nods of a nodded observation.

The source is in every other nod, so their difference leaves negative
traces, which the profile fit models; a median of two would be their mean anyway.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .base import BackgroundEstimate, BackgroundMethod, register
from .exposures import combine_exposures


@register("nod")
class NodBackground(BackgroundMethod):
    """The mean of the other nods."""

    summary: ClassVar[str] = "minus the mean of the other nods"
    from_exposures: ClassVar[bool] = True

    @classmethod
    def estimate(cls, data: np.ndarray, mask: np.ndarray, variances: tuple, params: Any) -> BackgroundEstimate:
        return combine_exposures(data, mask, *variances, statistic="mean")
