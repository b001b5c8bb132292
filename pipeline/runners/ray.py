"""One adapter that runs any Stage as a Ray Data actor pool. Stages stay Ray-free; only this file imports ray."""

from __future__ import annotations

import logging
import math
import os

import pyarrow as pa

from pipeline.runners.base import Runner, concat, split_batches
from pipeline.stage import Stage

log = logging.getLogger(__name__)


class _StageActor:
    """Holds one set-up stage per actor, so models load once per worker, not once per batch."""

    def __init__(self, stage: Stage):
        self.stage = stage
        self.stage.ensure_setup()

    def __call__(self, batch: pa.Table) -> pa.Table:
        return self.stage.process_batch(batch)


def plan_pool(requested_cpus: float, requested_gpus: float, pool_size: int | None, num_batches: int,
              cluster: dict[str, float]) -> tuple[int, float, float]:
    """Pool size and per-actor CPUs that fit the cluster.

    Whole-CPU actors on a 2-CPU machine can wait forever for a slot Ray Data itself holds, so CPUs per actor are
    shrunk to a fraction of what is free, and the pool never exceeds the batches it will get.
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
    pool_size = max(1, min(pool_size, max(num_batches, 1)))
    cpus = min(requested_cpus, usable / pool_size)
    cpus = math.floor(cpus * 100) / 100 or 0.01
    return pool_size, cpus, requested_gpus


class RayRunner(Runner):
    name = "ray"

    def __init__(self, address: str | None = None):
        import ray

        self._ray = ray
        if not ray.is_initialized():
            # None starts a local instance; "auto" or "ray://host:port" joins a cluster.
            ray.init(address=address, include_dashboard=False, log_to_driver=True,
                     runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}},
                     logging_level=logging.WARNING)
        from ray.data import DataContext

        ctx = DataContext.get_current()
        ctx.execution_options.preserve_order = True
        ctx.enable_progress_bars = os.environ.get("VLCURATE_PROGRESS", "1") != "0"

    def map(self, stage: Stage, table: pa.Table) -> pa.Table:
        ray = self._ray
        batches = split_batches(table, stage.resources.batch_size)
        if not batches:
            return concat([], stage)
        pool, cpus, gpus = plan_pool(stage.resources.cpus, stage.resources.gpus, stage.resources.pool_size,
                                     len(batches), ray.cluster_resources())
        log.info("%s: %d actors x %.2f CPU, %.2f GPU, %d batches", stage.name, pool, cpus, gpus, len(batches))
        # One block per batch: batch_size=None hands each actor exactly the batches the local runner uses.
        ds = ray.data.from_arrow(batches)
        ds = ds.map_batches(
            _StageActor,
            fn_constructor_kwargs={"stage": stage},
            batch_size=None,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=pool),
            num_cpus=cpus,
            num_gpus=gpus or None,
        )
        refs = ds.to_arrow_refs()
        return concat(ray.get(refs), stage)
