"""Frame embedders for stitching: open_clip's image tower by default, a colour histogram that needs no weights."""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from vlcurate.pipeline.registry import Registry


class EmbedderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    kind: str = Field("open_clip", description="open_clip | histogram")
    model: str = Field("ViT-B-32", description="open_clip model name, or tiny:open_clip")
    pretrained: str | None = Field("laion2b_s34b_b79k", description="open_clip pretrained tag or checkpoint path")
    batch_size: int = 64
    device: str = "auto"


class Embedder:
    def __init__(self, config: EmbedderConfig):
        self.config = config
        self.weights = "none"

    def setup(self) -> None:
        pass

    def embed(self, jpegs: Sequence[bytes]) -> np.ndarray:
        """(N, D) unit vectors, one per frame."""
        raise NotImplementedError


EMBEDDERS: Registry[type[Embedder]] = Registry("embedder")


@EMBEDDERS.register("open_clip")
class OpenClipEmbedder(Embedder):
    """The score stage's open_clip image tower, one frame per vector."""

    def setup(self) -> None:
        from vlcurate.stages.scorers import open_clip_tower

        cfg = self.config
        self._scorer = open_clip_tower(cfg.model, cfg.pretrained, cfg.device, cfg.batch_size)
        self.weights = self._scorer.weights

    def embed(self, jpegs: Sequence[bytes]) -> np.ndarray:
        return self._scorer.embed_clips([[j] for j in jpegs])


@EMBEDDERS.register("histogram")
class HistogramEmbedder(Embedder):
    """An HSV histogram (8 hue x 4 saturation x 4 value bins), unit-normalised: weightless and meaningful on
    real footage, so stitching can be checked offline. Its distances are not CLIP's: tune thresholds for it."""

    def embed(self, jpegs: Sequence[bytes]) -> np.ndarray:
        from PIL import Image

        out = np.zeros((len(jpegs), 128), np.float32)
        for n, jpeg in enumerate(jpegs):
            image = Image.open(io.BytesIO(jpeg))
            # a colour distribution needs no detail: decode at 1/4 scale (JPEG's DCT scaling), 16x fewer pixels
            image.draft("RGB", (max(1, image.width // 4), max(1, image.height // 4)))
            hsv = np.asarray(image.convert("HSV")).reshape(-1, 3).astype(np.int32)
            bins = (hsv[:, 0] * 8 // 256) * 16 + (hsv[:, 1] * 4 // 256) * 4 + hsv[:, 2] * 4 // 256
            hist = np.bincount(bins, minlength=128).astype(np.float32)
            out[n] = np.sqrt(hist / max(hist.sum(), 1.0))  # Hellinger: L2 between these is meaningful
            out[n] /= max(float(np.linalg.norm(out[n])), 1e-12)
        return out
