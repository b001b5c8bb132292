"""No worker outlives its run: SIGKILL or SIGTERM of the driver during split ends its workers within seconds, and
an immediate `--overwrite` rerun with another setting gives the same bytes as a clean run with that setting (the
orphans used to write the old setting's parts into it, and the rerun took them as done)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml
from typer.testing import CliRunner

from vlcurate.cli import app
from tests.fixtures import make_video
from tests.test_kill import outputs

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux processes")]

CONFIG = {"stages": ["ingest", "split"], "ingest": {"part_rows": 1},
          "split": {"min_clip_s": 0.5, "stitch": {"enabled": False}, "part_rows": 1,
                    "resources": {"pool_size": 2}}}
RERUN = ["--overwrite", "--set", "split.min_clip_s=2.5"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """10 videos (enough split tasks that some are queued when the driver dies), a config, a clean run at 2.5 s."""
    root = tmp_path_factory.mktemp("orphans")
    (root / "videos").mkdir()
    for k in range(10):
        make_video(root / "videos" / f"v{k:02d}.mp4", [40 + 7 * k, 55, 60, 45], size=(320, 240))
    config = root / "run.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    clean = root / "clean"
    result = CliRunner().invoke(app, ["run", "-c", str(config), "-i", str(root / "videos"), "-o", str(clean),
                                      "--set", "split.min_clip_s=2.5"])
    assert result.exit_code == 0, result.output
    return root, config


def _start(root: Path, config: Path, out: Path, *extra: str) -> subprocess.Popen:
    code = "from vlcurate.cli import main; main()"
    args = ["run", "-c", str(config), "-i", str(root / "videos"), "-o", str(out), *extra]
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "VLCURATE_PROGRESS": "0"})


def _workers_when_split_runs(driver: subprocess.Popen, out: Path) -> list[psutil.Process]:
    """The driver's worker processes once split has finished a first part (others still queued or running)."""
    done = out / "split" / "_work" / "done" / "pass0"
    deadline = time.monotonic() + 120
    while not (done.exists() and any(done.glob("*.json"))):
        assert driver.poll() is None, driver.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "split never finished a part"
        time.sleep(0.05)
    found = psutil.Process(driver.pid).children(recursive=True)
    # Ray's node agents hold no stage and write nothing; they notice their raylet is gone within a minute or two
    return [p for p in found if not p.name().endswith("Agent")]


@pytest.mark.parametrize("executor", ["local", "ray"])
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_killing_the_driver_ends_its_workers_and_a_rerun_is_clean(inputs, how, executor):
    """Under Ray the workers are the local Ray instance the driver started (raylet, its workers and actors)."""
    root, config = inputs
    out = root / f"killed-{how.name}-{executor}"
    ingest = CliRunner().invoke(app, ["run", "-c", str(config), "-i", str(root / "videos"), "-o", str(out),
                                      "--stages", "ingest"])  # here, so the killed driver starts with split
    assert ingest.exit_code == 0, ingest.output
    driver = _start(root, config, out, "--executor", executor)
    workers = _workers_when_split_runs(driver, out)
    assert workers, "split ran without worker processes"
    driver.send_signal(how)
    code = driver.wait(60)
    assert code == (-9 if how == signal.SIGKILL else 128 + signal.SIGTERM), driver.stderr.read().decode()[-2000:]
    gone, alive = psutil.wait_procs(workers, timeout=10 if executor == "ray" else 5)
    assert not alive, f"workers alive after the driver died: {[(p.pid, p.name()) for p in alive]}"
    assert not (out / "split" / "_SUCCESS").exists()
    result = CliRunner().invoke(app, ["run", "-c", str(config), "-i", str(root / "videos"), "-o", str(out), *RERUN])
    assert result.exit_code == 0, result.output
    want, got = outputs(root / "clean"), outputs(out)
    assert sorted(got) == sorted(want)
    assert [name for name in want if got[name] != want[name]] == []
