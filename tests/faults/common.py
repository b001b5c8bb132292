"""What the fault cases share: a small fast config, a run of the real command in its own process, and the
bytes a run leaves (every manifest, side table, sidecar and tar)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.fixtures import make_video, output_bytes

CONFIG = {
    "stages": ["ingest", "split", "caption", "score", "shard"],  # the framework's faults: no speech to transcribe
    "split": {"min_clip_s": 0.5, "stitch": {"enabled": False}, "part_rows": 1, "resources": {"pool_size": 1}},
    "caption": {"part_rows": 2, "teachers": [{"name": "title", "kind": "title"},
                                             {"name": "subtitles", "kind": "subtitles"}]},
    "score": {"part_rows": 2, "scorer": {"kind": "open_clip", "model": "tiny:open_clip"}, "min_score": -1.0},
    "shard": {"maxcount": 2, "part_rows": 2},
}


def make_inputs(root: Path, scene_video: Path, config: dict | None = None) -> tuple[Path, Path]:
    """Two good videos with titles, listed in a CSV, and the run config: (config, list)."""
    videos = root / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    (videos / "a.mp4").write_bytes(scene_video.read_bytes())
    if not (videos / "b.mp4").exists():
        make_video(videos / "b.mp4", [30, 40], size=(256, 192), audio=True)
    listing = root / "videos.csv"
    listing.write_text("path,title\n" + "".join(f"{p},Video {p.stem}\n" for p in sorted(videos.glob("*.mp4"))))
    path = root / "run.yaml"
    path.write_text(yaml.safe_dump(config or CONFIG))
    return path, listing


def vlcurate(*args: str, faults: str = "", timeout: float = 600) -> subprocess.CompletedProcess:
    """The real command in its own process (`VLCURATE_FAULTS` armed as given)."""
    env = {**os.environ, "VLCURATE_FAULTS": faults}
    return subprocess.run([sys.executable, "-m", "vlcurate.cli", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def start(*args: str, faults: str = "") -> subprocess.Popen:
    env = {**os.environ, "VLCURATE_FAULTS": faults}
    return subprocess.Popen([sys.executable, "-m", "vlcurate.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


outputs = output_bytes


def same_bytes(got: Path, want: Path) -> list[str]:
    """Files that differ or are missing on either side (empty: identical runs); only the stages `got` has."""
    a = outputs(got)
    stages = {name.split("/")[0] for name in a}
    b = {name: data for name, data in outputs(want).items() if name.split("/")[0] in stages}
    return sorted(set(a) ^ set(b)) + [n for n in sorted(set(a) & set(b)) if a[n] != b[n]]


def error_lines(stderr: str) -> list[str]:
    """stderr without log records (`HH:MM:SS LEVEL name: ...`) and progress bars: what the user is told."""
    import re

    return [ln for ln in stderr.splitlines() if ln.strip() and not re.match(r"\d\d:\d\d:\d\d \w+ ", ln)]
