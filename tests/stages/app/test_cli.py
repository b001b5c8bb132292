from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from vlcurate.pipeline.executor import read_manifest
from vlcurate.stages.catalog import DEFAULT_PIPELINE
from vlcurate.cli import app

runner = CliRunner()

LIGHT = {
    "split": {"min_clip_s": 0.5, "stitch": {"enabled": False}},
    "caption": {"teachers": [{"name": "title", "kind": "title"}, {"name": "subtitles", "kind": "subtitles"},
                             {"name": "blip", "kind": "hf_image_captioner", "model": "tiny:blip",
                              "generation": {"max_new_tokens": 6}}]},
    "score": {"scorer": {"kind": "open_clip", "model": "tiny:open_clip"}},
    "shard": {"maxcount": 2},
}


@pytest.mark.parametrize("command", [[], ["run"], ["ingest"], ["split"], ["caption"], ["score"], ["shard"],
                                     ["teachers", "select"], ["status"]])
def test_help(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_profiles_are_listed():
    result = runner.invoke(app, ["profiles"])
    assert result.exit_code == 0 and "demo" in result.output and "pretrained" in result.output


def test_bad_config_and_missing_upstream_are_clear_errors(tmp_path):
    result = runner.invoke(app, ["run", "--output", str(tmp_path), "--set", "split.min_clip=3", "-i", "x"])
    assert result.exit_code == 2 and "min_clip" in result.output
    result = runner.invoke(app, ["split", "--output", str(tmp_path)])
    assert result.exit_code == 2 and "ingest stage has not finished" in result.output
    result = runner.invoke(app, ["run", "--output", str(tmp_path), "--stages", "split,bogus"])
    assert result.exit_code == 2 and "bogus" in result.output


@pytest.mark.slow
def test_folder_with_bad_files_runs_to_the_end(tmp_path, video_folder):
    import json

    import pyarrow.parquet as pq
    import webdataset as wds

    config = tmp_path / "light.yaml"
    config.write_text(yaml.safe_dump(LIGHT))
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", "-c", str(config), "-i", str(video_folder), "-o", str(out)])
    assert result.exit_code == 0, result.output

    ingest = {r["path"].rsplit("/", 1)[1]: r["error"] for r in pq.read_table(out / "ingest" / "manifest").to_pylist()}
    assert ingest["a_scenes.mp4"] is None and ingest["b_other.mp4"] is None
    assert ingest["c_corrupt.mp4"].startswith("ingest/corrupt")
    assert ingest["d_empty.mp4"].startswith("ingest/empty_file")
    assert ingest["e_text.mp4"].startswith("ingest/not_a_video")
    stats = json.loads((out / "shard" / "stats.json").read_text())
    assert stats["errors_by_reason"] == {"ingest/corrupt": 1, "ingest/empty_file": 1, "ingest/not_a_video": 1}

    index = read_manifest(out / "shard")
    samples = list(wds.WebDataset(sorted(str(p) for p in (out / "shard").glob("*.tar")), shardshuffle=False))
    assert len(samples) == index.num_rows == 6  # 4 shots of a_scenes + 2 of b_other
    green = [json.loads(s["json"]) for s in samples if json.loads(s["json"])["start_frame"] == 40]
    subs = {c["teacher"]: c["text"] for c in green[0]["candidates"]}
    assert subs["subtitles"] == "Now everything turns green."

    # a finished run is skipped; --overwrite redoes it
    part = out / "split" / "manifest" / "part-000000.parquet"
    before = part.stat().st_mtime_ns
    result = runner.invoke(app, ["run", "-c", str(config), "-i", str(video_folder), "-o", str(out)])
    assert result.exit_code == 0 and part.stat().st_mtime_ns == before
    result = runner.invoke(app, ["split", "-c", str(config), "-o", str(out), "--overwrite"])
    assert result.exit_code == 0 and part.stat().st_mtime_ns != before


def test_nothing_processable_exits_nonzero(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.mp4").write_text("nope")
    result = runner.invoke(app, ["ingest", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1 and "nothing could be processed" in result.output


@pytest.mark.parametrize("failure", ["interrupt", "dead_worker"])
def test_an_interrupted_or_broken_run_says_how_to_go_on(tmp_path, monkeypatch, failure):
    from concurrent.futures.process import BrokenProcessPool

    import vlcurate.run

    def stop(*args, **kwargs):
        raise KeyboardInterrupt() if failure == "interrupt" else BrokenProcessPool("a worker died")

    monkeypatch.setattr(vlcurate.run, "run_stages", stop)
    result = runner.invoke(app, ["run", "--output", str(tmp_path), "-i", str(tmp_path)])
    assert result.exit_code == (130 if failure == "interrupt" else 1)
    assert "run the same command again" in result.output and str(tmp_path) in result.output


def test_status_shows_done_interrupted_and_not_started_stages(tmp_path, video_folder, monkeypatch):
    from vlcurate.pipeline import parts
    from vlcurate.pipeline.executor import run_stage
    from vlcurate.pipeline.runners import LocalRunner
    from vlcurate.stages.split import SplitConfig, SplitStage

    result = runner.invoke(app, ["ingest", "-i", str(video_folder), "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    original = SplitStage.process_row

    def crash_on_second(self, row, ctx):
        if row["path"].endswith("b_other.mp4"):
            raise KeyboardInterrupt()
        return original(self, row, ctx)

    monkeypatch.setattr(SplitStage, "process_row", crash_on_second)
    config = SplitConfig(stitch={"enabled": False}, part_rows=1, resources={"pool_size": 1})
    with pytest.raises(KeyboardInterrupt):
        run_stage(SplitStage(config), parts.input_files(tmp_path / "ingest"), tmp_path, LocalRunner())
    result = runner.invoke(app, ["status", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("ingest") and "done: 5 in, 5 out, 3 errors" in lines[0]
    assert lines[1].startswith("split") and "interrupted: 1 of 5 parts done" in lines[1]
    assert all("not started" in line for line in lines[2:]) and len(lines) == len(DEFAULT_PIPELINE)


@pytest.mark.parametrize("args,says", [
    (["run", "--bogus"], "error: No such option: --bogus"),
    (["rnu"], "error: No such command 'rnu'. Did you mean 'run'?"),
    (["run", "-c", "/nonexistent/run.yaml"], "error: Invalid value for '--config' / '-c'"),
])
def test_usage_mistakes_are_one_line_exit_2(args, says):
    """Through the real entry point (`vlcurate` is `vlcurate.cli:main`), not typer's boxes."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "from vlcurate.cli import main; main()", *args], capture_output=True,
                          text=True)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(says) and lines[0].endswith("--help)"), done.stderr


def test_a_refused_run_leaves_no_output_folder_behind(tmp_path):
    out = tmp_path / "never"
    result = runner.invoke(app, ["run", "-p", "demo", "-i", str(tmp_path / "missing"), "-o", str(out)])
    assert result.exit_code == 2 and "is not a folder, a glob" in result.output
    assert not out.exists()
    (tmp_path / "kept").mkdir()  # a folder that was there before stays, with what it held
    (tmp_path / "kept" / "mine.txt").write_text("x")
    result = runner.invoke(app, ["run", "-p", "demo", "-i", str(tmp_path / "missing"), "-o", str(tmp_path / "kept")])
    assert result.exit_code == 2 and (tmp_path / "kept" / "mine.txt").exists()


def test_stage_commands_are_commands_with_input_only_where_it_means_something():
    split = runner.invoke(app, ["split", "--help"], terminal_width=200)
    assert split.exit_code == 0 and "split [OPTIONS]" in split.output and "COMMAND" not in split.output
    assert "--input" not in split.output and "local|ray" in split.output
    assert "--input" in runner.invoke(app, ["ingest", "--help"], terminal_width=200).output
    refused = runner.invoke(app, ["split", "-i", "videos/", "-o", "out"])
    assert refused.exit_code == 2 and "No such option: -i" in refused.output
    bad = runner.invoke(app, ["run", "-e", "spark"], terminal_width=200)
    assert bad.exit_code == 2 and "is not one of" in bad.output  # (the vlcurate command says it in one line)
