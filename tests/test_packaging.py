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


def _import_graph() -> dict[str, set[str]]:
    """Each module of the package -> the package's modules it imports, at module level or inside a function
    (`from pkg import module` is an arrow to the module; imports only for type checkers are left out)."""
    files = {}
    for top in ("pipeline", "stages", "manifests"):
        for path in (ROOT / top).rglob("*.py"):
            name = _package_name(path.parent) + ("" if path.name == "__init__.py" else f".{path.stem}")
            files[name] = path

    def known(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in files}
    for module, path in files.items():
        tree = ast.parse(path.read_text())
        skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in
                   ast.unparse(node.test) for n in ast.walk(node)}
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in files]
                names = subs + ([node.module] if len(subs) < len(node.names) else [])
            else:
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            graph[module] |= {t for n in names if n.startswith("vlcurate") and (t := known(n)) and t != module}
    return graph


def test_no_module_imports_one_that_imports_it_back():
    """No circle of imports, however long: every module's dependencies can be read before it."""
    graph = _import_graph()
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                circles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert circles == []


def _layer(module: str) -> int:
    """0: the framework, 1: the contracts, 2: the stages and what they share, 3: the application shell."""
    for prefix, layer in (("vlcurate.pipeline", 0), ("vlcurate.manifests", 1), ("vlcurate.stages", 2)):
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return 3


def test_no_arrow_runs_up_the_layers():
    """The framework names nothing above it, the contracts only the framework, the stages never the shell."""
    up = sorted(f"{m} -> {t}" for m, targets in _import_graph().items() for t in targets if _layer(t) > _layer(m))
    assert up == []
