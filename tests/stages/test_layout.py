"""The guide's layout rules, checked on the source: a stage never imports another stage (what several share lives in
`stages/media/`, `stages/scorers/` or `stages/models.py`), and no stage imports Ray (runners do)."""

from __future__ import annotations

import ast
from pathlib import Path

STAGES = Path(__file__).resolve().parents[2] / "stages"
SHARED = {"media", "scorers", "selector", "app"}  # packages under stages/ that are not stages (app: the shell)


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return names


def _stage_packages() -> list[str]:
    return sorted(p.name for p in STAGES.iterdir() if (p / "__init__.py").exists() and p.name not in SHARED)


def test_no_stage_imports_another_stage():
    stages = set(_stage_packages())
    assert {"split", "caption", "score", "shard", "filters"} <= stages
    crossing = [f"{path.relative_to(STAGES.parent)} imports {name}"
                for own in stages for path in (STAGES / own).rglob("*.py") for name in _imports(path)
                if name.split(".")[:2] == ["vlcurate", "stages"] and len(name.split(".")) > 2
                and name.split(".")[2] in stages - {own}]
    assert crossing == []


def test_no_stage_or_shared_package_imports_ray():
    found = [f"{path.relative_to(STAGES.parent)} imports {name}" for path in STAGES.rglob("*.py")
             for name in _imports(path) if name.split(".")[0] == "ray"]
    assert found == []
