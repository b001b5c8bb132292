"""Hugging Face dual encoders (CLIP, SigLIP, ...) through AutoModel: any hub id or local folder (a fine-tuned
selector too), `tiny:hf_clip` in tests. A clip's embedding is the normalised mean of its frames' embeddings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vlcurate.stages import models
from vlcurate.stages.torch_setup import torch_device, torch_dtype
from vlcurate.stages.scorers import finetuned
from vlcurate.stages.scorers.base import SCORERS, Scorer, Trainable, pooled

if TYPE_CHECKING:
    import torch


@SCORERS.register("hf_clip")
class HFClipScorer(Scorer):

    def setup(self) -> None:
        import torch
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

        resolved = models.resolve(self.config.model)
        self.weights = resolved.weights
        info = finetuned.selector_info(self.config.model)
        if info is not None:  # a fine-tuned selector is a save_pretrained folder plus selector.json
            finetuned.check_kind(info, self.kind, self.config.model)
            self.weights = finetuned.weights_label(self.config.model)
        self.device = torch_device(self.config.device)
        self.dtype = torch_dtype(self.config.dtype, self.device)
        self.model = AutoModel.from_pretrained(resolved.location, dtype=self.dtype).to(self.device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(resolved.location)
        self.image_processor = AutoImageProcessor.from_pretrained(resolved.location)
        text_config = getattr(self.model.config, "text_config", self.model.config)
        self.context_length = min(getattr(text_config, "max_position_embeddings", 77),
                                  self.tokenizer.model_max_length)
        # SigLIP was trained on max-length padding; CLIP on dynamic padding
        self.padding = "max_length" if "siglip" in type(self.model).__name__.lower() else True
        self._torch = torch

    def encode_images(self, images: list) -> np.ndarray:
        torch = self._torch
        pixels = self.image_processor(images=images, return_tensors="pt")
        pixels = {k: v.to(self.device, self.dtype) for k, v in pixels.items()}
        with torch.inference_mode():
            out = pooled(self.model.get_image_features(**pixels)).float()
            return torch.nn.functional.normalize(out, dim=-1).cpu().numpy()

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        tokens = self.tokenizer(texts, padding=self.padding, truncation=True, max_length=self.context_length,
                                return_tensors="pt")
        tokens = {k: v.to(self.device) for k, v in tokens.items()}
        with torch.inference_mode():
            out = pooled(self.model.get_text_features(**tokens)).float()
            return torch.nn.functional.normalize(out, dim=-1).cpu().numpy()

    def truncated(self, text: str) -> bool:
        return len(self.tokenizer(text, truncation=False)["input_ids"]) > self.context_length

    def trainable(self) -> "HFClipTrainable":
        return HFClipTrainable(self)


class HFClipTrainable(Trainable):
    def image_embeddings(self, images: list) -> "torch.Tensor":
        import torch

        pixels = self.scorer.image_processor(images=images, return_tensors="pt")
        pixels = {k: v.to(self.device) for k, v in pixels.items()}
        return torch.nn.functional.normalize(pooled(self.model.get_image_features(**pixels)), dim=-1)

    def text_embeddings(self, texts: list[str]) -> "torch.Tensor":
        import torch

        tokens = self.scorer.tokenizer(texts, padding=self.scorer.padding, truncation=True,
                                       max_length=self.scorer.context_length, return_tensors="pt")
        tokens = {k: v.to(self.device) for k, v in tokens.items()}
        return torch.nn.functional.normalize(pooled(self.model.get_text_features(**tokens)), dim=-1)

    def save(self, folder: Path) -> None:
        """A `save_pretrained` folder: AutoModel, the tokenizer and the image processor load it like a hub id."""
        self.model.save_pretrained(folder)
        self.scorer.tokenizer.save_pretrained(folder)
        self.scorer.image_processor.save_pretrained(folder)
