"""Video-language models on N stored frames of the clip, asked Panda-70M's question.

Any checkpoint that `AutoProcessor` + `AutoModelForImageTextToText` load and whose processor has a chat template
that takes video (or several images): LLaVA-NeXT-Video (`llava-hf/LLaVA-NeXT-Video-7B-hf`), Qwen2-VL / Qwen2.5-VL
(`Qwen/Qwen2.5-VL-3B-Instruct`), SmolVLM2 (`HuggingFaceTB/SmolVLM2-256M-Video-Instruct`, needs `pip install
num2words`), LLaVA-OneVision. Frames come from the split stage's stored JPEGs, never from the video file, and are
handed over as already-sampled frames with their timing, so the processor does not sample again.
"""

from __future__ import annotations

from typing import Any, Sequence

from vlcurate.stages.caption.serving import Generation
from vlcurate.stages.caption.teachers.base import TEACHERS, ClipInput, Teacher
from vlcurate.stages.torch_setup import torch_dtype

PANDA_QUESTION = "Please faithfully summarize the video in one sentence."
DEFAULT_GENERATION = {"max_new_tokens": 48, "do_sample": False}
VISUALS = ("video", "images")


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text if text.endswith((".", "!", "?")) else text + "."


@TEACHERS.register("video_lm")
class VideoLMTeacher(Teacher):
    """Options: `visual: video` (default; one video entry of the N frames) or `images` (N image entries, for
    models that only take images); `system`: a system message, if the model wants one. Served, the frames go as
    N JPEG data URLs, the stored bytes as they are (no decode, no re-encode)."""

    default_prompt = PANDA_QUESTION
    default_inputs = ("frames",)
    default_num_frames = 8
    default_generation = DEFAULT_GENERATION
    serves = True

    def __init__(self, config) -> None:
        super().__init__(config)
        self.visual = str(config.options.get("visual", "video"))
        if self.visual not in VISUALS:
            raise ValueError(f"teacher {config.name!r}: options.visual must be one of {VISUALS}, not {self.visual!r}")
        if "frames" not in self.inputs:
            raise ValueError(f"teacher {config.name!r} ({self.kind}) needs `frames` in its inputs")

    def setup(self) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        resolved = self.resolve_model()
        self.processor = AutoProcessor.from_pretrained(resolved.location)
        if getattr(self.processor, "chat_template", None) is None:
            raise ValueError(f"teacher {self.config.name!r}: {self.config.model} has no chat template in its processor")
        tokenizer = self.processor.tokenizer
        tokenizer.padding_side = "left"  # generate continues every row from its last token
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.model = AutoModelForImageTextToText.from_pretrained(
            resolved.location, dtype=torch_dtype(self.config.dtype, self.device)).to(self.device).eval()

    def can_caption(self, clip: ClipInput) -> bool:
        return bool(clip.frames)

    def question(self, clip: ClipInput) -> str:
        """Panda-70M's prompt: the clip's subtitles and the video's title and description when this teacher sees them,
        then the question. A configured `prompt` replaces it ({context}, {title}, {description}, {subtitles})."""
        context = []
        if "subtitles" in self.inputs and clip.subtitles:
            context.append(f"The subtitles of the video: {_sentence(clip.subtitles)}")
        meta = [_sentence(text) for name in ("title", "description") if name in self.inputs
                and (text := getattr(clip, name))]
        if meta:
            context.append("Some descriptions of the video: " + " ".join(meta))
        if self.config.prompt:
            return self.config.prompt.format(context="\n".join(context), title=clip.title or "",
                                             description=clip.description or "", subtitles=clip.subtitles or "")
        return "\n".join([*context, PANDA_QUESTION])

    def conversation(self, clip: ClipInput) -> list[dict[str, Any]]:
        import numpy as np

        frames = clip.images(self.num_frames)
        if self.visual == "video":
            size = frames[0].size
            frames = [f if f.size == size else f.resize(size) for f in frames]
            visual = [{"type": "video", "video": np.stack([np.asarray(f) for f in frames])}]
        else:
            visual = [{"type": "image", "image": f} for f in frames]
        messages = [{"role": "user", "content": [*visual, {"type": "text", "text": self.question(clip)}]}]
        if self.config.options.get("system"):
            messages.insert(0, {"role": "system", "content": [{"type": "text", "text": self.config.options["system"]}]})
        return messages

    def chat(self, clip: ClipInput) -> list[dict[str, Any]]:
        """OpenAI messages: the system message, then the picked frames as data URLs and the question."""
        import base64

        from vlcurate.stages.media.images import sample_frames

        picks = sample_frames(len(clip.frames), self.num_frames)
        images = [{"type": "image_url", "image_url": {
            "url": "data:image/jpeg;base64," + base64.b64encode(clip.frames[i]).decode("ascii")}} for i in picks]
        messages: list[dict[str, Any]] = [{"role": "user", "content": [
            *images, {"type": "text", "text": self.question(clip)}]}]
        if self.config.options.get("system"):
            messages.insert(0, {"role": "system", "content": self.config.options["system"]})
        return messages

    def model_inputs(self, clips: Sequence[ClipInput]):
        """One padded batch through the processor's chat template: prompt tokens, pixel values, grids."""
        kwargs: dict[str, Any] = {"padding": True}
        if self.visual == "video":
            n = self.num_frames
            kwargs["do_sample_frames"] = False  # the frames are already the sample
            kwargs["video_metadata"] = [
                {"total_num_frames": n, "fps": n / max(c.end_s - c.start_s, 1e-3),
                 "duration": max(c.end_s - c.start_s, 1e-3), "frames_indices": list(range(n))} for c in clips]
        inputs = self.processor.apply_chat_template(
            [self.conversation(c) for c in clips], add_generation_prompt=True, tokenize=True, return_dict=True,
            return_tensors="pt", processor_kwargs=kwargs)
        for key, value in inputs.items():
            if hasattr(value, "is_floating_point") and value.is_floating_point():
                inputs[key] = value.to(self.model.dtype)
        return inputs.to(self.device)

    def caption(self, clips: Sequence[ClipInput]) -> list[Generation]:
        return self.generate_locally(self.model_inputs(clips), self.processor.batch_decode,
                                     self.processor.tokenizer.pad_token_id)
