from __future__ import annotations

import pytest

from tests.faults.common import make_inputs, vlcurate


@pytest.fixture(scope="session")
def lone_run(tmp_path_factory, scene_video):
    """One uninterrupted run of the fault config: what every faulted and rerun run must equal."""
    root = tmp_path_factory.mktemp("faults")
    config, listing = make_inputs(root, scene_video[0])
    result = vlcurate("run", "-c", str(config), "-i", str(listing), "-o", str(root / "lone"))
    assert result.returncode == 0, result.stderr[-3000:]
    return root, config, listing
