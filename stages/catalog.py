"""Stages by name: what a run config's `stages` list, the CLI and `vlcurate status` are made from.

A stage registers itself where it is defined (`@STAGES.register("name")`); its module is listed in `BUILTIN`, in
a run config's `plugins`, or in an installed distribution's entry points (groups `vlcurate.stages`,
`vlcurate.filters`, `vlcurate.teachers`, `vlcurate.scorers`, `vlcurate.detectors`: `name = "module"`), which is its
registration here; the same goes for teachers, scorers and detectors, which register in their own registries.
Nothing else names a stage: the run config's sections, the CLI's sub-commands and each stage's input (the stage
before it in the list) follow from the list.
"""

from __future__ import annotations

import importlib

from vlcurate.pipeline.registry import Registry, entry_point_modules as modules_of
from vlcurate.pipeline.stage import Stage

ENTRY_POINT_GROUPS = ("vlcurate.stages", "vlcurate.filters", "vlcurate.teachers", "vlcurate.scorers",
                      "vlcurate.detectors")
STAGES: Registry[type[Stage]] = Registry("stage", attribute="name", groups=("vlcurate.stages", "vlcurate.filters"))

# modules whose import registers stages; a new stage or filter is one file plus one line here
BUILTIN = (
    f"vlcurate.stages.{name}" for name in ("ingest", "split", "asr", "caption", "score", "shard", "filters.motion",
                                           "filters.blank", "filters.dedup", "filters.text", "filters.nsfw",
                                           "filters.aesthetics")
)
DEFAULT_PIPELINE = ("ingest", "split", "asr", "caption", "score", "shard")
_loaded: set[str] = set()


def load(plugins: tuple[str, ...] | list[str] = ()) -> Registry[type[Stage]]:
    """The registry with the built-in stages, the installed plug-ins (entry points) and `plugins` (modules that
    register more) imported."""
    from vlcurate.pipeline.failures import UserError

    for module in (*BUILTIN, *entry_point_modules(), *plugins):
        if module not in _loaded:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise UserError(f"plugin {module!r} cannot be imported: {exc}") from None
            _loaded.add(module)
    return STAGES


def entry_point_modules() -> list[str]:
    """Modules that installed distributions name as vlcurate plug-ins, in a fixed order."""
    return modules_of(ENTRY_POINT_GROUPS)
