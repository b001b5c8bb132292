"""pipeline/tasks.py: what a finished part records about the worker that made it."""

from __future__ import annotations

import multiprocessing
import resource
import sys

import numpy as np
import pytest


def _child_peaks() -> tuple[float, float]:
    from pipeline.tasks import peak_rss_mb

    return peak_rss_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM and ru_maxrss's carry-over are Linux's")
def test_a_spawned_workers_peak_rss_is_its_own_not_its_drivers():
    held = np.ones(400 * 2**20, np.uint8)  # the driver holds 400 MB when the worker starts
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        own, carried = pool.apply(_child_peaks)
    assert held.sum() == held.size
    assert carried > 400  # what getrusage says: the driver's pages, counted before the worker's exec
    assert own < 300  # what stats.json now records: the worker's own interpreter and imports
