"""What every runner does: run a group of passes over their tasks, each task read and written by a worker, and
hand back only the tasks' records. Runners decide where tasks run, never what they compute."""

from __future__ import annotations

from typing import Any

from vlcurate.pipeline.stage import Stage

Record = dict[str, Any]
Task = dict[str, Any]


def groups(passes: list[Stage], cluster: dict[str, float]) -> list[list[int]]:
    """Consecutive passes that can run as one pipeline (indexes into `passes`): a pass that computes run-wide
    values or plans its own tasks starts a new group, and so does one whose GPUs would not fit beside the group's."""
    total_gpus = float(cluster.get("GPU", 0.0))
    out: list[list[int]] = []
    for k, p in enumerate(passes):
        group = out[-1] if out else None
        fits = group is not None and not p.is_barrier and (
            p.resources.gpus == 0 or sum(passes[i].resources.gpus for i in group) + p.resources.gpus <= total_gpus)
        if fits:
            group.append(k)  # type: ignore[union-attr]
        else:
            out.append([k])
    return out


class Runner:
    name: str = "base"

    def cluster(self) -> dict[str, float]:
        """The resources passes are planned on."""
        return {}

    def run(self, passes: list[Stage], chain: list[list[Task]]) -> list[list[Record]]:
        """`chain[i]`: the tasks of `passes[i]`; task j of a later pass reads what task j of the one before wrote.
        Returns each pass's records, in task order."""
        raise NotImplementedError

    def close(self) -> None:
        pass
