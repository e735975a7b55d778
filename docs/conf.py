"""Sphinx configuration for jwst_optextract."""

project = "jwst_optextract"
author = "jwst_optextract developers"
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "numpydoc",
]
numpydoc_show_class_members = False
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path = ["_static"]
