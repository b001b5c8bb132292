"""A scorer gives every (clip, caption) pair a similarity. Dual encoders embed clips and texts into one space and
score the cosine (`score_pairs`' default); a model whose text embedding depends on the video (X-CLIP) overrides
`score_pairs` to compute its own similarity."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from vlcurate.pipeline.registry import Registry

if TYPE_CHECKING:
    import torch


class ScorerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    kind: str = Field("open_clip", description="registered scorer kind")
    model: str = Field("ViT-B-32", description="model name (open_clip) or reference (hub id, path, tiny:<name>)")
    pretrained: str | None = Field("laion2b_s34b_b79k", description="open_clip pretrained tag or checkpoint path")
    batch_size: int = Field(64, ge=1)
    device: str = "auto"
    dtype: str = "auto"


class Scorer:
    kind: ClassVar[str]

    def __init__(self, config: ScorerConfig):
        self.config = config
        self.weights = "none"

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.config.model}@{self.weights}"

    def setup(self) -> None:
        pass

    def encode_images(self, images: list) -> np.ndarray:
        """(n, D) unit vectors for one batch of PIL images."""
        raise NotImplementedError

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """(n, D) unit vectors for one batch of texts, cut to the encoder's context (see `truncated`)."""
        raise NotImplementedError

    def embed_clips(self, clips: Sequence[list[bytes]]) -> np.ndarray:
        """(N, D) unit vectors, one per clip: the normalised mean of its stored JPEG frames' embeddings."""
        from vlcurate.stages.media import decode_jpeg

        owners = [n for n, frames in enumerate(clips) for _ in frames]
        images = [decode_jpeg(f) for frames in clips for f in frames]
        frame_emb = self._batched(self.encode_images, images)
        return mean_per_clip(frame_emb, owners, len(clips))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(M, D) unit vectors."""
        return self._batched(self.encode_texts, list(texts))

    def score_pairs(self, clips: Sequence[list[bytes]], texts: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """Scores of each clip's own texts: `texts[n]` are clip n's candidates, the answer's n-th array their scores
        in that order. The default is the cosine of `embed_clips` and `embed_texts`, every text in one batched
        pass; models that score a pair jointly override this, since their text side is not one fixed vector."""
        clip_emb = self.embed_clips(clips)
        flat = [t for own in texts for t in own]
        text_emb = self.embed_texts(flat) if flat else np.zeros((0, clip_emb.shape[1]), np.float32)
        out, k = [], 0
        for n, own in enumerate(texts):
            # one dot product per pair, not a matrix product: keeps scores bit-identical to earlier releases
            out.append(np.array([clip_emb[n] @ text_emb[k + i] for i in range(len(own))]))
            k += len(own)
        return out

    def _batched(self, encode, items: list) -> np.ndarray:
        size = self.config.batch_size
        parts = [encode(items[i:i + size]) for i in range(0, len(items), size)]
        return np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)

    def truncated(self, text: str) -> bool:
        """Whether the text encoder saw only a prefix of this text: recorded with the score."""
        return False

    def trainable(self) -> "Trainable":
        """Differentiable access to this set-up scorer's towers, for `vlcurate selector train`; a kind that cannot
        be fine-tuned says so."""
        raise ValueError(f"a selector cannot be trained from a {self.kind} scorer")


class Trainable:
    """Differentiable access to a set-up scorer's towers, and saving in a format that scorer kind loads."""

    def __init__(self, scorer: "Scorer"):
        self.scorer = scorer
        self.model = scorer.model
        self.device = scorer.device

    def image_embeddings(self, images: list) -> "torch.Tensor":
        """(n, D) unit vectors, with gradients."""
        raise NotImplementedError

    def text_embeddings(self, texts: list[str]) -> "torch.Tensor":
        raise NotImplementedError

    def learned_scale(self) -> "torch.Tensor":
        return self.model.logit_scale.exp().clamp(max=100.0)

    def save(self, folder: Path) -> None:
        raise NotImplementedError


def mean_per_clip(frame_emb: np.ndarray, owners: Sequence[int], clips: int) -> np.ndarray:
    """A clip's embedding: the normalised mean of its frames' unit embeddings (`owners[i]` is frame i's clip)."""
    out = np.zeros((clips, frame_emb.shape[1]), np.float32)
    owners_arr = np.asarray(owners)
    for n in range(clips):
        mean = frame_emb[owners_arr == n].mean(axis=0)
        out[n] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return out


SCORERS: Registry[type[Scorer]] = Registry("scorer", attribute="kind", groups=("vlcurate.scorers",))


def pooled(output):
    """A `get_*_features` result as a tensor: transformers 5 returns a model output with the projection in
    `pooler_output` (X-CLIP: the MIT's output), 4.x the tensor itself."""
    return output if hasattr(output, "norm") else output.pooler_output
