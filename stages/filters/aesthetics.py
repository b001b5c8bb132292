"""aesthetics: the LAION improved aesthetic predictor (an MLP head on CLIP ViT-L/14 image embeddings, 1-10 scale)
over the stored frames; Open-Sora keeps clips scoring 5 or more.

The tower loads through open_clip as the score stage's does (`model`, `pretrained`; `tiny:open_clip` offline); the
head is `head`, a path to the predictor's state dict (`sac+logos+ava1-l14-linearMSE.pth`). Without one the head
is untrained (seeded), and every score records `untrained` as its weights: numbers for tests, not for curation.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from pydantic import Field

from vlcurate.stages.catalog import STAGES
from vlcurate.stages.filters.base import FilterConfig, FilterStage, spread


class AestheticsConfig(FilterConfig):
    model: str = Field("ViT-L-14", description="open_clip tower (the predictor was trained on ViT-L/14's)")
    pretrained: str | None = Field("openai", description="open_clip pretrained tag or checkpoint")
    head: str | None = Field(None, description="path to the LAION predictor's state dict; null: untrained head")
    min_score: float | None = Field(5.0, description="drop a clip scoring below this (Open-Sora: 5.0)")
    frames: int = Field(3, ge=1, description="stored frames scored per clip (their mean)")
    device: str = "auto"


def head_layers(dim: int):
    """The predictor's MLP, layer for layer as LAION trained it (its state dict's keys: layers.N.*)."""
    import torch

    class Head(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = torch.nn.Sequential(
                torch.nn.Linear(dim, 1024), torch.nn.Dropout(0.2), torch.nn.Linear(1024, 128), torch.nn.Dropout(0.2),
                torch.nn.Linear(128, 64), torch.nn.Dropout(0.1), torch.nn.Linear(64, 16), torch.nn.Linear(16, 1))

        def forward(self, x):
            return self.layers(x)

    return Head()


@STAGES.register("aesthetics")
class AestheticsFilter(FilterStage):
    config_class = AestheticsConfig
    method = "laion_aesthetic_mlp"
    summary = "Filter: LAION's aesthetic predictor on CLIP image embeddings; drop clips below a score."
    primary = "aesthetic"
    # a model loaded once per worker, which runs threads of its own
    traits = dataclasses.replace(FilterStage.traits, keeps_loaded=True, local_parallel=False)

    config: AestheticsConfig

    def setup(self) -> None:
        import torch

        from vlcurate.stages.scorers import open_clip_tower

        cfg = self.config
        self.tower = open_clip_tower(cfg.model, cfg.pretrained, cfg.device)
        dim = self._dim()
        torch.manual_seed(0)  # an untrained head is still the same on every worker
        self.head = head_layers(dim)
        if cfg.head:
            self.head.load_state_dict(torch.load(cfg.head, map_location="cpu", weights_only=True))
        self.head.eval()
        self.model = f"{cfg.model} + LAION improved aesthetic predictor"
        self.weights = f"{self.tower.weights} + {cfg.head or 'untrained'}"

    def _dim(self) -> int:
        from PIL import Image

        return int(self.tower.encode_images([Image.new("RGB", (32, 32))]).shape[1])

    def measure(self, rows: list[dict[str, Any]]) -> list[dict[str, float]]:
        import torch

        out = []
        for frames in (spread(row.get("frames") or [], self.config.frames) for row in rows):
            if not frames:
                out.append({"aesthetic": None})
                continue
            embeddings = self.tower.embed_clips([[f] for f in frames])  # unit vectors, one per frame
            with torch.inference_mode():
                scores = self.head(torch.from_numpy(np.asarray(embeddings, np.float32))).squeeze(1).numpy()
            out.append({"aesthetic": round(float(scores.mean()), 6)})
        return out

    def verdict(self, scores: dict[str, float], row: dict[str, Any]) -> str | None:
        limit = self.config.min_score
        if scores["aesthetic"] is None or limit is None or scores["aesthetic"] >= limit:
            return None
        return f"low_aesthetics: {scores['aesthetic']:.2f} < {limit}"

    def limits(self) -> dict[str, dict[str, float]]:
        limit = self.config.min_score
        return {"aesthetic": {"min": limit}} if limit is not None else {}

    def rule(self) -> str:
        return f"drop if the mean aesthetic score of {self.config.frames} frames < {self.config.min_score}"
