"""Synthetic labelled data for the trainable selector: clips of coloured shapes ("red circles"), candidates that
differ from the true caption only in the colour or the shape word. A mean of frame embeddings cannot see frame
order, so there are no direction words; what the selector must learn is colour and shape, which an untrained model
picks at chance. Deterministic by seed, so tests and the offline demo prove that training works without weights."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (35, 165, 45),
    "blue": (40, 70, 220),
    "yellow": (235, 205, 35),
}
SHAPES = ("circle", "square", "triangle")
TEMPLATE = "{colour} {shape}s"
SOURCE = "synthetic://shapes"


@dataclass(frozen=True)
class SynthConfig:
    clips: int = 400
    seed: int = 0
    frames: int = 2          # frames per clip; the shapes shift a little between them
    candidates: int = 4      # the true caption plus candidates - 1 that differ in one word
    size: int = 64           # square frames; the tiny open_clip model's input size (4 x 4 of its 16-pixel patches)


def caption(colour: str, shape: str) -> str:
    return TEMPLATE.format(colour=colour, shape=shape)


def distractors(colour: str, shape: str) -> list[tuple[str, str]]:
    """Every caption one word away from the truth: same shape in another colour, or same colour another shape."""
    return [(c, shape) for c in COLOURS if c != colour] + [(colour, s) for s in SHAPES if s != shape]


def _draw_shape(draw, shape: str, rgb: tuple[int, int, int], cx: float, cy: float, radius: float) -> None:
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    if shape == "circle":
        draw.ellipse(box, fill=rgb)
    elif shape == "square":
        draw.rectangle(box, fill=rgb)
    elif shape == "triangle":
        draw.polygon([(cx, cy - radius), (cx - radius, cy + radius), (cx + radius, cy + radius)], fill=rgb)
    else:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")


def clip_frames(rng: np.random.Generator, colour: str, shape: str, frames: int, size: int) -> list[bytes]:
    """JPEG frames tiled 4 x 4 with one shape on a grey background (at 64 pixels a tile is one patch of the tiny
    model: a shape is then a patch pattern it can learn in a few hundred steps; a single shape anywhere in the
    frame takes far longer). Shape size, background, colour and each shape's offset in its tile are jittered, so no
    two clips are alike, held-out clips are new images, and the shapes move a little from frame to frame."""
    from PIL import Image, ImageDraw

    cell = size / 4
    occupied = [(x, y) for y in range(4) for x in range(4)]
    radius = cell * rng.uniform(0.32, 0.44)
    grey = int(rng.integers(112, 145))
    background = tuple(int(np.clip(grey + rng.integers(-6, 7), 0, 255)) for _ in range(3))
    rgb = tuple(int(np.clip(v + rng.integers(-12, 13), 0, 255)) for v in COLOURS[colour])
    slack = min(cell / 16, cell / 2 - radius - 0.5)
    out = []
    for _ in range(frames):
        image = Image.new("RGB", (size, size), background)
        draw = ImageDraw.Draw(image)
        for x, y in occupied:
            dx, dy = rng.uniform(-slack, slack, 2)
            _draw_shape(draw, shape, rgb, (x + 0.5) * cell + dx, (y + 0.5) * cell + dy, radius)
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def generate(config: SynthConfig = SynthConfig()) -> tuple[pa.Table, pa.Table]:
    """(captions manifest, labels): every clip's candidates in random order under teachers synth0..synthK-1, and
    one label row per clip naming the true candidate by teacher and by text."""
    from vlcurate.manifests import CAPTIONS, with_frames

    k = config.candidates
    most = 1 + (len(COLOURS) - 1) + (len(SHAPES) - 1)
    if not 2 <= k <= most:
        raise ValueError(f"candidates must be 2..{most} (the truth and captions one word away), got {k}")
    if config.clips < 1 or config.frames < 1:
        raise ValueError("clips and frames must be at least 1")
    rng = np.random.default_rng(config.seed)
    video_id = f"synth{config.seed:011d}"[-16:]
    rows, labels = [], []
    for n in range(config.clips):
        colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        pool = distractors(colour, shape)
        picked = [pool[i] for i in rng.choice(len(pool), size=k - 1, replace=False)]
        texts = [caption(colour, shape)] + [caption(c, s) for c, s in picked]
        order = rng.permutation(k)
        texts = [texts[i] for i in order]
        truth = int(np.flatnonzero(order == 0)[0])
        start, end = n * config.frames, (n + 1) * config.frames
        clip_id = f"{video_id}_{start}_{end}"
        candidates = [{"teacher": f"synth{i}", "kind": "synthetic", "model": None, "weights": None, "inputs": [],
                       "prompt_hash": None, "text": t, "status": "ok", "reason": None, "seconds": 0.0,
                       "score": None, "text_truncated": None} for i, t in enumerate(texts)]
        rows.append({"video_id": video_id, "path": f"{SOURCE}/{config.seed}", "title": None, "clip_id": clip_id,
                     "clip_index": n, "start_frame": start, "end_frame": end, "num_frames": config.frames,
                     "width": config.size, "height": config.size, "detector": "synthetic",
                     "frame_indices": list(range(start, end)),
                     "frames": clip_frames(rng, colour, shape, config.frames, config.size),
                     "candidates": candidates, "error": None})
        labels.append({"clip_id": clip_id, "teacher": f"synth{truth}", "text": texts[truth]})
    return pa.Table.from_pylist(rows, schema=with_frames(CAPTIONS)), pa.Table.from_pylist(labels)


def write(out_dir: str | Path, config: SynthConfig = SynthConfig()) -> tuple[Path, Path]:
    """Writes `<out>/caption/` as a finished caption stage (so `vlcurate score -o <out>` runs on it; its frames in
    `caption/frames/`) and `<out>/labels.csv`; returns both paths."""
    import pyarrow.csv as pacsv

    from vlcurate.manifests import STORED_FRAMES
    from vlcurate.pipeline.executor import write_stage

    out = Path(out_dir)
    captions, labels = generate(config)
    stage = out / "caption"
    write_stage(stage, out, captions, {"stage": "caption", "synthetic": True, "rows_out": captions.num_rows,
                                       "rows_in": captions.num_rows, "errors_total": 0, "seconds": 0.0,
                                       "seed": config.seed, "frames": config.frames,
                                       "candidates": config.candidates, "size": config.size},
                stores=(STORED_FRAMES,))
    labels_path = out / "labels.csv"
    pacsv.write_csv(labels, labels_path)
    return stage, labels_path
