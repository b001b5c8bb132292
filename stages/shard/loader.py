"""Training-side reading of vlcurate's shards: an iterable dataset of decoded clips for a torch `DataLoader`.

    from vlcurate.stages.shard.loader import clip_dataset, collate_clips
    data = clip_dataset(sorted(glob.glob("out/run/shard/*.tar")), num_frames=8, size=224, shuffle=1000)
    data = clip_dataset("s3://bucket/run/shard/*.tar", num_frames=8)  # tars on object storage
    loader = torch.utils.data.DataLoader(data, batch_size=8, num_workers=4, collate_fn=collate_clips)

Each sample's `.mp4` bytes are decoded in memory with decord (PyAV where decord cannot: AV1, or where decord is
not installed); webdataset shuffles the shards and splits them across nodes and `DataLoader` workers, so every tar
is read by one worker of one node per epoch. Nothing here imports Ray or another stage.
"""

from __future__ import annotations

import io
import json
import math
import typing
from dataclasses import dataclass
from typing import Any, Iterable, Literal, Sequence

import numpy as np

Decoder = Literal["auto", "decord", "pyav"]


def frame_indices(frame_count: int, num_frames: int | None, fps: float | None = None,
                  source_fps: float | None = None) -> list[int]:
    """Which of a clip's frames to decode: `num_frames` evenly spaced (the middle of equal spans), or frames
    `1/fps` seconds apart from the first (at most `num_frames` of them), or every frame. Short clips repeat
    frames, so a batch always has `num_frames` of them."""
    if frame_count <= 0:
        return []
    if fps:
        step = (source_fps or fps) / fps
        count = max(1, math.ceil(frame_count / step - 1e-9))
        picks = [min(frame_count - 1, int(round(i * step))) for i in range(count)]
        return picks[:num_frames] if num_frames else picks
    if not num_frames:
        return list(range(frame_count))
    return [min(frame_count - 1, int((i + 0.5) * frame_count / num_frames)) for i in range(num_frames)]


def decode_decord(data: bytes, wanted: Sequence[int] | None, threads: int = 1) -> tuple[np.ndarray, int]:
    """(frames as T x H x W x 3 uint8 RGB, the clip's frame count); `wanted` None: pick after counting."""
    import decord

    reader = decord.VideoReader(io.BytesIO(data), ctx=decord.cpu(0), num_threads=threads)
    count = len(reader)
    picks = list(wanted) if wanted is not None else list(range(count))
    return reader.get_batch(picks).asnumpy(), count


def decode_pyav(data: bytes, wanted: Sequence[int] | None, threads: int = 1) -> tuple[np.ndarray, int]:
    """The same with PyAV (any codec the ffmpeg libraries it ships decode: AV1 included), decoding in order."""
    import av

    frames: list[np.ndarray] = []
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        stream.thread_count = threads
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
    count = len(frames)
    picks = list(wanted) if wanted is not None else list(range(count))
    if any(p >= count for p in picks):
        raise ValueError(f"frames {picks} asked of a clip of {count}")
    return (np.stack([frames[p] for p in picks]) if picks else np.zeros((0, 0, 0, 3), np.uint8)), count


def resize(frames: np.ndarray, size: int | tuple[int, int] | None, crop: int | tuple[int, int] | None) -> np.ndarray:
    """`size` int: the short side to it, aspect kept; (h, w): exactly. `crop`: a centre crop after it."""
    import cv2

    if size is not None and len(frames):
        h, w = frames.shape[1:3]
        if isinstance(size, int):
            scale = size / min(h, w)
            target = (max(1, round(w * scale)), max(1, round(h * scale)))
        else:
            target = (size[1], size[0])
        if target != (w, h):
            frames = np.stack([cv2.resize(f, target, interpolation=cv2.INTER_AREA) for f in frames])
    if crop is not None and len(frames):
        ch, cw = (crop, crop) if isinstance(crop, int) else crop
        h, w = frames.shape[1:3]
        top, left = max(0, (h - ch) // 2), max(0, (w - cw) // 2)
        frames = frames[:, top:top + ch, left:left + cw]
    return frames


@dataclass(frozen=True)
class DecodeClip:
    """Turns one webdataset sample into a training sample (a plain, picklable object: workers may be spawned)."""

    num_frames: int | None = 8
    fps: float | None = None
    size: int | tuple[int, int] | None = None
    crop: int | tuple[int, int] | None = None
    decoder: Decoder = "auto"
    threads: int = 1
    layout: Literal["TCHW", "THWC"] = "TCHW"

    def __post_init__(self) -> None:
        """Nonsense is refused here, in one line, before any tar is opened (`crop=True` is not a crop of 1 px)."""
        _count("num_frames", self.num_frames, optional=True)
        if self.fps is not None and (isinstance(self.fps, bool) or not isinstance(self.fps, (int, float))
                                     or self.fps <= 0):
            raise ValueError(f"fps must be a positive number of frames per second or None, not {self.fps!r}")
        for name in ("size", "crop"):
            value = getattr(self, name)
            if isinstance(value, (tuple, list)):
                if len(value) != 2:
                    raise ValueError(f"{name} must be one side or (height, width), not {value!r}")
                for side in value:
                    _count(name, side)
            else:
                _count(name, value, optional=True)
        _count("threads", self.threads)
        if self.decoder not in typing.get_args(Decoder):
            raise ValueError(f"decoder must be one of {', '.join(typing.get_args(Decoder))}, not {self.decoder!r}")
        if self.layout not in ("TCHW", "THWC"):
            raise ValueError(f"layout must be TCHW or THWC, not {self.layout!r}")

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        import torch

        meta = json.loads(sample["json"])
        stated = int(meta.get("frame_count") or 0)
        wanted = frame_indices(stated, self.num_frames, self.fps, meta.get("fps")) if stated else None
        frames, count, used = self._decode(sample["mp4"], wanted)
        if wanted is None:  # no count stated: pick from what was decoded
            picks = frame_indices(count, self.num_frames, self.fps, meta.get("fps"))
            frames, wanted = frames[picks], picks
        frames = resize(frames, self.size, self.crop)
        video = torch.from_numpy(np.ascontiguousarray(frames))
        if self.layout == "TCHW":
            video = video.permute(0, 3, 1, 2).contiguous()
        text = sample["txt"].decode("utf-8") if isinstance(sample.get("txt"), bytes) else (sample.get("txt") or "")
        return {"key": sample["__key__"], "video": video, "text": text.strip(), "meta": meta,
                "frame_indices": list(wanted), "frame_count": count, "decoder": used}

    def _decode(self, data: bytes, wanted: list[int] | None) -> tuple[np.ndarray, int, str]:
        if self.decoder == "pyav":
            return (*decode_pyav(data, wanted, self.threads), "pyav")
        try:
            return (*decode_decord(data, wanted, self.threads), "decord")
        except Exception as exc:  # decord has no AV1 decoder (and no wheel on some platforms): PyAV has both
            if self.decoder == "decord" or isinstance(exc, MemoryError):
                raise
            return (*decode_pyav(data, wanted, self.threads), "pyav")


def store_urls(urls: list[str]) -> list[str]:
    """Tars on object storage (`s3://bucket/run/shard/*.tar`): globs expanded by listing, and webdataset taught to
    open s3:// (and gs:// without gsutil) through fsspec, with the same credentials as the pipeline. Local paths,
    `pipe:` and http(s) URLs pass as they are."""
    import shutil as _shutil

    from webdataset.gopen import gopen_schemes

    from vlcurate.pipeline import storage

    out: list[str] = []
    for url in urls:
        scheme = storage.protocol(url)
        if scheme in ("s3", "s3a") or (scheme == "gs" and _shutil.which("gsutil") is None):
            gopen_schemes[scheme] = _gopen_store
            if any(ch in url for ch in "*?["):
                where = storage.path(url.split("*")[0].rsplit("/", 1)[0])
                out += sorted(f"{scheme}://{k}" for k in where.fs.glob(url.split("://", 1)[1]))  # type: ignore
                continue
        out.append(url)
    return out


def _gopen_store(url: str, mode: str = "rb", bufsize: int = 8192, **_: Any):
    from vlcurate.pipeline import storage

    where = storage.path(url)
    return where.fs.open(where.path, mode, block_size=storage.READ_BLOCK, cache_type="readahead")  # type: ignore


def clip_dataset(urls: str | Iterable[str], *, num_frames: int | None = 8, fps: float | None = None,
                 size: int | tuple[int, int] | None = None, crop: int | tuple[int, int] | None = None,
                 shuffle: int = 0, shard_shuffle: int = 0, seed: int = 0, decoder: Decoder = "auto",
                 threads: int = 1, layout: Literal["TCHW", "THWC"] = "TCHW", resampled: bool = False):
    """A `webdataset.WebDataset` of decoded clips: `video` (uint8, T x C x H x W), `text` (the chosen caption),
    `meta` (the sample's JSON: span, every candidate and score), `key`, `frame_indices`, `frame_count`.

    `shard_shuffle` shuffles the tar order in a buffer of that many tars, `shuffle` the samples in a buffer of that
    many (both seeded: the same order for the same seed);
    shards are split across nodes (torch.distributed) and `DataLoader` workers. A worker left without a shard
    (more workers than tars) yields nothing instead of failing. `resampled` draws shards with replacement, for
    endless epochs."""
    import webdataset as wds

    _count("shuffle", shuffle, least=0)
    _count("shard_shuffle", shard_shuffle, least=0)
    decode = DecodeClip(num_frames, fps, size, crop, decoder, threads, layout)  # checks its arguments first
    urls = store_urls([urls] if isinstance(urls, str) else list(urls))
    data = wds.WebDataset(urls, shardshuffle=shard_shuffle or False, detshuffle=True, seed=seed,
                          nodesplitter=wds.split_by_node, workersplitter=wds.split_by_worker, resampled=resampled,
                          empty_check=False)
    if shuffle:
        data = data.shuffle(shuffle, seed=seed)
    return data.map(decode)


def _count(name: str, value: Any, optional: bool = False, least: int = 1) -> None:
    """A whole number of at least `least` (None where `optional`); booleans are not numbers here."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        allowed = f"a whole number >= {least}" + (" or None" if optional else "")
        raise ValueError(f"{name} must be {allowed}, not {value!r}")


def collate_clips(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """A batch: `video` stacked into one tensor when the clips' shapes agree (a fixed `num_frames` and `size` or
    `crop`), else a list; the other fields as lists."""
    import torch

    videos = [s["video"] for s in samples]
    same = len({tuple(v.shape) for v in videos}) == 1
    batch: dict[str, Any] = {"video": torch.stack(videos) if same and videos else videos}
    for name in ("key", "text", "meta", "frame_indices", "frame_count", "decoder"):
        batch[name] = [s[name] for s in samples]
    return batch


__all__ = ["DecodeClip", "clip_dataset", "collate_clips", "decode_decord", "decode_pyav", "frame_indices", "resize"]
