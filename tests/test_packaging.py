"""What gets installed is one package, `vlcurate`: the package list in pyproject.toml names every package folder,
nothing imports the repository's folders by their own names (which would load a second copy of a module, with
registries of its own), and a real install into an empty folder puts `vlcurate` alone at the top."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SOURCES = ("pipeline", "stages", "manifests", "tests", "bench")


def _package_name(folder: Path) -> str:
    """The installed name of a package folder, through pyproject's package-dir (longest folder first)."""
    mapping = PYPROJECT["tool"]["setuptools"]["package-dir"]
    rel = folder.relative_to(ROOT).as_posix()
    name, base = max(((n, d) for n, d in mapping.items() if rel == d or rel.startswith(d + "/")),
                     key=lambda item: len(item[1]))
    return name + rel[len(base):].replace("/", ".")


def test_the_package_list_names_every_package_folder():
    folders = {p.parent for top in ("pipeline", "stages", "manifests") for p in (ROOT / top).rglob("__init__.py")}
    assert sorted(PYPROJECT["tool"]["setuptools"]["packages"]) == sorted(_package_name(f) for f in folders)


def test_nothing_imports_the_folders_by_their_own_names():
    wrong = []
    for top in SOURCES:
        for path in (ROOT / top).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else \
                    [a.name for a in node.names] if isinstance(node, ast.Import) else []
                wrong += [f"{path.relative_to(ROOT)}: {n}" for n in names
                          if n.split(".")[0] in {"pipeline", "stages", "manifests"}
                          or n.startswith("vlcurate.stages.app")]
    assert wrong == []


@pytest.mark.slow
def test_an_install_into_an_empty_folder_puts_only_vlcurate_at_the_top(tmp_path):
    source, target = tmp_path / "source", tmp_path / "target"  # a copy: building leaves build/ in its source
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "pipeline", "stages", "manifests"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                             if (ROOT / name).is_dir() else {}))
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--target", str(target), str(source)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    # bin/ holds the `vlcurate` command (pip --target puts scripts there); no other name reaches the top
    assert sorted(p.name for p in target.iterdir() if p.name != "bin") == ["vlcurate", "vlcurate-0.1.0.dist-info"]
    assert (target / "vlcurate" / "cli.py").exists() and (target / "vlcurate" / "profiles" / "demo.yaml").exists()
    assert (target / "vlcurate" / "stages" / "report" / "templates" / "card.md.j2").exists()
    probe = subprocess.run([sys.executable, "-c", "import vlcurate.pipeline.stage, vlcurate.stages.catalog, "
                            "vlcurate.manifests; print(vlcurate.manifests.__file__)"], capture_output=True, text=True,
                           env={"PYTHONPATH": str(target), "PATH": ""}, cwd=tmp_path)
    assert probe.returncode == 0 and probe.stdout.startswith(str(target)), probe.stderr[-2000:]
    assert not (target / "vlcurate" / "stages" / "app").exists()
