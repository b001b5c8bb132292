"""Where the things a run names lie on this machine: `pkg:<module>/<file>` inside an installed package, and a
manifest row's video (a fetched copy kept in the run, a name that is not UTF-8, or the path as given). Manifests keep
the names as given, so two machines with other install paths write the same bytes."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

# vlcurate's own folders by their repository names: `pkg:manifests/samples/...` (the demo's list, and lists written
# before vlcurate was one installed package) names the file vlcurate ships, wherever it is installed
OWN_FOLDERS = {"manifests": "vlcurate.manifests", "stages": "vlcurate.stages", "pipeline": "vlcurate.pipeline"}


def package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(OWN_FOLDERS.get(module, module))
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {module!r} is not installed (pip install {module.replace('_', '-')})")
    return Path(list(spec.submodule_search_locations)[0])


def local_path(source: str) -> str:
    """A source as the user gave it, where it lies on this machine: `pkg:<module>/<file>` is looked up in the
    installed package (manifests keep the `pkg:` form, so two machines with other install paths write the same)."""
    if source.startswith("pkg:"):
        module, _, rel = source[4:].partition("/")
        if climbs_out(rel):
            raise ValueError(f"{source}: a pkg: path may not climb out of its package")
        return str(package_dir(module) / rel)
    return source


def climbs_out(rel: str) -> bool:
    """Whether a path meant to stay inside a folder (a `pkg:` path's part after the package) leaves it."""
    return os.path.isabs(rel) or os.path.normpath(rel or ".").split(os.sep)[0] == ".."


def source_path(row: dict, root: str | None = None) -> str:
    """Where a manifest row's video lies: a fetched URL's copy kept in the run (`source: run:sources/...`, under the
    run's output `root`), the exact bytes of a name that is not UTF-8, or the path as given."""
    if row.get("source"):
        from vlcurate.pipeline import storage

        return str(storage.in_run(row["source"], root))
    raw = row.get("path_bytes")
    return os.fsdecode(raw) if raw else local_path(row["path"])
