"""Dependencies point one way: every module is found and checked, none is skipped.

- Outside ``therapy_timer.gui`` nothing loads PySide6: each such module is imported in a fresh
  interpreter, which is then asked whether PySide6 is in ``sys.modules``.
- Only ``therapy_timer.store`` imports sqlite3/sqlite_utils, only ``therapy_timer.gui``
  imports PySide6, only ``therapy_timer.server`` imports psycopg: read from each file's syntax
  tree (importing a module that uses the store loads sqlite3 legitimately, so ``sys.modules``
  cannot tell who imported it).
"""

from __future__ import annotations

import ast
import os
import pkgutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "therapy_timer"

# Top-level name imported -> the only package allowed to import it.
OWNERS = {
    "sqlite3": f"{PACKAGE}.store",
    "sqlite_utils": f"{PACKAGE}.store",
    "PySide6": f"{PACKAGE}.gui",
    "shiboken6": f"{PACKAGE}.gui",
    "psycopg": f"{PACKAGE}.server",
}


def discover(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Every module of ``package`` under ``root`` by dotted name, found without importing any."""
    found: dict[str, Path] = {package: root / package / "__init__.py"}

    def walk(folder: Path, prefix: str) -> Iterator[tuple[str, Path]]:
        for info in pkgutil.iter_modules([str(folder)]):
            name = f"{prefix}.{info.name}"
            if info.ispkg:
                yield name, folder / info.name / "__init__.py"
                yield from walk(folder / info.name, name)
            else:
                yield name, folder / f"{info.name}.py"

    found.update(walk(root / package, package))
    return found


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def qt_free(modules: dict[str, Path], package: str = PACKAGE) -> list[str]:
    return sorted(m for m in modules if not within(m, f"{package}.gui"))


def imported_names(path: Path) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every import in the file, also inside functions and conditions,
    and of ``importlib.import_module("...")`` / ``__import__("...")`` with a literal name."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            literal = first.value if isinstance(first, ast.Constant) else None
            if called in ("import_module", "__import__") and isinstance(literal, str):
                yield node.lineno, literal


def forbidden_imports(
    modules: dict[str, Path], owners: dict[str, str] | None = None, package: str = PACKAGE
) -> list[str]:
    """``file:line: module imports X`` for each import of X outside the package that owns X."""
    rules = OWNERS if owners is None else owners
    rules = {top: owner.replace(PACKAGE, package, 1) for top, owner in rules.items()}
    problems = []
    for module, path in sorted(modules.items()):
        for line, name in imported_names(path):
            owner = rules.get(name.split(".")[0])
            if owner is not None and not within(module, owner):
                problems.append(f"{path}:{line}: {module} imports {name} (only {owner} may)")
    return problems


def loads(module: str, tops: tuple[str, ...], pythonpath: Path = ROOT) -> str:
    """Import ``module`` in a fresh interpreter; the modules under ``tops`` it loaded, sorted,
    comma-separated."""
    # A subprocess, because pytest-qt has already loaded PySide6 into this one.
    code = (
        f"import sys, {module}; "
        f"print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in {tops!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        cwd=pythonpath,
        env={**os.environ, "PYTHONPATH": str(pythonpath)},
    )
    assert out.returncode == 0, f"importing {module} failed:\n{out.stderr}"
    return out.stdout.strip()


def loads_qt(module: str, pythonpath: Path = ROOT) -> str:
    return loads(module, ("PySide6",), pythonpath)


MODULES = discover()

# The pure layers load neither Qt nor SQLite, not even through another module.
PURE = ["errors", "clock", "explain", "codes", "model", "rules", "stopwatch"]


def test_discovery_finds_the_known_layers() -> None:
    # If discovery silently found nothing, every check below would pass vacuously.
    assert {f"{PACKAGE}.errors", f"{PACKAGE}.rules", f"{PACKAGE}.store"} <= set(MODULES)
    assert f"{PACKAGE}.store._db" in MODULES
    assert any(within(m, f"{PACKAGE}.gui") for m in MODULES)
    assert all(path.is_file() for path in MODULES.values())


@pytest.mark.parametrize("module", qt_free(MODULES))
def test_qt_free_module_does_not_load_qt(module: str) -> None:
    assert loads_qt(module) == ""


@pytest.mark.parametrize("module", PURE)
def test_pure_module_loads_no_sqlite_or_qt(module: str) -> None:
    assert loads(f"{PACKAGE}.{module}", ("sqlite3", "sqlite_utils", "PySide6")) == ""


def test_only_the_owning_package_imports_sqlite_qt_or_postgres() -> None:
    assert forbidden_imports(MODULES) == []


def import_contracts(root: Path = ROOT) -> list[dict[str, object]]:
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    contracts: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def top_level(modules: dict[str, Path]) -> list[str]:
    """The package's own modules and subpackages, one level down: what the layers place."""
    return sorted(m for m in modules if m.count(".") == 1)


def unplaced(modules: dict[str, Path], contracts: list[dict[str, object]]) -> dict[str, list[str]]:
    """Per contract, the top-level modules it should name and does not.

    The layers contract must place every module but ``__main__`` (the entry point over cli);
    each "only X touches Y" contract must list every module outside X, so a new module (e.g.
    explain.py) is never left outside the checks it should be under.
    """
    missing: dict[str, list[str]] = {}
    for contract in contracts:
        if contract["type"] == "layers":
            layers = contract["layers"]
            assert isinstance(layers, list)
            named = {m.strip() for layer in layers for m in str(layer).split("|")}
            wanted = [m for m in top_level(modules) if not m.endswith(".__main__")]
        else:
            named = set(contract["source_modules"])  # type: ignore[call-overload]
            forbidden = contract["forbidden_modules"]
            assert isinstance(forbidden, list)
            owners = {OWNERS[f.split(".")[0]] for f in forbidden if f.split(".")[0] in OWNERS}
            if not owners:
                continue  # a contract about our own packages (widgets), not an outside library
            wanted = [
                m
                for m in top_level(modules)
                if not m.endswith(".__main__") and not any(within(m, o) for o in owners)
            ]
        gaps = [m for m in wanted if m not in named]
        if gaps:
            missing[str(contract["name"])] = gaps
    return missing


def test_every_module_is_placed_in_the_import_contracts() -> None:
    assert unplaced(MODULES, import_contracts()) == {}


def test_the_contract_check_names_a_module_left_out() -> None:
    contracts = import_contracts()
    extra = {**MODULES, f"{PACKAGE}.newcomer": ROOT / "newcomer.py"}
    missing = unplaced(extra, contracts)
    assert sorted(missing) == sorted(
        str(c["name"]) for c in contracts if c["name"] != WIDGETS_CONTRACT
    )
    assert all(gaps == [f"{PACKAGE}.newcomer"] for gaps in missing.values())


WIDGETS_CONTRACT = (
    "Widgets render view models: they never reach the clinic, the store or the controller"
)


def test_the_checks_catch_a_module_that_breaks_the_rules(tmp_path: Path) -> None:
    """A stand-in package with one offender of each kind: the same checks must name them."""
    package = "fakeapp"
    pkg = tmp_path / package
    (pkg / "store").mkdir(parents=True)
    (pkg / "gui").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "store" / "__init__.py").write_text("import sqlite3\n")
    (pkg / "gui" / "__init__.py").write_text("")
    (pkg / "gui" / "window.py").write_text("import sqlite_utils\n")
    (pkg / "report.py").write_text(
        "def draw():\n    from PySide6 import QtGui\n\n"
        "import importlib\nimportlib.import_module('sqlite3')\n"
    )
    (pkg / "widget.py").write_text("import PySide6.QtCore\n")
    modules = discover(tmp_path, package)
    assert set(modules) == {
        package,
        f"{package}.store",
        f"{package}.gui",
        f"{package}.gui.window",
        f"{package}.report",
        f"{package}.widget",
    }
    problems = forbidden_imports(modules, package=package)
    assert [p.split(": ", 1)[1] for p in problems] == [
        f"{package}.gui.window imports sqlite_utils (only {package}.store may)",
        f"{package}.report imports PySide6 (only {package}.gui may)",
        f"{package}.report imports sqlite3 (only {package}.store may)",
        f"{package}.widget imports PySide6.QtCore (only {package}.gui may)",
    ]
    assert f"{package}.widget" in qt_free(modules, package)
    assert "PySide6.QtCore" in loads_qt(f"{package}.widget", tmp_path).split(",")
    assert loads_qt(f"{package}.report", tmp_path) == ""  # Qt only when draw() runs
