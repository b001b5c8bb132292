from __future__ import annotations

import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor, as_completed

import pyarrow as pa
from tqdm.auto import tqdm

from pipeline.runners.base import Runner, Sink, concat, split_batches
from pipeline.stage import Stage

_WORKER_STAGE: Stage | None = None
_SETUP_ERROR: BaseException | None = None


def _init_worker(stage: Stage) -> None:
    global _WORKER_STAGE, _SETUP_ERROR
    # Ctrl-C reaches the whole process group: a worker leaves at once and quietly, the driver reports it once
    # (unless the driver was started with Ctrl-C ignored, as `nohup` or `cmd &` in a script do)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, lambda *_: os._exit(130))
    _WORKER_STAGE = stage
    try:
        stage.ensure_setup()
    except Exception as exc:  # kept for the first batch to raise: an initializer's error only breaks the pool
        _SETUP_ERROR = exc


def _run_batch(batch: pa.Table) -> pa.Table:
    assert _WORKER_STAGE is not None
    if _SETUP_ERROR is not None:
        raise _SETUP_ERROR
    return _WORKER_STAGE.process_batch(batch)


def local_workers(stage: Stage, num_batches: int) -> int:
    """CPU-bound stages (split) fan out over processes; model stages keep one copy of their models."""
    if stage.resources.pool_size:
        wanted = stage.resources.pool_size
    elif stage.local_parallel:
        wanted = os.cpu_count() or 1
    else:
        wanted = 1
    return max(1, min(wanted, num_batches))


class LocalRunner(Runner):
    """In-process, or a pool of spawned processes for CPU-bound stages; same batches, same order, a progress bar.
    A stage's parts run one after the other."""

    name = "local"

    def map_part(self, stage: Stage, table: pa.Table, sink: Sink | None = None) -> pa.Table:
        batches = split_batches(table, stage.resources.batch_size)
        workers = local_workers(stage, len(batches))
        outputs: list[pa.Table | None] = [None] * len(batches)

        def done(i: int, output: pa.Table) -> None:
            outputs[i] = output
            if sink is not None:
                sink(concat([output], stage))
            bar.update(batches[i].num_rows)

        with tqdm(total=table.num_rows, desc=stage.label, unit="row", disable=None) as bar:
            if workers == 1:
                if batches:
                    stage.ensure_setup()
                for i, batch in enumerate(batches):
                    done(i, stage.process_batch(batch))
            else:
                context = multiprocessing.get_context("spawn")  # fork after torch or threads is unsafe
                with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                         initargs=(stage,)) as pool:
                    futures = {pool.submit(_run_batch, batch): i for i, batch in enumerate(batches)}
                    for future in as_completed(futures):
                        done(futures[future], future.result())
        return concat([o for o in outputs if o is not None], stage)
