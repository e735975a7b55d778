"""Step parameters to the middle layer's ``*Parameters`` dataclasses: one mechanism for every step.

A parameter's default lives in two places only: the step's stpipe ``spec``
(what a user sees) and, for the parameters whose spec default is None, the
``optxextract`` reference, per exposure type (packaged in ``reference_files/``,
overridable with ``override_optxextract``). A dataclass field has the same
name as the step parameter it holds; its default agrees with the spec, or is
taken from the packaged reference's ``default`` section (`reference_default`),
so that code that builds the dataclass directly gets the same values as a step
(``tests/test_parameters.py`` checks that).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Self

from ..reference_files import exp_type_values, load_reference, packaged_defaults

__all__ = ["REFERENCE_TYPE", "SceneParameters", "StepParameters", "reference_default"]

REFERENCE_TYPE = "optxextract"
"""The reference type that holds the per-exposure-type defaults."""

_PACKAGED_DEFAULTS = packaged_defaults(REFERENCE_TYPE)


def reference_default(name: str) -> Any:
    """The packaged reference's default of parameter ``name`` (for a dataclass field default)."""
    return _PACKAGED_DEFAULTS[name]


class StepParameters:
    """Base of the ``*Parameters`` dataclasses: `from_step` builds one from a step's parameters."""

    reference_type: ClassVar[str] = REFERENCE_TYPE

    @classmethod
    def from_step(cls, step, model=None, **derived: Any) -> Self:
        """The parameters of ``step`` for ``model``.

        Every field that is a parameter of the step takes the step's value;
        where that is None, the value of the step's ``optxextract`` reference
        for the model's exposure type (when the step has that reference type
        and a model is given); where the reference has none either, the
        field's default.

        Parameters
        ----------
        step : stpipe.Step
            The step (its parameters are its attributes).
        model : DataModel, optional
            The input, for its exposure type (``meta.exposure.type``).
        **derived
            Values of fields the step computes from its parameters or input
            (e.g. a DQ bit mask from flag names); they are not read from the step.
        """
        names = {field.name for field in dataclasses.fields(cls)} - set(derived)
        values = {name: getattr(step, name) for name in names & set(type(step).load_spec_file())}
        if model is not None and cls.reference_type in getattr(step, "reference_file_types", ()):
            reference = exp_type_values(load_reference(step.get_reference_file(model, cls.reference_type)),
                                        model.meta.exposure.type)
            values.update({name: reference[name] for name, value in values.items()
                           if value is None and reference.get(name) is not None})
        return cls(**{name: value for name, value in values.items() if value is not None}, **derived)


@dataclasses.dataclass
class SceneParameters:
    """The scene model's background parameters (``scene_*``), shared by the fits and the extraction."""

    scene_background: str = "none"
    """``smooth``, ``column`` or ``none`` (`~jwst_optextract.core.scene.SCENE_BACKGROUNDS`)."""
    scene_degree: int = 2
    scene_knot_spacing: float = 32.0

    @property
    def background(self):
        """These settings as one `~jwst_optextract.core.SceneBackground`."""
        from ..core import SceneBackground

        return SceneBackground(self.scene_background, self.scene_degree, self.scene_knot_spacing)

    def scene_values(self) -> dict:
        """The ``scene_*`` fields by name (to hand the same settings to another ``*Parameters``)."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(SceneParameters)}
