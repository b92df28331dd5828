"""Every package the server imports at run time is installed by `pip install .` (README
command (a)), not only by the test extra."""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imported_top_level_modules() -> set[str]:
    names: set[str] = set()
    for folder in ("services", "workers"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"services", "workers"}


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s;\[<>=!~(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _runtime_closure() -> set[str]:
    """costline-server's declared dependencies and everything they require, without extras."""
    seen: set[str] = set()
    pending = [_requirement_name(r) for r in metadata.requires("costline-server") or []
               if "extra ==" not in r]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        pending += [_requirement_name(r) for r in requires if "extra ==" not in r]
    return seen


def test_every_runtime_import_is_a_declared_dependency() -> None:
    providers = metadata.packages_distributions()
    closure = _runtime_closure()
    missing = {
        module: providers.get(module, ["?"])
        for module in _imported_top_level_modules()
        if not any(d.lower().replace("_", "-") in closure for d in providers.get(module, []))
    }
    assert missing == {}, f"add these to [project.dependencies]: {missing}"
