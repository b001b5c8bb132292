"""The training loader on generated shards: frame picking, decord and PyAV giving the same pixels, AV1 falling
back to PyAV, resize and crop, shard splitting over `DataLoader` workers (every clip once) and batching."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vlcurate.stages.media import commands
from vlcurate.stages.shard.loader import clip_dataset, collate_clips, decode_decord, decode_pyav, frame_indices


def test_frame_indices():
    assert frame_indices(100, 4) == [12, 37, 62, 87]  # the middles of four equal spans
    assert frame_indices(3, 6) == [0, 0, 1, 1, 2, 2]  # short clips repeat frames: a fixed T per batch
    assert frame_indices(5, None) == [0, 1, 2, 3, 4]
    assert frame_indices(132, None, fps=2, source_fps=25) == [0, 12, 25, 38, 50, 62, 75, 88, 100, 112, 125]
    assert frame_indices(132, 4, fps=2, source_fps=25) == [0, 12, 25, 38]
    assert frame_indices(0, 8) == []


def encode(path: Path, codec: str, frames: int, size: str = "160x120") -> Path:
    import ffmpeg

    args = {"h264": {"c:v": "libx264", "preset": "ultrafast"}, "av1": {"c:v": "libaom-av1", "cpu-used": 8}}
    source = ffmpeg.input(f"testsrc2=size={size}:rate=25", f="lavfi")
    commands.run(source.output(str(path), **{"frames:v": frames, "pix_fmt": "yuv420p"}, **args[codec]))
    return path


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> tuple[list[str], dict[str, int]]:
    """Three tars of clips as the shard stage writes them (.mp4, .json with frame_count and fps, .txt)."""
    import webdataset as wds

    root = tmp_path_factory.mktemp("shards")
    counts = {}
    urls = []
    for t in range(3):
        url = str(root / f"shard-{t:05d}.tar")
        with wds.TarWriter(url) as sink:
            for i in range(2):
                frames = 10 + 7 * (2 * t + i)
                key = f"{t:04d}{i:012d}_0000000_{frames:07d}"
                data = encode(root / f"{key}.mp4", "h264", frames).read_bytes()
                counts[key] = frames
                sink.write({"__key__": key, "mp4": data, "txt": f"clip {key}".encode(),
                            "json": json.dumps({"key": key, "frame_count": frames, "fps": 25.0}).encode()})
        urls.append(url)
    return urls, counts


def test_every_clip_once_through_a_two_worker_dataloader(shards):
    import torch

    urls, counts = shards
    loader = torch.utils.data.DataLoader(clip_dataset(urls, num_frames=None), batch_size=None, num_workers=2)
    seen = {}
    for sample in loader:
        assert sample["video"].dtype == torch.uint8 and sample["video"].shape[1:] == (3, 120, 160)
        assert sample["frame_count"] == sample["meta"]["frame_count"] == sample["video"].shape[0]
        assert sample["text"] == f"clip {sample['key']}"
        seen[sample["key"]] = sample["video"].shape[0]
    assert seen == counts


def test_batches_of_fixed_frames_and_size(shards):
    import torch

    urls, counts = shards
    data = clip_dataset(urls, num_frames=4, size=64, crop=(64, 80), shuffle=4, shard_shuffle=3, seed=3)
    loader = torch.utils.data.DataLoader(data, batch_size=3, num_workers=2, collate_fn=collate_clips)
    keys = []
    for batch in loader:
        assert batch["video"].shape[1:] == (4, 3, 64, 80)
        keys.extend(batch["key"])
    assert sorted(keys) == sorted(counts)
    layout = next(iter(clip_dataset(urls[:1], num_frames=2, size=(30, 40), layout="THWC")))
    assert tuple(layout["video"].shape) == (2, 30, 40, 3)


def test_decord_and_pyav_give_the_same_frames(tmp_path):
    data = encode(tmp_path / "a.mp4", "h264", 30).read_bytes()
    a, count_a = decode_decord(data, [0, 9, 29])
    b, count_b = decode_pyav(data, [0, 9, 29])
    assert count_a == count_b == 30 and a.shape == b.shape == (3, 120, 160, 3)
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 1.0


def test_av1_falls_back_to_pyav(tmp_path):
    import webdataset as wds

    try:
        data = encode(tmp_path / "av1.mp4", "av1", 12).read_bytes()
    except RuntimeError:  # ffmpeg exited non-zero
        pytest.skip("this ffmpeg has no AV1 encoder")
    url = str(tmp_path / "av1.tar")
    with wds.TarWriter(url) as sink:
        sink.write({"__key__": "av1clip", "mp4": data, "txt": b"an AV1 clip",
                    "json": json.dumps({"frame_count": 12, "fps": 25.0}).encode()})
    sample = next(iter(clip_dataset([url], num_frames=3)))
    assert sample["decoder"] == "pyav" and tuple(sample["video"].shape) == (3, 3, 120, 160)
    with pytest.raises(Exception):
        next(iter(clip_dataset([url], num_frames=3, decoder="decord")))


@pytest.mark.parametrize("kwargs,message", [
    ({"crop": True}, "crop must be a whole number >= 1 or None, not True"),
    ({"size": (224,)}, "size must be one side or \\(height, width\\), not \\(224,\\)"),
    ({"size": (224, 0)}, "size must be a whole number >= 1, not 0"),
    ({"num_frames": 0}, "num_frames must be a whole number >= 1 or None, not 0"),
    ({"fps": -2}, "fps must be a positive number"),
    ({"decoder": "ffmpeg"}, "decoder must be one of auto, decord, pyav, not 'ffmpeg'"),
    ({"layout": "NCHW"}, "layout must be TCHW or THWC"),
    ({"shuffle": -1}, "shuffle must be a whole number >= 0, not -1"),
])
def test_clip_dataset_refuses_nonsense_in_one_line(kwargs, message):
    from vlcurate.stages.shard.loader import clip_dataset

    with pytest.raises(ValueError, match=message):
        clip_dataset("nowhere/shard-*.tar", **kwargs)
