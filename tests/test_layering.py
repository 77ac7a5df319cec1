"""Layering rules checked by parsing imports: ``ui/`` has no model code, ``service/`` no Gradio,
and the command line is a table that nothing imports back."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "wanda_viz"
MODEL_LIBRARIES = {"torch", "transformers", "huggingface_hub"}


def imported_roots(path: Path) -> set[str]:
    """Top-level names of every absolute import (``import a.b``, ``from a.b import c``)."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_imported_roots_sees_plain_from_and_nested_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import os.path\nfrom torch import nn\nfrom . import x\n"
                      "def f():\n    import transformers\n")
    assert imported_roots(source) == {"os", "torch", "transformers"}


@pytest.mark.parametrize("path", sorted((PACKAGE / "ui").rglob("*.py")), ids=lambda p: p.name)
def test_ui_modules_import_no_model_library(path):
    assert not imported_roots(path) & MODEL_LIBRARIES


@pytest.mark.parametrize("path", sorted((PACKAGE / "service").rglob("*.py")),
                         ids=lambda p: p.name)
def test_service_modules_import_no_gradio(path):
    assert "gradio" not in imported_roots(path)


def test_every_tab_module_is_registered():
    from wanda_viz.ui.app import TABS
    modules = {p.stem for p in (PACKAGE / "ui" / "tabs").glob("*.py") if p.stem != "__init__"}
    assert {tab.__name__.rsplit(".", 1)[1] for tab in TABS} == modules
    assert len({tab.ID for tab in TABS}) == len(TABS)


def test_service_loads_without_gradio():
    import subprocess
    import sys
    code = "import sys, wanda_viz.service; print('gradio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=PACKAGE.parent, check=True).stdout
    assert out.strip() == "False"


def test_cli_parser_alone_has_every_subcommand():
    import subprocess
    import sys
    # A fresh interpreter: nothing else has been imported that could register a subcommand.
    code = ("from wanda_viz.cli import COMMANDS, build_parser\n"
            "parser = build_parser()\n"
            "names = parser._subparsers._group_actions[0].choices\n"
            "print(','.join(names), ','.join(COMMANDS))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=PACKAGE.parent, check=True).stdout.split()
    assert out[0] == out[1] and {"prune", "sweep", "outliers"} <= set(out[0].split(","))


def test_no_module_imports_the_cli_package():
    # The CLI sits on top of the library: a library module importing it would be a cycle.
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "cli" or path.name == "__main__.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                assert not module.endswith("cli") and "cli." not in module, path
                assert not (node.level and any(a.name == "cli" for a in node.names)), path


def _relative_imports(path: Path) -> set[str]:
    """Modules named by the relative imports of ``path`` (``from ..layers import x`` -> layers)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            found.add((node.module or "").split(".")[-1])
            found.update(alias.name for alias in node.names if node.module is None)
    return found


def test_geometry_without_the_loader_and_no_models_module():
    """models.py was split into layers.py and loading.py (and its shim removed): the kernels read
    weights through layers.py and never import the loader."""
    assert not (PACKAGE / "models.py").exists()
    for path in PACKAGE.rglob("*.py"):
        assert "models" not in _relative_imports(path), path
    for path in (PACKAGE / "pruning").glob("*.py"):
        assert "loading" not in _relative_imports(path), path
    assert "loading" not in _relative_imports(PACKAGE / "layers.py")


def test_registry_imports_no_config_and_no_data():
    """registry -> config -> pipeline is the one import order (no lazy import, no re-export)."""
    assert not _relative_imports(PACKAGE / "pruning" / "registry.py") & {"config", "data",
                                                                          "pipeline"}
    source = (PACKAGE / "pruning" / "config.py").read_text(encoding="utf-8")
    assert "import" not in "".join(line for line in source.splitlines() if line.startswith(" "))


def test_no_test_module_imports_another():
    """Shared fixtures live in conftest.py and helpers in helpers.py / why_planted.py: a test
    module imported by another would run its tests twice and hide its fixtures' origin."""
    tests = Path(__file__).resolve().parent
    for path in tests.glob("*.py"):
        assert not {root for root in imported_roots(path) if root.startswith("test_")}, path
