"""The drivers: one per step, joining `jwst_optextract.io` and `jwst_optextract.core`.

Each step calls one driver's ``run(model, params, ..., workers=...)``, which
returns the step's product and a summary; every driver runs its slits (or
sources) through the one loop of `jwst_optextract.drivers.runner`; every
``*Parameters`` dataclass is in `jwst_optextract.drivers.parameters`.
"""
