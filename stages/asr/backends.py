"""Speech recognition backends, by name: `faster_whisper` (CTranslate2: a model folder or a size name) and
`transformers` (any `AutoModelForSpeechSeq2Seq` Whisper through the ASR pipeline, chunked). Each turns 16 kHz mono
samples into timestamped segments with the language and its probability."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from vlcurate.pipeline.registry import Registry


BACKENDS: Registry[type["Backend"]] = Registry("asr backend", attribute="name")


@dataclass
class Transcript:
    segments: list[dict[str, Any]] = field(default_factory=list)  # {start, end, text[, words]}, seconds
    language: str | None = None
    language_probability: float | None = None


class Backend:
    """Cheap `__init__`; `setup` loads the model (once per worker)."""

    name: ClassVar[str] = ""

    def __init__(self, config: Any):
        self.config = config
        self.model_name, self.weights = config.model, ""

    def setup(self, threads: int | None) -> None:
        raise NotImplementedError

    def transcribe(self, audio: np.ndarray) -> Transcript:
        raise NotImplementedError


@BACKENDS.register("faster_whisper")
class FasterWhisper(Backend):

    def setup(self, threads: int | None) -> None:
        from faster_whisper import WhisperModel

        from vlcurate.stages.models import whisper_folder

        from vlcurate.stages.torch_setup import torch_device

        resolved = whisper_folder(self.config.model)
        self.weights = resolved.weights
        device = torch_device(self.config.device)
        compute = self.config.compute_type if device == "cpu" or self.config.compute_type != "int8" \
            else "int8_float16"
        self.threads = threads or 1
        self.model = WhisperModel(resolved.location, device=device, compute_type=compute, cpu_threads=self.threads,
                                  num_workers=1)

    def transcribe(self, audio: np.ndarray) -> Transcript:
        from vlcurate.stages.torch_setup import thread_pools

        with thread_pools(self.threads):  # the generator does the work: consumed inside
            return self._transcribe(audio)

    def _transcribe(self, audio: np.ndarray) -> Transcript:
        cfg = self.config
        segments, info = self.model.transcribe(audio, language=cfg.language, beam_size=cfg.beam_size,
                                               vad_filter=cfg.vad, word_timestamps=cfg.word_timestamps,
                                               condition_on_previous_text=False)
        out = []
        for seg in segments:
            item: dict[str, Any] = {"start": round(seg.start, 3), "end": round(seg.end, 3), "text": seg.text.strip()}
            if cfg.word_timestamps and seg.words:
                item["words"] = [{"start": round(w.start, 3), "end": round(w.end, 3), "word": w.word.strip(),
                                  "probability": round(w.probability, 4)} for w in seg.words]
            if item["text"]:
                out.append(item)
        return Transcript(out, info.language, round(float(info.language_probability), 4))


@BACKENDS.register("transformers")
class TransformersWhisper(Backend):
    """The ASR pipeline with chunking (`chunk_length_s`), segment timestamps, and the language detected by the
    model's own language tokens (their softmax is the probability)."""


    def setup(self, threads: int | None) -> None:
        import torch
        from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor, pipeline

        from vlcurate.stages.models import resolve

        from vlcurate.stages.torch_setup import set_torch_threads, torch_device

        set_torch_threads(threads)
        resolved = resolve(self.config.model)
        self.weights = resolved.weights
        device = torch_device(self.config.device)
        dtype = torch.float16 if device != "cpu" and self.config.compute_type == "float16" else torch.float32
        self.processor = AutoProcessor.from_pretrained(resolved.location)
        self.model = AutoModelForSpeechSeq2Seq.from_pretrained(resolved.location, dtype=dtype).to(device).eval()
        self.pipe = pipeline("automatic-speech-recognition", model=self.model, tokenizer=self.processor.tokenizer,
                             feature_extractor=self.processor.feature_extractor, device=device, dtype=dtype)

    def detect_language(self, audio: np.ndarray) -> tuple[str | None, float | None]:
        import torch

        lang_to_id = getattr(self.model.generation_config, "lang_to_id", None) or {}
        if not lang_to_id:
            return None, None
        features = self.processor.feature_extractor(audio[: 30 * 16000], sampling_rate=16000, return_tensors="pt")
        inputs = features.input_features.to(self.model.device, self.model.dtype)
        start = torch.tensor([[self.model.generation_config.decoder_start_token_id]], device=self.model.device)
        with torch.no_grad():
            logits = self.model(input_features=inputs, decoder_input_ids=start).logits[0, -1]
        ids = torch.tensor(list(lang_to_id.values()), device=logits.device)
        probs = torch.softmax(logits[ids].float(), dim=-1)
        best = int(torch.argmax(probs))
        return list(lang_to_id)[best].strip("<|>"), round(float(probs[best]), 4)

    def transcribe(self, audio: np.ndarray) -> Transcript:
        cfg = self.config
        language, probability = (cfg.language, None) if cfg.language else self.detect_language(audio)
        kwargs: dict[str, Any] = {"task": "transcribe"}
        if language:
            kwargs["language"] = language
        result = self.pipe({"raw": audio, "sampling_rate": 16000}, chunk_length_s=cfg.chunk_length_s,
                           batch_size=cfg.batch_size, return_timestamps="word" if cfg.word_timestamps else True,
                           generate_kwargs={**kwargs, "num_beams": cfg.beam_size})
        duration = len(audio) / 16000
        out = []
        for chunk in result.get("chunks") or []:
            start, end = chunk["timestamp"]
            text = chunk["text"].strip()
            if text and start is not None and start < duration:  # an untrained model's times can run past the end
                out.append({"start": round(float(start), 3),
                            "end": round(min(float(end if end is not None else duration), duration), 3),
                            "text": text})
        return Transcript(out, language, probability)
