"""Two runs into one output folder: one refuses (or, with --wait, waits), the other's output equals a lone run's;
a lock left by a killed run is taken over with a message."""

from __future__ import annotations

import json
import os

import pytest

from vlcurate.pipeline.lock import NAME, output_lock
from tests.faults.common import error_lines, same_bytes, start, vlcurate

pytestmark = [pytest.mark.slow]  # each runs the real command in its own process


def race(root, config, listing, out, *extra: str) -> list:
    args = ["run", "-c", str(config), "-i", str(listing), "-o", str(out), *extra]
    procs = [start(*args), start(*args)]
    return [(p.wait(timeout=600), *p.communicate()) for p in procs]


def check_race(lone_run, n: int, *extra: str) -> None:
    root, config, listing = lone_run
    for k in range(n):
        out = root / f"race{'-'.join(extra)}-{k}"
        results = race(root, config, listing, out, *extra)
        codes = sorted(code for code, _, _ in results)
        assert codes == [0, 2], [r[2][-1500:] for r in results]
        refused = next(err for code, _, err in results if code == 2)
        assert len(error_lines(refused)) == 1 and "is in use by pid" in refused and "--wait" in refused
        assert same_bytes(out, root / "lone") == []


def test_two_runs_into_one_folder_one_refuses_the_other_is_whole(lone_run):
    """Through split, where unlocked runs used to leave split's shots empty (make faults races whole runs)."""
    check_race(lone_run, 1, "--stages", "ingest,split")


@pytest.mark.faults
def test_two_runs_into_one_folder_ten_times(lone_run):
    check_race(lone_run, 10)


@pytest.mark.faults
def test_with_wait_the_second_run_waits_then_finds_the_work_done(lone_run):
    root, config, listing = lone_run
    out = root / "race-wait"
    results = race(root, config, listing, out, "--wait")
    assert [code for code, _, _ in results] == [0, 0], [r[2][-1500:] for r in results]
    assert any("waiting for it to finish" in err for _, _, err in results)
    assert same_bytes(out, root / "lone") == []


def test_a_lock_held_here_refuses_naming_the_holder(tmp_path, lone_run):
    _, config, listing = lone_run
    with output_lock(tmp_path / "held"):
        result = vlcurate("ingest", "-c", str(config), "-i", str(listing), "-o", str(tmp_path / "held"))
    assert result.returncode == 2
    assert error_lines(result.stderr) == [error_lines(result.stderr)[0]]
    assert f"pid {os.getpid()}" in result.stderr


def test_a_stale_lock_of_a_dead_run_is_taken_over_with_a_message(tmp_path, lone_run):
    _, config, listing = lone_run
    out = tmp_path / "stale"
    out.mkdir()
    (out / NAME).write_text(json.dumps({"pid": 999999, "host": "gone", "started": 0, "command": "vlcurate run"}))
    result = vlcurate("ingest", "-c", str(config), "-i", str(listing), "-o", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "took over the lock of pid 999999 on gone" in result.stderr
    assert (out / NAME).read_text() == ""  # released cleanly


def test_status_says_which_run_is_working_on_a_folder(tmp_path):
    from typer.testing import CliRunner

    from vlcurate.cli import app

    out = tmp_path / "busy"
    with output_lock(out):
        (out / "ingest").mkdir()
        busy = CliRunner().invoke(app, ["status", "-o", str(out)])
    assert busy.exit_code == 0 and f"ingest   running (pid {os.getpid()} on" in busy.output
    idle = CliRunner().invoke(app, ["status", "-o", str(out)])
    assert "ingest   started" in idle.output
