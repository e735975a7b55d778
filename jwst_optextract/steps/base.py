"""Offline behaviour shared by every step and pipeline of the package.

stpipe asks CRDS for ``pars-<class>`` parameter references before a step runs
and for the context when it finishes; with no CRDS server and no cache that
ends the process. Our steps need neither: their parameters live in their
``spec`` and parameter files, and their own reference files ship with the
package (``jwst_optextract/reference_files``), overridable with
``override_<reftype>``. CRDS is still asked for any jwst reference type, so the
steps behave inside a jwst pipeline that uses CRDS.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
from importlib import resources
from pathlib import Path

import numpy as np
from jwst.stpipe.core import JwstStep
from stdatamodels import DataModel
from stdatamodels.jwst import datamodels
from stpipe import config_parser, crds_client

from ..exceptions import InputError, OutputError
from ..io import SlitRun
from ..io.opening import open_datamodel

__all__ = ["OfflineMixin", "OptxStep", "PACKAGED_REFERENCES", "load_reference", "log_summary", "open_model",
           "open_product", "packaged_reference", "reference_defaults", "worker_count", "write_atomically"]

log = logging.getLogger(__name__)

PACKAGED_REFERENCES = {"optxextract": "optx_extract_defaults.json"}
"""Reference types of this package and their packaged default files."""

PACKAGED_PARAMETERS = {"OptimalExtractionPipeline": "optx_spec_parameters.cfg"}
"""Classes whose parameter defaults differ from their steps' own, and the packaged file that holds them
(what a CRDS ``pars-<class>`` reference would)."""

LOGGER_NAME = "jwst_optextract"


def packaged_reference(reftype: str) -> str:
    """Path of the packaged default file of one of the package's reference types."""
    return str(resources.files("jwst_optextract.reference_files") / PACKAGED_REFERENCES[reftype])


def packaged_parameters(cls) -> config_parser.ConfigObj:
    """The packaged parameter defaults of a step or pipeline class (empty for most)."""
    name = PACKAGED_PARAMETERS.get(cls.__name__)
    if name is None:
        return config_parser.ConfigObj()
    return config_parser.load_config_file(str(resources.files("jwst_optextract.reference_files") / name))


def scene_settings(step):
    """The step's scene-model background settings (``scene_*`` parameters) as one object."""
    from ..core import SceneBackground

    return SceneBackground(step.scene_background, step.scene_degree, step.scene_knot_spacing)


def load_reference(path: str) -> dict:
    """Read one of the package's (JSON) reference files."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def open_model(input_data):
    """The input as a datamodel (opened if it is a path), or a clear `InputError`."""
    if isinstance(input_data, datamodels.JwstDataModel):
        return input_data
    if isinstance(input_data, (str, os.PathLike)) and Path(input_data).suffix.lower() == ".json":
        raise InputError(f"{os.fspath(input_data)} is an association; this step takes one exposure (a _cal, "
                         "_calints or _s2d file or model): run it on each member")
    try:
        return open_datamodel(input_data)
    except Exception as exc:
        raise InputError(
            f"cannot open {input_data!r} as a JWST datamodel ({type(exc).__name__}: {exc}); give a complete "
            "calwebb_spec2 product (_cal, _calints or _s2d); a truncated or corrupt file must be made again"
        ) from exc


def open_product(value, cls):
    """A product given as a model or a file name (None stays None), or a clear `InputError`."""
    if value is None or isinstance(value, cls):
        return value
    try:
        return cls(value)
    except Exception as exc:
        raise InputError(f"cannot open {value!r} as a {cls.__name__}: {exc}") from exc


def reference_defaults(step, model) -> dict:
    """The optxextract reference values for the model's exposure type."""
    reference = load_reference(step.get_reference_file(model, "optxextract"))
    exp_type = model.meta.exposure.type
    return {**reference.get("default", {}), **reference.get("exp_type", {}).get(exp_type, {})}


def parameters_or_defaults(step, model, names) -> dict:
    """The step's values of ``names``, the reference's where the step leaves them None (and None dropped)."""
    defaults = reference_defaults(step, model)
    values = {name: getattr(step, name) if getattr(step, name) is not None else defaults.get(name) for name in names}
    return {name: value for name, value in values.items() if value is not None}


CORE_FRACTIONS = {"none": 0, "one": 0, "quarter": 4, "half": 2, "all": 1}
"""``maximum_cores`` names, as in jwst, and the fraction (1/n) of the available cores they mean (0: one core)."""


def worker_count(maximum_cores: str) -> int:
    """Threads to use for ``maximum_cores``: none | quarter | half | all | a number, at most the cores available.

    Raises
    ------
    InputError
        For any other value.
    """
    value = str(maximum_cores).strip().lower()
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if value.isdigit() and int(value) > 0:
        return min(int(value), available)
    if value not in CORE_FRACTIONS:
        raise InputError(f"maximum_cores must be one of {', '.join(CORE_FRACTIONS)} or a positive integer, "
                         f"not {maximum_cores!r}")
    fraction = CORE_FRACTIONS[value]
    workers = available // fraction if fraction else 1
    if workers > 1:
        log.info("Using %d threads (maximum_cores=%s, %d cores available)", workers, value, available)
    return max(workers, 1)


def log_summary(run: SlitRun, verb: str) -> None:
    """Log what happened to every slit: a count, and a warning naming the skipped ones and why."""
    log.info("%s", run.summary(verb))
    if run.skipped:
        log.warning("%d slit(s) skipped: %s", len(run.skipped), "; ".join(
            f"{name}: {why}" for name, why in run.skipped.items()))


def write_atomically(model: DataModel, path: str, protected: list[str]) -> str:
    """Save ``model`` to ``path`` through a temporary file in the same directory.

    The file appears complete or not at all: an interruption or a failure
    while writing leaves any earlier file at ``path`` as it was.

    Parameters
    ----------
    model : DataModel
        The model to save; its format follows the extension (``.fits`` or ``.asdf``).
    path : str
        Where to save it.
    protected : list of str
        Files that must not be overwritten (the step's input).

    Raises
    ------
    OutputError
        When ``path`` is one of ``protected``, or its extension is neither
        ``.fits`` nor ``.asdf``.
    """
    path = os.path.abspath(path)
    if any(_same_file(path, other) for other in protected):
        raise OutputError(f"will not write {path}: it is the input file; choose another output_file, "
                          "suffix or output_dir")
    writers = {".fits": model.to_fits, ".asdf": model.to_asdf}
    extension = Path(path).suffix
    if extension not in writers:
        raise OutputError(f"cannot write {path}: the output file name must end in .fits or .asdf")
    # Written through a file object, so that meta.filename is the final name, not the temporary one.
    model.meta.filename = os.path.basename(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{model.meta.filename}.", suffix=".part",
                                         dir=os.path.dirname(path))
    try:
        with os.fdopen(handle, "wb") as stream:
            writers[extension](stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, _file_mode(path))
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return path


def _same_file(path: str, other: str) -> bool:
    other = os.path.abspath(other)
    if os.path.exists(path) and os.path.exists(other):
        return os.path.samefile(path, other)
    return path == other


def _file_mode(path: str) -> int:
    """The permissions of the file being replaced, else the default for a new file (0o666 less the umask)."""
    if os.path.exists(path):
        return os.stat(path).st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


class OfflineMixin:
    """Put before ``JwstStep`` / ``JwstPipeline`` in the bases."""

    @classmethod
    def build_config(cls, input, **kwargs):  # noqa: A002 -- stpipe's name
        # stpipe opens the input here only to look up CRDS pars-* references,
        # which our classes do not have; a bad file would then fail inside
        # astropy (or a numpy array on its truth value) before the step could
        # say what is wrong with it. The step opens and checks it itself.
        if isinstance(input, np.ndarray):
            raise InputError("a numpy array is not a JWST datamodel; give a file name or a SlitModel, "
                             "MultiSlitModel, ImageModel or CubeModel")
        config, config_file = super().build_config(None, **kwargs)
        defaults = packaged_parameters(cls)
        config_parser.merge_config(defaults, config)
        return defaults, config_file

    @classmethod
    def get_config_from_reference(cls, dataset, disable=None, crds_observatory=None):
        # No pars-* references in CRDS for our classes: parameters come from
        # the packaged defaults, the spec, parameter files and the command line.
        return packaged_parameters(cls)

    @classmethod
    def _get_config_from_parameters(cls, crds_parameters, crds_observatory):
        # The same when a jwst pipeline asks for the parameters of a sub-step.
        return packaged_parameters(cls)

    @staticmethod
    def get_stpipe_loggers():
        return (*JwstStep.get_stpipe_loggers(), LOGGER_NAME)

    def get_reference_file(self, input_file, reference_file_type):
        """User override if given, else the packaged default; CRDS only for jwst reftypes."""
        if reference_file_type in PACKAGED_REFERENCES and self.get_ref_override(reference_file_type) is None:
            path = packaged_reference(reference_file_type)
            self._reference_files_used.append((reference_file_type, path))
            return crds_client.check_reference_open(path)
        return super().get_reference_file(input_file, reference_file_type)

    def finalize_result(self, result, reference_files_used):
        # JwstStep.finalize_result asks CRDS for the context whenever any
        # reference was used; only do that when CRDS actually gave one.
        from_crds = any(isinstance(f, str) and f.startswith("crds://") for _, f in reference_files_used)
        super().finalize_result(result, reference_files_used if from_crds else [])


class OptxStep(OfflineMixin, JwstStep):
    """Base class of the package's steps."""

    # Our reference types are not in CRDS: never prefetch them.
    prefetch_references = False

    def save_model(self, model, suffix=None, idx=None, output_file=None, force=False, **components):
        """Save as stpipe does (same names, same switches), but atomically and never onto the input.

        See `write_atomically`. Containers and libraries are left to stpipe,
        which saves their members through this method.
        """
        if not isinstance(model, DataModel):
            return super().save_model(model, suffix=suffix, idx=idx, output_file=output_file, force=force,
                                      **components)
        output_file = output_file or self.output_file
        if not force and not self.save_results and not output_file:
            return None
        if self.output_use_model or (output_file is None and not self.search_output_file):
            output_file, idx = model.meta.filename, None
        path = self.make_output_path(basepath=output_file, suffix=suffix, idx=idx, **components)
        path = write_atomically(model, path, self._input_paths())
        log.info("Saved model in %s", path)
        return path

    def _input_paths(self) -> list[str]:
        """Where the step's input file may be: as given, and in the input directory."""
        name = self.search_attr("_input_filename")
        if not name:
            return []
        return [name, os.path.join(self.input_dir or "", os.path.basename(name))]


class PlottingMixin:
    """``save_plots``: one diagnostic PNG per slit, named after the output."""

    _plot_lock = threading.Lock()  # pyplot is not thread safe (slits may run in threads)

    def save_plot(self, slit, trace, profile=None):
        from ..plotting import save_slit_plot

        name = "".join(c if c.isalnum() or c in "-." else "-" for c in slit.name)
        path = self.make_output_path(suffix=f"{name}_{self.default_suffix()}", ext="png")
        with self._plot_lock:
            save_slit_plot(path, slit, trace, profile)
