"""What every cross-dispersion profile kind is: the `Profile` protocol, the registry of kinds, and their fit input.

A kind is one module with one class that follows `Profile` and is registered
under its name with `register`; the package imports each kind's module in
``core/profiles/__init__.py``. Everything else (the step options, the product
(de)serialisation, the trace shifts of a time series, Akaike's criterion, the
plots) asks the profile itself, so it needs no edit for a new kind.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..optimal import optimal_extract
from ..pixels import Variances
from ..registry import Registry
from ..scene import SceneBackground

if TYPE_CHECKING:
    from .template import ProfileTemplate

__all__ = ["PROFILES", "Profile", "ProfileProblem", "amplitudes", "less_background", "profile_class", "register"]


class Profile(ABC):
    """A fitted cross-dispersion profile of one slit, of one registered kind."""

    derivative_step: ClassVar[float]
    """Finite-difference step (pixels) of the derivatives with respect to a trace shift (time-series jitter).

    A whole pixel or more marks a profile learnt from the data, known only at the sub-pixel phases they
    sampled: its derivatives come from a stencil of whole-pixel shifts, for what it adds to the trace's
    Gaussian (see ``ProfileFit.derivatives``)."""

    needs_source: ClassVar[bool] = True
    """Whether the kind is fitted only to a detected source (else the Gaussian of the trace fit is kept)."""

    @abstractmethod
    def evaluate(self, ny: int, center: np.ndarray) -> np.ndarray:
        """The profile ``(..., ny, nx)`` about the trace ``center`` (``(..., nx)``), normalised per column."""

    @property
    @abstractmethod
    def n_parameters(self) -> float:
        """Number of (effective) free parameters of the shape, for Akaike's criterion."""

    @property
    def note(self) -> str:
        """The fitted shape parameter worth a glance in a plot's title (e.g. ``beta 2.50``), or ``""``."""
        return ""

    @abstractmethod
    def to_entry(self) -> dict[str, Any]:
        """The kind's own fields of a profile product entry (the name, kind, centre and values are common)."""

    @classmethod
    @abstractmethod
    def from_entry(cls, entry: Any, center: np.ndarray, ny: int) -> Profile:
        """The profile of a product entry (as `to_entry` wrote it) about ``center``, on a slit of ``ny`` rows.

        Raises ValueError when the entry does not fit the slit.
        """

    @classmethod
    @abstractmethod
    def fit(cls, problem: ProfileProblem) -> Profile | None:
        """The profile of this kind fitted to ``problem``, or None (with a warning) when the data cannot give it.

        Raises ValueError when the slit cannot have this kind at all.
        """


@dataclass
class ProfileProblem:
    """What a profile kind is fitted to: one slit's image (the mean of its integrations) about its trace.

    ``image``, ``good``, ``var_rnoise`` and ``var_poisson`` are ``(ny, nx)``;
    the image still holds its background when ``background`` is fitted.
    """

    name: str
    """The slit's name, for the log."""
    image: np.ndarray
    good: np.ndarray
    var_rnoise: np.ndarray
    var_poisson: np.ndarray | None
    center: np.ndarray
    """``(nx,)`` trace the profile is fitted about."""
    gaussian: Any
    """The `GaussianProfile` of the trace fit: the start (and the fallback) of every other shape."""
    detected: bool
    background: SceneBackground
    reject_sigma: float | None = None
    width_degree: int = 2
    window: float = 128.0
    oversample: float = 4.0
    smoothing: float = 30.0
    wavelength: np.ndarray | None = None
    """``(ny, nx)`` wavelength of every pixel, or None."""
    template: ProfileTemplate | None = None
    template_stretch: bool = True
    psf_prior: Any = None
    """The instrument's `~jwst_optextract.core.psf_prior.PsfPrior`, or None: shapes shrink toward it where the
    data do not say."""
    _kept: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def ny(self) -> int:
        return self.image.shape[0]

    def scene(self, profile: Profile) -> tuple[np.ndarray, Any]:
        """``profile`` about the trace, and the fit of ``image`` with it (`amplitudes`, every column kept).

        Several choices look at the fit of one profile (the Gaussian's: the S/N
        gate, the Moffat's start, the spline's support, Akaike's criterion): it
        is made once per profile and kept with the problem.
        """
        def fit():
            P = profile.evaluate(self.ny, self.center)
            return profile, P, amplitudes(self, P, self.background, min_coverage=0.0)  # the profile held: id kept

        return self.kept(("scene", id(profile)), fit)[1:]

    def kept(self, key: Any, compute: Callable[[], Any]) -> Any:
        """``compute()``, made once per problem and ``key``: what several fits of the same slit look at."""
        if key not in self._kept:
            self._kept[key] = compute()
        return self._kept[key]

    @property
    def variances(self) -> Variances:
        """The read-noise and Poisson variances of ``image`` (a profile fit carries no flat-field variance)."""
        return Variances(self.var_rnoise, self.var_poisson)


PROFILES = Registry("profile kind", Profile, {"derivative_step": float}, reserved=("auto",))
"""The registered profile kinds by name, in the order their modules register them (``auto`` is not a kind)."""
register = PROFILES.register
profile_class = PROFILES.lookup


def amplitudes(mean, P: np.ndarray, background: SceneBackground, **kwargs):
    """The optimal extraction of ``mean`` with profile ``P``, or its scene fit when the background is fitted.

    ``mean`` is anything with ``image``, ``good``, ``var_rnoise`` and ``var_poisson``.
    """
    if background.fitted:
        total = P.sum(axis=0)
        P = np.divide(P, total, out=np.zeros_like(P, dtype=float), where=total > 0)
        return background.fit(mean.image, P, mean.var_rnoise, mean.var_poisson, mask=mean.good, **kwargs)
    return optimal_extract(mean.image, P, mean.var_rnoise, mean.var_poisson, mask=mean.good, **kwargs)


def less_background(problem: ProfileProblem, parametric: Profile) -> ProfileProblem:
    """``problem`` less the background of its scene fit with a parametric profile (itself if none is fitted).

    The shapes that are not fitted with the background (splines) are fitted
    to this; the parametric profile's wings are source, not background.
    """
    if not problem.background.fitted:
        return problem
    _, scene = problem.scene(parametric)
    return replace(problem, image=np.where(problem.good, problem.image - scene.background, 0.0))
