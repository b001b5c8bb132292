"""pipeline/tasks.py: what a finished part records about the worker that made it, and what a task holds."""

from __future__ import annotations

import multiprocessing
import resource
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vlcurate.manifests import STORED_FRAMES
from vlcurate.pipeline import parts
from vlcurate.pipeline.stage import Context, Stage, Traits


def _child_peaks() -> tuple[float, float]:
    from vlcurate.pipeline.tasks import peak_rss_mb

    return peak_rss_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM and ru_maxrss's carry-over are Linux's")
def test_a_spawned_workers_peak_rss_is_its_own_not_its_drivers():
    held = np.ones(400 * 2**20, np.uint8)  # the driver holds 400 MB when the worker starts
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        own, carried = pool.apply(_child_peaks)
    assert held.sum() == held.size
    assert carried > 400  # what getrusage says: the driver's pages, counted before the worker's exec
    assert own < 300  # what stats.json now records: the worker's own interpreter and imports


CLIP_MB = 4  # each clip's stored frames: 4 frames of 1 MB (incompressible bytes: only their size matters here)


class _FrameSizes(Stage):
    """Reads each batch's frames (into Python bytes, as the filters do) and writes their sizes."""

    name = "frame_sizes"
    traits = Traits(loads=(STORED_FRAMES,))
    output_schema = pa.schema([("clip_id", pa.string()), ("frame_bytes", pa.int64())])

    def process_batch(self, batch: pa.Table, ctx: Context = Context()) -> pa.Table:
        sizes = [sum(map(len, frames)) for frames in batch.column("frames").to_pylist()]
        return pa.table({"clip_id": batch.column("clip_id"), "frame_bytes": pa.array(sizes, pa.int64())})


def _write_input(root: Path, clips: int) -> Path:
    """A part of `clips` rows whose frames sit in a frame store, as split leaves them."""
    rng = np.random.default_rng(0)
    frames = [rng.bytes(CLIP_MB * 2**20 // 4) for _ in range(4)]
    table = pa.table({"clip_id": [f"clip{i:03d}" for i in range(clips)],
                      "frames": pa.array([frames] * clips, STORED_FRAMES.type)})
    table, side = parts.store_column(table, "frames", "clip_id", "split/frames/part-000000.parquet")
    parts.write_table(root / "split/frames/part-000000.parquet", side, stored=True)
    parts.write_table(root / "split/manifest/part-000000.parquet", table)
    return root / "split/manifest/part-000000.parquet"


def _run_in_child(root: str, clips: int, batch_size: int) -> tuple[float, float, list[int]]:
    """In a fresh process: (RSS before the stage in MB, the stage's peak as stats.json records it, frame sizes)."""
    import re

    from vlcurate.pipeline.executor import read_manifest, run_stage
    from vlcurate.pipeline.runners.local import LocalRunner
    from vlcurate.pipeline.stage import Resources, StageConfig

    before = int(re.search(r"VmRSS:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) / 1024
    stage = _FrameSizes(StageConfig(resources=Resources(batch_size=batch_size)))
    stats = run_stage(stage, [(str(Path(root) / "split/manifest/part-000000.parquet"), clips)], root, LocalRunner())
    sizes = read_manifest(Path(root) / "frame_sizes").column("frame_bytes").to_pylist()
    return before, stats["driver_peak_rss_mb"], sizes


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak RSS is read from /proc")
def test_a_task_holds_one_batchs_frames_not_its_parts(tmp_path):
    """Batches of 4 clips of 4 MB: a part of 64 clips peaks where a part of 8 does (the 56 more clips' 224 MB of
    frames add at most a tenth of that), because frames are read per batch from small row groups, never per part."""
    peaks = {}
    for clips in (8, 64):
        root = tmp_path / str(clips)
        _write_input(root, clips)
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            before, peak, sizes = pool.apply(_run_in_child, (str(root), clips, 4))
        assert sizes == [CLIP_MB * 2**20] * clips  # every clip got its own frames back
        peaks[clips] = peak - before
    assert parts.stored_group_rows(pq.read_table(tmp_path / "64/split/frames/part-000000.parquet")) == 1
    growth = peaks[64] - peaks[8]
    assert growth < 0.1 * 56 * CLIP_MB, f"64 clips peaked {growth:.0f} MB above 8 clips ({peaks})"
    assert peaks[64] < 64 * CLIP_MB, f"the task grew by {peaks[64]:.0f} MB: its whole part's frames"
