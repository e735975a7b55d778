"""The layering of docs/architecture.rst: who may import the tools that sit apart from the layers."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "jwst_optextract"
RELEASED_TOOL_PATHS = {"batch.py", "plotting.py", "demo.py", "__main__.py"}
"""Top-level modules that are the tools' released names (thin re-exports) and the console entry."""
LAZY_TOOL_IMPORTS = {("steps/base.py", "save_plot"), ("steps/base.py", "save_scene_plot")}
"""The functions allowed to import a tool when called: the steps' optional plots."""


def _imports_tools(node: ast.AST, module: Path) -> bool:
    """Whether an import statement of ``module`` reaches ``jwst_optextract.tools``."""
    if isinstance(node, ast.Import):
        return any(alias.name.startswith("jwst_optextract.tools") for alias in node.names)
    if isinstance(node, ast.ImportFrom):
        if node.level == 0:
            return (node.module or "").startswith("jwst_optextract.tools")
        package = module.relative_to(PACKAGE).parent.parts
        base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
        target = (*base, *(node.module or "").split(".")) if node.module else base
        names = [(*target, alias.name) for alias in node.names] if not node.module else [target]
        return any(parts[:1] == ("tools",) for parts in names)
    return False


def _tool_imports(module: Path) -> list[tuple[str, int]]:
    """The imports of tools in ``module``: (enclosing function or ``<module>``, line)."""
    found = []

    def visit(node: ast.AST, scope: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else scope
            if _imports_tools(child, module):
                found.append((scope, child.lineno))
            visit(child, inner)

    visit(ast.parse(module.read_text()), "<module>")
    return found


def test_only_the_steps_optional_plots_import_the_tools():
    offending = []
    for module in sorted(PACKAGE.rglob("*.py")):
        relative = module.relative_to(PACKAGE).as_posix()
        if relative.startswith("tools/") or relative in RELEASED_TOOL_PATHS:
            continue
        offending += [(relative, scope, line) for scope, line in _tool_imports(module)
                      if (relative, scope) not in LAZY_TOOL_IMPORTS]
    assert not offending, f"imports of jwst_optextract.tools outside the tools' own places: {offending}"


def test_importing_the_package_and_its_steps_imports_no_tool():
    code = ("import sys, jwst_optextract, jwst_optextract.steps, jwst_optextract.drivers; "
            "print(sorted(m for m in sys.modules if m.startswith('jwst_optextract.tools')))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert run.stdout.strip() == "[]", run.stdout
