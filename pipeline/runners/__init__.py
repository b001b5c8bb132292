"""Runners decide where a stage's tasks run; every runner gives each task the same rows and batches."""

from __future__ import annotations

from vlcurate.pipeline.runners.base import Runner, groups
from vlcurate.pipeline.runners.local import LocalRunner


def make_runner(executor: str, ray_address: str | None = None) -> Runner:
    if executor == "local":
        return LocalRunner()
    if executor == "ray":
        from vlcurate.pipeline.runners.ray import RayRunner  # ray is only imported when asked for

        return RayRunner(address=ray_address)
    raise ValueError(f"unknown executor {executor!r}; use 'local' or 'ray'")


__all__ = ["LocalRunner", "Runner", "groups", "make_runner"]
