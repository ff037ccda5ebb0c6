"""The seams: the web layer and the commands call core functions, never SQL; one composition
root (runtime.py) opens the server's state for all of them."""

from __future__ import annotations

import ast
from pathlib import Path

import pyfiledrop

PACKAGE = Path(pyfiledrop.__file__).parent
SQL_MODULES = {"queries", "shares", "s3_parts", "tus_queries", "sqlite", "postgres"}
EDGES = [
    *sorted((PACKAGE / "web").glob("*.py")),
    PACKAGE / "admin.py",
    PACKAGE / "cli.py",
    PACKAGE / "runtime.py",
]


def _imported(path: Path) -> set[str]:
    """Every module a file imports, `from a import b` counted as both `a` and `a.b`."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _database_calls(path: Path) -> list[int]:
    """Lines calling `<something>.db.run(...)` or `.run_sync(...)` on a database."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("run", "run_sync")
            and ast.unparse(node.func.value).split(".")[-1] == "db"
        ):
            lines.append(node.lineno)
    return lines


def test_the_web_layer_and_the_commands_import_no_sql_module() -> None:
    offenders = {
        path.name: sorted(
            name
            for name in _imported(path)
            if name.startswith("pyfiledrop.meta.") and name.split(".")[2] in SQL_MODULES
        )
        for path in EDGES
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_web_layer_and_the_commands_run_no_statement_themselves() -> None:
    calls = {path.name: _database_calls(path) for path in EDGES}
    assert {name: lines for name, lines in calls.items() if lines} == {}


def test_only_the_composition_root_builds_the_core() -> None:
    builders = [
        path.relative_to(PACKAGE).as_posix()
        for path in sorted(PACKAGE.rglob("*.py"))
        if {"pyfiledrop.meta.open_database", "pyfiledrop.storage.local.LocalStorage"}
        <= _imported(path)
    ]
    assert builders == ["runtime.py"]
    assert "pyfiledrop.web.app" not in _imported(PACKAGE / "admin.py")
