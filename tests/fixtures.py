"""Generated test videos: scenes with known cuts, and every frame's index drawn as a binary code, so tests can
check both shot detection and frame-exact cutting without any downloaded file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

BITS = 10            # frame indices up to 1023
CODE_ROWS = 16       # height of the code band at the top of the frame


PALETTE = [(200, 40, 40), (40, 170, 60), (40, 60, 200), (220, 200, 40), (150, 40, 170), (40, 190, 190)]


def frame_image(index: int, scene: int, width: int, height: int) -> np.ndarray:
    """A strongly coloured background per scene, a square drifting smoothly inside the shot, the code band on top."""
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[:] = PALETTE[scene % len(PALETTE)]
    rows = np.arange(height)[:, None]
    img[..., 0] = np.clip(img[..., 0].astype(int) + (rows * 40 // height) - 20, 0, 255)  # gentle gradient
    side = height // 3
    x = (index * 2) % max(1, width - side)
    y = height // 2 - side // 2 + (scene * 17) % (height // 4)
    img[y:y + side, x:x + side] = [255 - c for c in PALETTE[scene % len(PALETTE)]]
    block = width // BITS
    for bit in range(BITS):
        on = (index >> bit) & 1
        img[:CODE_ROWS, bit * block:(bit + 1) * block] = 255 if on else 0
    return img


def read_index(rgb: np.ndarray) -> int:
    """Inverse of the code band drawn by `frame_image`, robust to compression."""
    width = rgb.shape[1]
    block = width // BITS
    value = 0
    for bit in range(BITS):
        patch = rgb[2:CODE_ROWS - 2, bit * block + 2:(bit + 1) * block - 2]
        if patch.mean() > 127:
            value |= 1 << bit
    return value


def make_video(path: str | Path, scene_lengths: list[int], fps: int = 25, size: tuple[int, int] = (320, 240),
               gop: int = 12, audio: bool = False) -> list[int]:
    """Writes an H.264 MP4; returns the cut frames (first frame of every shot after the first)."""
    import av

    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18", "g": str(gop), "preset": "ultrafast"}
        astream = container.add_stream("aac", rate=16000) if audio else None
        index = 0
        for scene, length in enumerate(scene_lengths):
            for _ in range(length):
                frame = av.VideoFrame.from_ndarray(frame_image(index, scene, width, height), format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
                index += 1
        for packet in stream.encode():
            container.mux(packet)
        if astream is not None:
            samples_total = int(index / fps * 16000)
            t = np.arange(samples_total) / 16000
            wave = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, samples_total, 1024):
                chunk = wave[start:start + 1024]
                aframe = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
                aframe.sample_rate = 16000
                aframe.pts = start
                for packet in astream.encode(aframe):
                    container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)
    cuts, total = [], 0
    for length in scene_lengths[:-1]:
        total += length
        cuts.append(total)
    return cuts


def decoded_indices(path: str | Path) -> list[int]:
    import av

    with av.open(str(path)) as container:
        return [read_index(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]


def run(stage, table, out_dir: str | Path, **options) -> list[dict]:
    """A stage over an input table, as in a pipeline (tasks, part files) in `out_dir`; its manifest's rows, with
    the stored frames put back."""
    from vlcurate.pipeline.executor import run_table

    return run_table(stage, table, out_dir, **options).to_pylist()


def ingest(path: str | Path, out_dir: str | Path, **cfg) -> "pa.Table":
    from vlcurate.pipeline.executor import run_table
    from vlcurate.stages.ingest import IngestConfig, IngestStage, discover

    return run_table(IngestStage(IngestConfig(**cfg)), discover(path), out_dir)


def split_rows(path: str | Path, out_dir: str | Path, **cfg) -> list[dict]:
    """Ingest and split `path` (a video or a folder) into `out_dir`: the clips, frames included."""
    from vlcurate.stages.split import SplitConfig, SplitStage

    return run(SplitStage(SplitConfig(**cfg)), ingest(path, out_dir), out_dir)


def scored(clips: list[dict]) -> "pa.Table":
    """Split's clips as a scored manifest with one made-up caption each."""
    import pyarrow as pa

    from vlcurate.manifests import SCORED

    rows = []
    for n, clip in enumerate(clips):
        rows.append({**clip, "candidates": [{"teacher": "t", "kind": "title", "model": "", "weights": "none",
                                             "inputs": ["title"], "prompt_hash": "h", "text": f"caption {n}",
                                             "status": "ok", "reason": None, "seconds": 0.5 + n, "score": 0.25}],
                     "caption": f"caption {n}", "caption_teacher": "t", "caption_score": 0.25, "scorer": "s"})
    return pa.Table.from_pylist(rows, schema=SCORED.schema)


def shard(clips: list[dict], out_dir: str | Path, **cfg) -> list[dict]:
    """The shard stage over split's clips (captions faked): the shard index's rows (one per sample), each with
    `mp4_path`, its clip taken out of the tar."""
    import tarfile

    from vlcurate.stages.shard import ShardConfig, ShardStage

    index = run(ShardStage(ShardConfig(audio=False, **cfg)), scored(clips), out_dir)
    assert len(index) == len(clips)
    for row in index:
        with tarfile.open(Path(out_dir) / "shard" / row["shard"]) as tar:
            row["mp4_path"] = Path(out_dir) / "clips" / f"{row['key']}.mp4"
            row["mp4_path"].parent.mkdir(exist_ok=True)
            row["mp4_path"].write_bytes(tar.extractfile(f"{row['key']}.mp4").read())
    return sorted(index, key=lambda r: r["start_frame"])


class TableView:
    """A stage's finished output as its `stats` reads it (part by part), over one in-memory table."""

    def __init__(self, table):
        self.table = table

    def parts(self, columns=None, kind="part"):
        yield self.table if columns is None else self.table.select([c for c in columns if c in self.table.column_names])

    def files(self, kind="part"):
        return []




def output_bytes(folder: str | Path, suffixes: tuple[str, ...] = (".parquet", ".tar")) -> dict[str, bytes]:
    """A run's outputs that must come out byte-identical (manifests, side tables, sidecars, tars), by relative path:
    not its input copy (`_input/`) nor files being written (`.name`)."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.suffix in suffixes and not p.name.startswith(".") and "_input" not in p.relative_to(folder).parts}


def solid_jpeg(color, size: tuple[int, int] = (64, 48)) -> bytes:
    """A JPEG of one colour (a name or an RGB tuple): frames whose content only needs to differ by colour."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="JPEG")
    return buf.getvalue()
