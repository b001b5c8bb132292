"""The same torch (and BLAS) settings in every worker, local or Ray: device, dtype and thread counts, so float
reductions, and so captions and scores, come out equal wherever they run."""

from __future__ import annotations

import os


def torch_device(name: str) -> str:
    """`auto`: the GPU when there is one, else the CPU; any other name as given."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def thread_pools(threads: int):
    """Every BLAS and OpenMP pool held at `threads` while a model outside torch runs (CTranslate2's Whisper). Ray
    workers start with OMP_NUM_THREADS set to their CPUs, a local run with every core, and the two wrote different
    transcripts (language probability 0.8878 with the pools at 2 threads against 0.8625 at 1, on the demo's speech).
    A context manager."""
    import threadpoolctl

    return threadpoolctl.threadpool_limits(threads)


def torch_dtype(name: str, device: str):
    """A config's dtype name as torch's: `auto` is float16 on CUDA, float32 elsewhere (teachers and scorers alike)."""
    import torch

    if name == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    return getattr(torch, name)


def set_torch_threads(threads: int | None) -> int:
    """Same thread count local and on Ray, so float reductions, and so captions and scores, come out equal."""
    import torch

    n = threads or os.cpu_count() or 1
    torch.set_num_threads(n)
    return n
