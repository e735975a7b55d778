"""Tools that use the steps but are not steps: they sit apart from the layers.

- `jwst_optextract.tools.batch`: any step or pipeline over many files on Dask (``optx-batch``,
  ``python -m jwst_optextract``).
- `jwst_optextract.tools.plotting`: diagnostic figures of the trace and profile fits (``save_plots``).
- `jwst_optextract.tools.demo`: the README demo (``python -m jwst_optextract.demo``).

Nothing in ``core/``, ``io/``, ``drivers/`` or ``steps/`` imports from here at module level; the
steps import `plotting` only when ``save_plots`` is set. The modules are not imported by this
``__init__``, so importing one tool does not pay for the others (Dask, matplotlib).
"""
