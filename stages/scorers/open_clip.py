"""open_clip models: any model name with a pretrained tag, a checkpoint path, `tiny:open_clip` for tests, or a
fine-tuned selector folder (`vlcurate selector train`) as the model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vlcurate.stages import models
from vlcurate.stages.torch_setup import torch_device, torch_dtype
from vlcurate.stages.scorers import finetuned
from vlcurate.stages.scorers.base import SCORERS, Scorer, Trainable
from vlcurate.stages.tiny_models import TINY_OPEN_CLIP_NAME

if TYPE_CHECKING:
    import torch


def open_clip_tower(model: str, pretrained: str | None, device: str = "auto", batch_size: int = 64) -> "OpenClipScorer":
    """An open_clip model set up as the score stage sets it up: what the filters and split's stitching embed frames
    with (`embed_clips`), so every user of the tower loads and records it the same way."""
    from vlcurate.stages.scorers.base import ScorerConfig

    tower = OpenClipScorer(ScorerConfig(kind="open_clip", model=model, pretrained=pretrained, device=device,
                                        batch_size=batch_size))
    tower.setup()
    return tower


@SCORERS.register("open_clip")
class OpenClipScorer(Scorer):
    """A clip's embedding is the normalised mean of its frames' embeddings."""

    def setup(self) -> None:
        import open_clip
        import torch

        self._torch = torch
        name, pretrained = self.config.model, self.config.pretrained
        info = finetuned.selector_info(name)
        if info is not None:  # a fine-tuned selector: open_clip's own local-dir format, its tag is ignored
            finetuned.check_kind(info, self.kind, name)
            self.weights = finetuned.weights_label(name)
            name, pretrained = f"local-dir:{Path(name).resolve()}", None
        elif name.startswith("tiny:"):
            resolved = models.resolve(name)
            open_clip.add_model_config(resolved.location)
            name, pretrained = TINY_OPEN_CLIP_NAME, f"{resolved.location}/open_clip_model.safetensors"
            self.weights = resolved.weights
        else:
            self.weights = pretrained or models.UNTRAINED
        self.device = torch_device(self.config.device)
        self.model, _, self.preprocess = open_clip.create_model_and_transforms(
            name, pretrained=pretrained, device=self.device)
        self.model.eval()
        self.dtype = torch_dtype(self.config.dtype, self.device)
        if self.dtype != torch.float32:
            self.model = self.model.to(self.dtype)
        self.open_clip_name = name  # what the selector trainer reads the architecture from
        self.tokenizer = open_clip.get_tokenizer(name)
        self.context_length = getattr(self.model, "context_length", 77)

    def encode_images(self, images: list) -> np.ndarray:
        torch = self._torch
        batch = torch.stack([self.preprocess(image) for image in images]).to(self.device, self.dtype)
        with torch.inference_mode():
            return self.model.encode_image(batch, normalize=True).float().cpu().numpy()

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            tokens = self.tokenizer(texts).to(self.device)
            return self.model.encode_text(tokens, normalize=True).float().cpu().numpy()

    def trainable(self) -> "OpenClipTrainable":
        return OpenClipTrainable(self)

    def truncated(self, text: str) -> bool:
        """Whether the text encoder saw only a prefix of this text (context length, start and end tokens)."""
        return len(self.tokenizer.encode(text)) > self.context_length - 2 if hasattr(self.tokenizer, "encode") \
            else False


class OpenClipTrainable(Trainable):
    def image_embeddings(self, images: list) -> "torch.Tensor":
        import torch

        pixels = torch.stack([self.scorer.preprocess(image) for image in images]).to(self.device)
        return self.model.encode_image(pixels, normalize=True)

    def text_embeddings(self, texts: list[str]) -> "torch.Tensor":
        return self.model.encode_text(self.scorer.tokenizer(texts).to(self.device), normalize=True)

    def save(self, folder: Path) -> None:
        """open_clip's `local-dir:` format: `open_clip_config.json` (architecture, preprocessing) and the weights."""
        import open_clip
        from safetensors.torch import save_file

        model_cfg = open_clip.get_model_config(self.scorer.open_clip_name)
        if model_cfg is None:
            raise ValueError(f"open_clip has no config for {self.scorer.open_clip_name!r}; cannot save a selector")
        preprocess_cfg = dict(getattr(self.model.visual, "preprocess_cfg", {}) or {})
        (folder / "open_clip_config.json").write_text(json.dumps(
            {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}, indent=2, default=list) + "\n")
        state = {k: v.detach().to("cpu").contiguous() for k, v in self.model.state_dict().items()}
        save_file(state, str(folder / "open_clip_model.safetensors"))
