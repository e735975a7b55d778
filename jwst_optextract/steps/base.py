"""What every step of the package shares: the base class, opening inputs, workers, logs, atomic writes.

The offline behaviour (no CRDS server, no cache) is all in `jwst_optextract.steps.offline`.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import os
import tempfile
import threading
from pathlib import Path

from astropy.io import fits
from jwst.stpipe.core import JwstStep
from stdatamodels import DataModel
from stdatamodels.jwst import datamodels

from ..exceptions import InputError, OutputError
from ..drivers.parameters import SceneParameters
from ..drivers.runner import SlitRun, warm_workers
from ..io.opening import open_datamodel
from ..io.writing import write_fits
from ..reference_files import PACKAGED_REFERENCES, load_reference, packaged_reference
from .offline import LOGGER_NAME, OfflineMixin

__all__ = ["LOGGER_NAME", "PACKAGED_REFERENCES", "AtomicSaveMixin", "OfflineMixin", "OptxStep", "load_reference",
           "log_summary", "open_model", "open_product", "packaged_reference", "start_workers", "worker_count",
           "write_atomically"]

log = logging.getLogger(__name__)


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


CORE_FRACTIONS = {"none": 0, "one": 0, "quarter": 4, "half": 2, "all": 1}
"""``maximum_cores`` names, as in jwst, and the fraction (1/n) of the available cores they mean (0: one core)."""


def worker_count(maximum_cores: str, announce: bool = True) -> int:
    """Workers for ``maximum_cores``: none | quarter | half | all | a number, at most the cores available.

    The step runs them as threads or as worker processes (its ``maximum_cores`` help says which);
    ``announce`` logs how many.

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
    if workers > 1 and announce:
        log.info("Using %d cores (maximum_cores=%s, %d available)", workers, value, available)
    return max(workers, 1)


def start_workers(input_data, maximum_cores: str) -> None:
    """Start the fits' worker processes before a multi-slit input is opened, so that they import while it is read.

    See `~jwst_optextract.drivers.runner.warm_workers`; nothing is started for
    one core or for an input that is not a MultiSlitModel (or its FITS file).
    """
    workers = worker_count(maximum_cores, announce=False)
    if workers > 1 and _is_multislit(input_data):
        warm_workers(workers)


def _is_multislit(input_data) -> bool:
    if isinstance(input_data, datamodels.MultiSlitModel):
        return True
    if isinstance(input_data, (str, os.PathLike)) and Path(input_data).suffix.lower() in (".fits", ".fit"):
        try:
            return fits.getval(input_data, "DATAMODL") == "MultiSlitModel"
        except (OSError, KeyError):  # opening it will say what is wrong
            return False
    return False


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
    writers = {".fits": functools.partial(write_fits, model), ".asdf": model.to_asdf}  # write_fits: model.to_fits
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


class AtomicSaveMixin:
    """A step's or pipeline's ``save_model``: atomic, never onto the input, FITS in linear time.

    FITS products are written by `~jwst_optextract.io.writing.write_fits`: the
    file ``model.save`` writes, without its time growing with the square of
    the extensions.
    """

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


class OptxStep(AtomicSaveMixin, OfflineMixin, JwstStep):
    """Base class of the package's steps."""

    # Our reference types are not in CRDS: never prefetch them.
    prefetch_references = False

    def run(self, *args):
        """stpipe's ``run``, with the objects that exist when it starts left out of its garbage collection.

        stpipe's ``Step.run`` starts with a full ``gc.collect()``, which walks
        every object of the process: the modules of jwst, astropy and asdf and
        the open model, about 0.3 s each time, four times in ``optx_spec``
        (whose own run has collected just before). Those objects are frozen
        (`gc.freeze`) for the step's run, and so skipped by that collection
        and by any other during it; what the step makes is collected as usual,
        and they are unfrozen when the step ends. Freezing changes when cyclic
        garbage is collected, never what the step computes.
        """
        with _frozen_heap():
            return super().run(*args)


_frozen_runs = 0
_frozen_lock = threading.Lock()


@contextlib.contextmanager
def _frozen_heap():
    """`gc.freeze` on entry and `gc.unfreeze` on exit, for the outermost of nested or concurrent runs."""
    global _frozen_runs
    with _frozen_lock:
        if _frozen_runs == 0:
            gc.freeze()
        _frozen_runs += 1
    try:
        yield
    finally:
        with _frozen_lock:
            _frozen_runs -= 1
            if _frozen_runs == 0:
                gc.unfreeze()


class PlottingMixin:
    """``save_plots``: diagnostic PNGs per slit, named after the output.

    `save_plot` and `save_scene_plot` are the only places where a step uses
    ``tools``: they import ``tools.plotting`` (and so matplotlib) when a plot
    is saved, so that no step module depends on the tools otherwise
    (``tests/test_layers.py``).
    """

    _plot_lock = threading.Lock()  # pyplot is not thread safe (slits may run in threads)

    def save_plot(self, slit, trace, profile=None):
        """The trace and profile fit plot (`plot_slit`) and, with a profile, the scene plot (`plot_scene`)."""
        from ..tools.plotting import save_scene_plot, save_slit_plot, slit_scene

        with self._plot_lock:
            save_slit_plot(self._plot_path(slit, self.default_suffix()), slit, trace, profile)
            if profile is not None:
                background = SceneParameters(getattr(self, "scene_background", "none"),
                                             getattr(self, "scene_degree", 2),
                                             getattr(self, "scene_knot_spacing", 32.0)).background
                save_scene_plot(self._plot_path(slit, "scene"), slit, slit_scene(slit, trace, profile, background))

    def save_scene_plot(self, slit, parts, source_mask=None, background_label="background model"):
        """The scene plot (`plot_scene`) of given scene parts, e.g. a background step's source and background."""
        from ..tools.plotting import save_scene_plot

        with self._plot_lock:
            save_scene_plot(self._plot_path(slit, f"{self.default_suffix()}_scene"), slit, parts,
                            source_mask=source_mask, background_label=background_label)

    def _plot_path(self, slit, suffix: str) -> str:
        name = "".join(c if c.isalnum() or c in "-." else "-" for c in slit.name)
        return self.make_output_path(suffix=f"{name}_{suffix}", ext="png")
