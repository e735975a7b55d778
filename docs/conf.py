"""Sphinx configuration for jwst_optextract."""

project = "jwst_optextract"
author = "jwst_optextract developers"
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "numpydoc",
]
numpydoc_show_class_members = False
exclude_patterns = ["_build", "_generated"]
html_theme = "alabaster"
html_static_path = ["_static"]


def _write_parameter_tables(app):
    """docs/_generated/<alias>.rst: each step's parameters, from its ``spec`` string."""
    import re
    from pathlib import Path

    from jwst_optextract import steps

    out = Path(app.srcdir) / "_generated"
    out.mkdir(exist_ok=True)
    line = re.compile(r"^\s*(\w+)\s*=\s*(\w+)\((.*)\)\s*$")
    for name in steps.__all__:
        cls = getattr(steps, name)
        rows = []
        for text in cls.spec.splitlines():
            code, _, help_text = text.partition("#")
            match = line.match(code)
            if match:
                key, kind, args = match.groups()
                default = re.search(r"default\s*=\s*([^,]+(?:\([^)]*\))?)", args)
                rows.append((key, kind, default.group(1).strip() if default else "", (help_text or "").strip()))
        lines = [".. list-table::", "   :header-rows: 1", "   :widths: 18 10 12 60", "",
                 "   * - parameter", "     - type", "     - default", "     - meaning"]
        for key, kind, default, help_text in rows:
            lines += [f"   * - ``{key}``", f"     - {kind}", f"     - ``{default}``" if default else "     -",
                      f"     - {help_text}" if help_text else "     -"]
        (out / f"{cls.class_alias}.rst").write_text("\n".join(lines) + "\n")


def setup(app):
    app.connect("builder-inited", _write_parameter_tables)
