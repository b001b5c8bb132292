"""Under Ray a machine failure inside a task is retried like a dead worker: a disk that is full for one clip's
write costs a retry, and the output is byte-identical to an uninterrupted local run."""

from __future__ import annotations

import pytest

from tests.faults.common import same_bytes, vlcurate

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.faults]  # make faults


def test_a_transient_full_disk_under_ray_is_retried(lone_run):
    root, config, listing = lone_run
    out = root / "ray-retried"
    # every Ray worker process meets a full disk at its second clip write, once; the retried task goes on
    result = vlcurate("run", "-c", str(config), "-i", str(listing), "-o", str(out), "--executor", "ray",
                      faults="ffmpeg.output=full@2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert same_bytes(out, root / "lone") == []
