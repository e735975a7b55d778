"""Sphinx configuration for jwst_optextract."""

project = "jwst_optextract"
author = "jwst_optextract developers"
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.intersphinx",
    "numpydoc",
]
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "jwst": ("https://jwst-pipeline.readthedocs.io/en/latest", None),
}
numpydoc_show_class_members = False
exclude_patterns = ["_build"]
html_theme = "alabaster"
