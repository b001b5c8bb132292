"""One adapter that runs any Stage as a Ray Data actor pool. Stages stay Ray-free; only this file imports ray."""

from __future__ import annotations

import logging
import math
import os

import pyarrow as pa

from pipeline.runners.base import PartSinks, Runner, Sink, concat, split_batches
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

    def map(self, stage: Stage, table: pa.Table, sinks: PartSinks | None = None) -> pa.Table:
        """Parts that can stream together run as one Ray Data pipeline, an actor pool each, all at work at once on
        different batches; the next group starts on the previous group's output. Only a group's last part reaches
        the driver, so only its batches go to `sinks`."""
        cluster = self._ray.cluster_resources()
        last = -1
        for group in stream_groups(stage.parts(), cluster):
            last += len(group)
            table = self._map_chain(group, table, cluster, sinks(last) if sinks else None)
        return table

    def map_part(self, stage: Stage, table: pa.Table, sink: Sink | None = None) -> pa.Table:
        return self._map_chain([stage], table, self._ray.cluster_resources(), sink)

    def _map_chain(self, parts: list[Stage], table: pa.Table, cluster: dict[str, float],
                   sink: Sink | None = None) -> pa.Table:
        ray = self._ray
        batches = split_batches(table, parts[0].resources.batch_size)
        if not batches:
            return concat([], parts[-1])
        # One block per batch: batch_size=None hands each actor exactly the batches the local runner uses, and each
        # actor returns one block per block, so later parts of the chain see the same batches too.
        ds = ray.data.from_arrow(batches)
        for part in parts:
            res = part.resources
            pool, cpus, gpus = plan_pool(res.cpus, res.gpus, res.pool_size, len(batches), share(part, parts, cluster))
            log.info("%s: %d actors x %.2f CPU, %.2f GPU, %d batches", part.label, pool, cpus, gpus, len(batches))
            actor = type(part.label.replace(":", "_"), (_StageActor,), {})  # named per part in Ray's progress
            ds = ds.map_batches(
                actor,
                fn_constructor_kwargs={"stage": part},
                batch_size=None,
                batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=pool),
                num_cpus=cpus,
                num_gpus=gpus or None,
            )
        outputs = []
        # blocks stream back in order as their batches finish, so the sink saves work while the rest still runs
        for block in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            outputs.append(block)
            if sink is not None:
                sink(concat([block], parts[-1]))
        return concat(outputs, parts[-1])


def stream_groups(parts: list[Stage], cluster: dict[str, float]) -> list[list[Stage]]:
    """Consecutive parts that can run as one pipeline: the same batch size (so no re-batching between them) and
    GPUs enough for one worker of each at the same time."""
    total_gpus = float(cluster.get("GPU", 0.0))
    groups: list[list[Stage]] = []
    for part in parts:
        group = groups[-1] if groups else None
        fits = group is not None and part.resources.batch_size == group[0].resources.batch_size and (
            part.resources.gpus == 0 or sum(p.resources.gpus for p in group) + part.resources.gpus <= total_gpus)
        if fits:
            group.append(part)  # type: ignore[union-attr]
        else:
            groups.append([part])
    return groups


def share(part: Stage, group: list[Stage], cluster: dict[str, float]) -> dict[str, float]:
    """The slice of the cluster a part's pool may plan on while the group's other pools run beside it: CPUs and GPUs
    in proportion to what each part asks per worker."""
    cpus = sum(p.resources.cpus for p in group)
    gpus = sum(p.resources.gpus for p in group)
    out = {"CPU": float(cluster.get("CPU", 1.0)) * part.resources.cpus / cpus}
    out["GPU"] = float(cluster.get("GPU", 0.0)) * (part.resources.gpus / gpus if gpus else 1.0)
    return out
