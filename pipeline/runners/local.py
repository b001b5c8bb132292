from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed

from tqdm.auto import tqdm

from vlcurate.pipeline import storage
from vlcurate.pipeline.runners.base import Record, Runner, Task
from vlcurate.pipeline.stage import Stage
from vlcurate.pipeline.tasks import execute

_WORKER_STAGE: Stage | None = None
_SETUP_ERROR: BaseException | None = None


def die_with(parent: int) -> None:
    """On Linux, ask the kernel to SIGKILL this worker when the process that started it dies, however it dies
    (kill -9 included); and leave at once if that already happened before the request took effect."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _init_worker(stage: Stage, parent: int, storage_options: dict | None = None) -> None:
    global _WORKER_STAGE, _SETUP_ERROR
    die_with(parent)
    if storage_options is not None:  # the driver's, in memory: what the environment does not say
        storage.configure(storage_options)
    # Ctrl-C reaches the whole process group: a worker leaves at once and quietly, the driver reports it once
    # (unless the driver was started with Ctrl-C ignored, as `nohup` or `cmd &` in a script do)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, lambda *_: os._exit(130))
    _WORKER_STAGE = stage
    try:
        stage.ensure_setup()
    except Exception as exc:  # kept for the first task to raise: an initializer's error only breaks the pool
        _SETUP_ERROR = exc


def _run_task(task: Task) -> Record:
    assert _WORKER_STAGE is not None
    if _SETUP_ERROR is not None:
        raise _SETUP_ERROR
    return execute(_WORKER_STAGE, task)


def local_workers(stage: Stage, num_tasks: int) -> int:
    """CPU-bound stages (split) fan out over processes; model stages keep one copy of their models."""
    if stage.resources.pool_size:
        wanted = stage.resources.pool_size
    elif stage.traits.local_parallel:
        wanted = os.cpu_count() or 1
    else:
        wanted = 1
    return max(1, min(wanted, num_tasks))


def end_workers(pool: ProcessPoolExecutor) -> None:
    """Kill a pool's processes and wait for them: an interrupted run leaves no worker behind to finish its task.
    (ProcessPoolExecutor has no public way to end its processes before Python 3.14's `terminate_workers`.)"""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        process.kill()
    for process in processes:
        process.join(5)
    pool.shutdown(wait=False, cancel_futures=True)


class LocalRunner(Runner):
    """In-process, or a pool of spawned processes for CPU-bound stages; each worker runs whole tasks (one part at a
    time, so memory stays bounded); a stage's passes run one after the other, with a progress bar each."""

    name = "local"

    def cluster(self) -> dict[str, float]:
        return {"CPU": float(os.cpu_count() or 1)}

    def run(self, passes: list[Stage], chain: list[list[Task]]) -> list[list[Record]]:
        return [self._run_pass(p, tasks) for p, tasks in zip(passes, chain)]

    def _run_pass(self, stage: Stage, tasks: list[Task]) -> list[Record]:
        workers = local_workers(stage, len(tasks))
        records: list[Record | None] = [None] * len(tasks)
        with tqdm(total=len(tasks), desc=stage.label, unit="part", disable=None) as bar:
            if workers == 1:
                for i, task in enumerate(tasks):
                    records[i] = execute(stage, task)
                    bar.update()
            else:
                context = multiprocessing.get_context("spawn")  # fork after torch or threads is unsafe
                with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                         initargs=(stage, os.getpid(), storage.current())) as pool:
                    futures = {pool.submit(_run_task, task): i for i, task in enumerate(tasks)}
                    try:
                        for future in as_completed(futures):
                            records[futures[future]] = future.result()
                            bar.update()
                    except KeyboardInterrupt:  # Ctrl-C, SIGTERM, SIGHUP: the workers end now, mid-task
                        end_workers(pool)
                        raise
                    except BaseException:  # a task failed: the others finish theirs, none not started starts
                        pool.shutdown(wait=True, cancel_futures=True)
                        raise
        return records  # type: ignore[return-value]
