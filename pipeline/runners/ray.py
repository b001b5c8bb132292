"""One adapter that runs any Stage as a Ray Data actor pool. Stages stay Ray-free; only this file imports ray."""

from __future__ import annotations

import json
import logging
import math
import os
from typing import Any

import pyarrow as pa

from vlcurate.pipeline import storage
from vlcurate.pipeline.failures import MachineError, stop_on_signals
from vlcurate.pipeline.runners.base import Record, Runner, Task
from vlcurate.pipeline.stage import Stage
from vlcurate.pipeline.tasks import execute

log = logging.getLogger(__name__)


class _PassActor:
    """Holds one set-up pass per actor, so models load once per worker, not once per task; each call runs one task
    (reads its part, writes its files) and adds the task's record to the row."""

    def __init__(self, stage: Stage, column: int, storage_options: dict[str, Any]):
        import ray

        storage.configure(storage_options)
        self.stage, self.column = stage, column
        self.node = ray.get_runtime_context().get_node_id()
        self.stage.ensure_setup()

    def __call__(self, batch: pa.Table) -> pa.Table:
        tasks = batch.column(f"t{self.column}").to_pylist()
        records = [json.dumps({**execute(self.stage, json.loads(t)), "node": self.node}) for t in tasks]
        return batch.append_column(f"r{self.column}", pa.array(records, pa.string()))


def _run_chain(passes: list[Stage], tasks: list[Task], storage_options: dict[str, Any]) -> list[Record]:
    """One part through a group of passes that keep no state (no model): a plain Ray task, no actor to start."""
    import ray

    storage.configure(storage_options)
    node = ray.get_runtime_context().get_node_id()
    records = []
    for stage, task in zip(passes, tasks):
        stage.ensure_setup()
        records.append({**execute(stage, task), "node": node})
    return records


def plan_pool(requested_cpus: float, requested_gpus: float, pool_size: int | None, num_tasks: int,
              cluster: dict[str, float]) -> tuple[int, float, float]:
    """Pool size and per-actor CPUs that fit the cluster.

    Whole-CPU actors on a 2-CPU machine can wait forever for a slot Ray Data itself holds, so CPUs per actor are
    shrunk to a fraction of what is free, and the pool never exceeds the tasks it will get.
    """
    total_cpus = float(cluster.get("CPU", 1.0))
    total_gpus = float(cluster.get("GPU", 0.0))
    if requested_gpus > 0 and total_gpus <= 0:
        raise RuntimeError(f"stage asks for {requested_gpus} GPU per worker but the Ray cluster has none")
    usable = max(total_cpus * 0.9, 0.1)  # leave a little for Ray Data's own tasks
    if pool_size is None:
        pool_size = max(1, int(usable // requested_cpus))
        if requested_gpus > 0:
            pool_size = min(pool_size, max(1, int(total_gpus // requested_gpus)))
    pool_size = max(1, min(pool_size, max(num_tasks, 1)))
    cpus = min(requested_cpus, usable / pool_size)
    cpus = math.floor(cpus * 100) / 100 or 0.01
    return pool_size, cpus, requested_gpus


class RayRunner(Runner):
    """Workers read their parts and write their files; only the records (file names, rows, checksums) come back
    to the driver. A group of passes that keep models runs as a Ray Data pipeline over task descriptors, an actor
    pool per pass, streaming (a part goes on to the next pass as soon as the previous one wrote it); a group of
    passes without models runs as plain Ray tasks, one per part, with no actor to start."""

    name = "ray"

    def __init__(self, address: str | None = None):
        import ray

        self._ray = ray
        if not ray.is_initialized():
            # None starts a local instance; "auto" or "ray://host:port" joins a cluster.
            ray.init(address=address, include_dashboard=False, log_to_driver=True,
                     runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}},
                     logging_level=logging.WARNING)
            stop_on_signals(again=True)  # ray.init puts in its own SIGTERM handler, which aborts the driver
        from ray.data import DataContext

        ctx = DataContext.get_current()
        ctx.execution_options.preserve_order = True
        # a machine failure inside a task (a full disk, an I/O error) is retried like a dead worker; nothing of
        # the failed try was recorded, so a retry that succeeds leaves the same bytes
        ctx.actor_task_retry_on_errors = [MachineError]
        ctx.enable_progress_bars = os.environ.get("VLCURATE_PROGRESS", "1") != "0"

    def cluster(self) -> dict[str, float]:
        return self._ray.cluster_resources()

    def run(self, passes: list[Stage], chain: list[list[Task]]) -> list[list[Record]]:
        count = len(chain[0])
        if not count:
            return [[] for _ in passes]
        if not any(p.traits.keeps_loaded for p in passes):
            return self._run_tasks(passes, chain)
        return self._run_pools(passes, chain)

    def _run_tasks(self, passes: list[Stage], chain: list[list[Task]]) -> list[list[Record]]:
        """Passes without a model: each part goes through all of them in one plain Ray task (its CPUs the most any
        pass asks), a bounded number in flight, so the driver holds task descriptors and records only."""
        ray = self._ray
        count = len(chain[0])
        total = float(self.cluster().get("CPU", 1.0))
        # CPUs as asked (no Ray Data beside them to leave room for); whole ones keep Ray's worker processes, and
        # the modules they imported, alive between stages, where fractions let it start (and kill) extra ones
        cpus = min(max(p.resources.cpus for p in passes), total)
        pool = max(1, int(total // cpus))
        asked = max((p.resources.pool_size or 0) for p in passes)
        pool = min(pool, asked or pool, count)
        log.info("%s: %d tasks at once x %.2f CPU, %d parts", "+".join(p.label for p in passes), pool, cpus, count)
        # SPREAD: parts go to every node from the start. With Ray's default (the driver's node first), a two-node
        # cluster once split all five short parts of test_ray_cluster on the head node alone
        remote = ray.remote(num_cpus=cpus, max_retries=3, retry_exceptions=[MachineError],
                            scheduling_strategy="SPREAD")(_run_chain)
        stages = ray.put(passes)
        records: list[list[Record | None]] = [[None] * count for _ in passes]
        pending: dict[Any, int] = {}
        submitted = 0
        try:
            while submitted < count or pending:
                while submitted < count and len(pending) < 2 * pool:
                    pending[remote.remote(stages, [tasks[submitted] for tasks in chain], storage.current())] = \
                        submitted
                    submitted += 1
                done, _ = ray.wait(list(pending), num_returns=1)
                j = pending.pop(done[0])
                for k, record in enumerate(ray.get(done[0])):
                    records[k][j] = record
        finally:  # a failure or Ctrl-C: what is still running stops (finished parts stay, for a rerun)
            for ref in pending:
                ray.cancel(ref)
        return records  # type: ignore[return-value]

    def _run_pools(self, passes: list[Stage], chain: list[list[Task]]) -> list[list[Record]]:
        ray = self._ray
        count = len(chain[0])
        cluster = self.cluster()
        rows = [{"j": j, **{f"t{k}": json.dumps(chain[k][j]) for k in range(len(passes))}} for j in range(count)]
        ds = ray.data.from_items(rows, override_num_blocks=count)
        for k, part in enumerate(passes):
            res = part.resources
            pool, cpus, gpus = plan_pool(res.cpus, res.gpus, res.pool_size, count, share(part, passes, cluster))
            log.info("%s: %d actors x %.2f CPU, %.2f GPU, %d tasks", part.label, pool, cpus, gpus, count)
            actor = type(part.label.replace(":", "_"), (_PassActor,), {})  # named per pass in Ray's progress
            kwargs = {"stage": part, "column": k, "storage_options": storage.current()}
            ds = ds.map_batches(actor, fn_constructor_kwargs=kwargs, batch_size=1, batch_format="pyarrow",
                                compute=ray.data.ActorPoolStrategy(size=pool), num_cpus=cpus, num_gpus=gpus or None)
        records: list[list[Record | None]] = [[None] * count for _ in passes]
        columns = [f"r{k}" for k in range(len(passes))]
        for batch in ds.select_columns(["j", *columns]).iter_batches(batch_size=None, batch_format="pyarrow"):
            for row in batch.to_pylist():
                for k, column in enumerate(columns):
                    records[k][row["j"]] = json.loads(row[column])
        return records  # type: ignore[return-value]


def share(part: Stage, group: list[Stage], cluster: dict[str, float]) -> dict[str, float]:
    """The slice of the cluster a part's pool may plan on while the group's other pools run beside it: CPUs and GPUs
    in proportion to what each part asks per worker."""
    cpus = sum(p.resources.cpus for p in group)
    gpus = sum(p.resources.gpus for p in group)
    out = {"CPU": float(cluster.get("CPU", 1.0)) * part.resources.cpus / cpus}
    out["GPU"] = float(cluster.get("GPU", 0.0)) * (part.resources.gpus / gpus if gpus else 1.0)
    return out
