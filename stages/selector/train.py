"""The trainable selector: fine-tune the score stage's retrieval model on human choices between candidates.

Panda-70M fine-tuned its retrieval model so that, for each clip, the caption people chose outranks the clip's
other candidates: those are the hard negatives that matter (weight 1), while captions of other clips in the batch
are easy ones kept at weight 0.01. The trained model is saved as a folder the scorer of the same kind loads by
path (`score.scorer.model: <folder>`), so `score` picks with it exactly as it would with the base model.

Selection accuracy (the argmax over a clip's candidates equals the label) is measured with the scorer's own
inference path, on a held-out split fixed by a hash of the clip id, before and after training.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from vlcurate.stages.media import decode_jpeg
from vlcurate.stages.scorers.base import ScorerConfig, Trainable
from vlcurate.stages.scorers.finetuned import FORMAT, SELECTOR_JSON
from vlcurate.stages.selector.labels import Example, join_labels, read_labels, split_examples

if TYPE_CHECKING:
    import torch

    from vlcurate.stages.scorers.base import Scorer


class SelectorTrainConfig(BaseModel):
    """How to fine-tune; recorded in the checkpoint's selector.json."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(5, ge=1)
    lr: float = Field(1e-5, gt=0, description="AdamW learning rate (1e-5 suits pretrained CLIPs; a model trained "
                                               "from scratch, like the tiny demo one, wants ~1e-3)")
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int = Field(32, ge=1, description="labelled clips per step; their candidates form the text batch")
    holdout: float = Field(0.2, ge=0, lt=1, description="fraction of clips held out, chosen by a hash of the clip id")
    hard_negative_weight: float = Field(1.0, ge=0, description="weight of the clip's own other candidates")
    in_batch_negative_weight: float = Field(0.01, ge=0, description="weight of other clips' captions in the batch")
    logit_scale: float | None = Field(None, gt=0, description="fixed softmax scale; default: the model's own, learned")
    warmup: float = Field(0.1, ge=0, lt=1, description="fraction of the steps over which the learning rate ramps "
                                                      "up from zero; then it decays to zero on a cosine")
    max_grad_norm: float | None = Field(1.0, gt=0)
    seed: int = 0
    device: str = "auto"
    threads: int | None = Field(None, ge=1, description="torch CPU threads; default: this machine's cores")


@dataclass
class TrainResult:
    out: str
    train_clips: int
    holdout_clips: int
    holdout_chance: float | None   # None when nothing is held out (--holdout 0)
    holdout_before: float | None
    holdout_after: float | None
    train_before: float | None
    train_after: float | None
    loss_per_epoch: list[float] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    device: str = "cpu"
    skipped: dict[str, int] = field(default_factory=dict)


def selection_loss(clip_emb: "torch.Tensor", text_emb: "torch.Tensor", own: Sequence[Sequence[int]],
                   positives: Sequence[int], scale: "torch.Tensor | float", hard_negative_weight: float = 1.0,
                   in_batch_negative_weight: float = 0.01) -> "torch.Tensor":
    """Mean over clips of -log(e^s_pos / sum_j w_j e^s_j): s = scale * cosine over every text in the batch, w = 1
    for the chosen caption, `hard_negative_weight` for the clip's other candidates and `in_batch_negative_weight`
    for every other text (other clips' candidates). Texts must be unique in the batch, so a caption that is both
    one clip's candidate and another's is never its own negative.

    clip_emb (B, D) and text_emb (T, D) are unit vectors; own[i] indexes clip i's candidates in text_emb."""
    import torch

    batch, texts = clip_emb.shape[0], text_emb.shape[0]
    logits = scale * clip_emb @ text_emb.T
    weights = torch.full((batch, texts), float(in_batch_negative_weight), device=logits.device, dtype=logits.dtype)
    for i, (indices, positive) in enumerate(zip(own, positives)):
        weights[i, list(indices)] = float(hard_negative_weight)
        weights[i, positive] = 1.0
    log_weights = torch.log(weights)  # weight 0 -> -inf: that text is left out of the denominator
    rows = torch.arange(batch, device=logits.device)
    positive = logits[rows, torch.as_tensor(list(positives), device=logits.device)]
    return (torch.logsumexp(logits + log_weights, dim=1) - positive).mean()


def selection_accuracy(scorer: "Scorer", examples: Sequence[Example], decimals: int = 6) -> float | None:
    """Fraction of clips whose highest-scored candidate is the labelled one, scored as the score stage scores them
    (`score_pairs`, rounded to its `decimals`, ties to the earlier candidate as in `choose`)."""
    if not examples:
        return None
    scores = scorer.score_pairs([e.frames for e in examples], [e.texts for e in examples])
    # by text: when two teachers wrote the same caption, picking either is picking the labelled caption
    hits = sum(e.texts[int(np.argmax(np.round(s, decimals)))] == e.texts[e.label] for s, e in zip(scores, examples))
    return round(hits / len(examples), 6)


def _batch_loss(trainable: Trainable, batch: Sequence[Example], config: SelectorTrainConfig) -> "torch.Tensor":
    """Clip embeddings pooled as the scorer pools them (normalised mean of unit frame embeddings), texts unique."""
    import torch

    images, owners = [], []
    for n, e in enumerate(batch):
        decoded = [decode_jpeg(f) for f in e.frames]
        images.extend(decoded)
        owners.extend([n] * len(decoded))
    frame_emb = trainable.image_embeddings(images)
    owner_index = torch.as_tensor(owners, device=frame_emb.device)
    summed = torch.zeros(len(batch), frame_emb.shape[1], device=frame_emb.device, dtype=frame_emb.dtype)
    summed = summed.index_add(0, owner_index, frame_emb)
    clip_emb = torch.nn.functional.normalize(summed, dim=-1)  # the mean's direction: the count cancels

    texts: list[str] = []
    index: dict[str, int] = {}
    for e in batch:
        for t in e.texts:
            if t not in index:
                index[t] = len(texts)
                texts.append(t)
    text_emb = trainable.text_embeddings(texts)
    own = [[index[t] for t in e.texts] for e in batch]
    positives = [index[e.texts[e.label]] for e in batch]
    scale = config.logit_scale if config.logit_scale is not None else trainable.learned_scale()
    return selection_loss(clip_emb, text_emb, own, positives, scale, config.hard_negative_weight,
                          config.in_batch_negative_weight)


def learning_rate_factor(step: int, total: int, warmup: float) -> float:
    """Linear warm-up (the first updates of a fine-tune are the largest and least informed), then cosine decay to
    zero (the last steps refine instead of jumping around the minimum)."""
    warm = int(round(total * warmup))
    if step < warm:
        return (step + 1) / (warm + 1)
    return 0.5 * (1 + float(np.cos(np.pi * (step - warm) / max(1, total - warm))))


def _progress(total: int, desc: str):
    from tqdm.auto import tqdm

    disable = True if os.environ.get("VLCURATE_PROGRESS", "1") == "0" else None
    return tqdm(total=total, desc=desc, unit="step", disable=disable)


def load_scorer(scorer_config: ScorerConfig) -> "Scorer":
    """The base model, loaded exactly as the score stage loads it, in float32 (half precision does not train)."""
    from vlcurate.stages.scorers import SCORERS, Scorer

    kinds = [k for k in SCORERS.names() if SCORERS.get(k).trainable is not Scorer.trainable]
    if scorer_config.kind not in kinds:
        raise ValueError(f"a selector can be trained from {', '.join(kinds)} scorers, not {scorer_config.kind!r}")
    scorer = SCORERS.get(scorer_config.kind)(scorer_config.model_copy(update={"dtype": "float32"}))
    scorer.setup()
    return scorer


def train_selector(examples: Sequence[Example], scorer_config: ScorerConfig, out: str | Path,
                   config: SelectorTrainConfig = SelectorTrainConfig(), *, skipped: dict[str, int] | None = None,
                   sources: dict[str, Any] | None = None) -> TrainResult:
    """Fine-tune, evaluate before and after on the held-out clips, and save the selector folder at `out`."""
    import torch

    from vlcurate.stages import torch_setup

    train, held = split_examples(examples, config.holdout)
    if not train:
        raise ValueError(f"no training clips: {len(examples)} labelled clip(s), all held out (holdout "
                         f"{config.holdout}); label more clips or lower --holdout")
    if config.holdout > 0 and not held:
        raise ValueError(f"no held-out clips among {len(examples)} labelled clip(s) at holdout {config.holdout}; "
                         "label more clips or raise --holdout")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; choose another folder or remove it")

    started = time.perf_counter()
    torch_setup.set_torch_threads(config.threads)
    torch.manual_seed(config.seed)
    scorer = load_scorer(scorer_config.model_copy(update={"device": config.device}))
    trainable = scorer.trainable()
    chance = round(float(np.mean([1 / len(e.texts) for e in held])), 6) if held else None
    holdout_before, train_before = selection_accuracy(scorer, held), selection_accuracy(scorer, train)
    losses, total = _fit(trainable, train, config)
    result = TrainResult(out=str(out.resolve()), train_clips=len(train), holdout_clips=len(held),
                         holdout_chance=chance, holdout_before=holdout_before,
                         holdout_after=selection_accuracy(scorer, held), train_before=train_before,
                         train_after=selection_accuracy(scorer, train), loss_per_epoch=losses, steps=total,
                         seconds=round(time.perf_counter() - started, 3), device=str(scorer.device),
                         skipped=dict(skipped or {}))
    info = {
        "format": FORMAT,
        "kind": scorer_config.kind,
        "base_model": scorer_config.model,
        # the tag only when it was loaded (tiny models, selectors and hf_clip ignore `pretrained`)
        "base_pretrained": scorer_config.pretrained if scorer.weights == scorer_config.pretrained else None,
        "base_weights": scorer.weights,
        "training": config.model_dump(mode="json"),
        "data": {**(sources or {}), "train_clips": len(train), "holdout_clips": len(held),
                 "skipped": result.skipped},
        "holdout_accuracy": {"chance": result.holdout_chance, "before": result.holdout_before,
                             "after": result.holdout_after},
        "train_accuracy": {"before": result.train_before, "after": result.train_after},
        "loss_per_epoch": losses,
        "steps": total,
        "seconds": result.seconds,
        "device": result.device,
        "versions": _versions(),
    }
    _save(trainable, info, out)
    return result


def _fit(trainable: Trainable, train: list[Example], config: SelectorTrainConfig) -> tuple[list[float], int]:
    """The training loop: AdamW, warm-up then cosine decay, seeded order; the mean loss of each epoch, the steps."""
    import torch

    params = [p for p in trainable.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    total = -(-len(train) // config.batch_size) * config.epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate_factor(step, total,
                                                                                           config.warmup))
    rng = np.random.default_rng(config.seed)
    losses: list[float] = []
    trainable.model.train()
    with _progress(total, "selector") as bar:
        for _epoch in range(config.epochs):
            order = rng.permutation(len(train))
            epoch_loss = 0.0
            for start in range(0, len(train), config.batch_size):
                batch = [train[i] for i in order[start:start + config.batch_size]]
                loss = _batch_loss(trainable, batch, config)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                optimizer.step()
                schedule.step()
                epoch_loss += float(loss.detach()) * len(batch)
                bar.update(1)
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
            losses.append(round(epoch_loss / len(train), 6))
    trainable.model.eval()
    return losses, total


def _save(trainable: Trainable, info: dict[str, Any], out: Path) -> None:
    """The model in its library's format plus selector.json, written beside `out` and renamed into place: an
    interrupted run never leaves a folder that looks loadable."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    trainable.save(tmp)
    (tmp / SELECTOR_JSON).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    for path in tmp.rglob("*"):
        if path.is_file():
            path.chmod(0o644)  # safetensors writes 0600; the selector is read by other users' and Ray workers
    if out.exists():
        out.rmdir()  # empty: checked before training
    os.replace(tmp, out)


def _versions() -> dict[str, str]:
    import importlib.metadata

    found = {}
    for name in ("torch", "open_clip_torch", "transformers"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def train_from_files(labels_path: str | Path, captions_path: str | Path, scorer_config: ScorerConfig,
                     out: str | Path, config: SelectorTrainConfig = SelectorTrainConfig()) -> TrainResult:
    """What `vlcurate selector train` does: read and join the labels with the captions manifest, then train."""
    captions_file = resolve_captions(captions_path)
    labels = read_labels(labels_path)
    examples, skipped = join_labels(read_captions(captions_file), labels)
    if not examples:
        raise ValueError(f"none of the {len(labels)} labelled clips can be trained on: {skipped}")
    sources = {"labels": str(Path(labels_path).resolve()), "captions": str(captions_file.resolve()),
               "labelled_clips": len(labels)}
    return train_selector(examples, scorer_config, out, config, skipped=skipped, sources=sources)


def resolve_captions(path: str | Path) -> Path:
    """A caption (or score) stage folder, a run's output folder (its caption/ stage), or a .parquet file."""
    from vlcurate.pipeline import atomic

    path = Path(path)
    for candidate in (path, path / "caption"):
        if candidate.is_dir() and atomic.is_done(candidate):
            return candidate
    if path.is_file():
        return path
    raise FileNotFoundError(f"{path}: no captions manifest (a finished caption stage folder, a run's output folder "
                            "with caption/, or a .parquet file)")


def read_captions(path: Path):
    """The captions manifest with each clip's frames (a stage folder's read from the run's frame store)."""
    from vlcurate.pipeline import atomic
    from vlcurate.pipeline.executor import read_manifest

    if path.is_dir():
        return read_manifest(path, root=path.parent)
    return atomic.read_parquet(path)
