"""The stpipe and jwst methods that steps/offline.py overrides still exist, with the parameters it relies on."""

from __future__ import annotations

import inspect
from importlib.metadata import version

import pytest
from stpipe import Step

from jwst_optextract import OptimalExtractionPipeline, OptimalExtractStep
from jwst_optextract.steps.offline import STPIPE_HOOKS, OfflineMixin, OfflinePipelineMixin

VERSIONS = f"stpipe {version('stpipe')}, jwst {version('jwst')}"


@pytest.mark.parametrize(("owner", "name", "parameters"), STPIPE_HOOKS,
                         ids=[f"{owner.__name__}.{name}" for owner, name, _ in STPIPE_HOOKS])
def test_overridden_stpipe_method_is_unchanged(owner, name, parameters):
    method = owner.__dict__.get(name)
    assert method is not None, (
        f"{owner.__module__}.{owner.__name__}.{name} no longer exists ({VERSIONS}); "
        "jwst_optextract/steps/offline.py overrides or calls it to run without CRDS: adapt it")
    function = method.__func__ if isinstance(method, (classmethod, staticmethod)) else method
    found = tuple(inspect.signature(function).parameters)
    if isinstance(method, classmethod):
        found = found[1:]  # cls
    assert found[:len(parameters)] == parameters, (
        f"{owner.__name__}.{name} now takes {found}, jwst_optextract/steps/offline.py relies on {parameters} "
        f"({VERSIONS}): adapt the override")


def test_stpipe_instance_attributes_we_rely_on():
    step = OptimalExtractStep()
    for name in ("_reference_files_used", "_log_records"):
        assert isinstance(getattr(step, name, None), list), (
            f"stpipe.Step instances no longer have a list {name} ({VERSIONS}); "
            "jwst_optextract/steps/offline.py uses it: adapt it")


def test_every_override_is_listed():
    listed = {name for _, name, _ in STPIPE_HOOKS}
    for mixin in (OfflineMixin, OfflinePipelineMixin):
        overridden = {name for name in vars(mixin) if callable(getattr(mixin, name)) and hasattr(Step, name)}
        assert overridden <= listed, f"{mixin.__name__} overrides {overridden - listed}: list them in STPIPE_HOOKS"


def test_steps_and_pipelines_take_the_offline_behaviour():
    assert issubclass(OptimalExtractStep, OfflineMixin)
    assert issubclass(OptimalExtractionPipeline, OfflinePipelineMixin)
