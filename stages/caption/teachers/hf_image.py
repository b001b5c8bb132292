"""Image captioners from transformers (BLIP, BLIP-2, GIT, ...) on one frame of the clip."""

from __future__ import annotations

from typing import Sequence

from vlcurate.stages.caption.teachers.base import TEACHERS, ClipInput, Teacher
from vlcurate.stages.torch_setup import torch_dtype


@TEACHERS.register("hf_image_captioner")
class HFImageCaptioner(Teacher):
    default_inputs = ("frames",)

    def setup(self) -> None:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        resolved = self.resolve_model()
        self.processor = AutoProcessor.from_pretrained(resolved.location)
        self.model = AutoModelForImageTextToText.from_pretrained(
            resolved.location, dtype=torch_dtype(self.config.dtype, self.device)).to(self.device).eval()
        self._torch = torch

    def caption(self, clips: Sequence[ClipInput]) -> list[str]:
        images = [clip.images(1)[0] for clip in clips]
        kwargs = {"images": images, "return_tensors": "pt"}
        if self.config.prompt:
            kwargs["text"] = [self.config.prompt] * len(images)
        inputs = self.processor(**kwargs).to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        generation = {"max_new_tokens": 30, "do_sample": False, **self.config.generation}
        with self._torch.inference_mode():
            out = self.model.generate(**inputs, **generation)
        return self.processor.batch_decode(out, skip_special_tokens=True)
