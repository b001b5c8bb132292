"""A teacher writes one caption per clip. Config says which kind, which model, and which inputs it sees."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vlcurate.pipeline.registry import Registry
from vlcurate.pipeline.stage import Resources
from vlcurate.stages.caption.serving import SERVED, Backend, Generation, ServerConfig, backend, sampling
from vlcurate.stages.torch_setup import torch_device
from vlcurate.stages import models

Input = Literal["frames", "title", "description", "subtitles", "given"]


class TeacherConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    name: str = Field(description="unique name of this teacher in the run; candidates are keyed by it")
    kind: str = Field(description="registered teacher kind")
    model: str | None = Field(None, description="hub id, local path, pkg:<module>/<file> or tiny:<name>; with a "
                                                "served backend, the model id the server lists")
    backend: Literal["transformers", "openai", "vllm"] = Field(
        "transformers", description="where the text is generated: in this worker with transformers (CPU or GPU), an "
                                    "OpenAI-compatible server (`server.base_url`), or a vLLM engine per GPU worker")
    server: ServerConfig = Field(default_factory=ServerConfig, description="the served backends' settings")
    prompt: str | None = Field(None, description="prompt template; {title} {description} {subtitles} fill in")
    inputs: list[Input] = Field(default_factory=list, description="what the teacher sees")
    num_frames: int = Field(1, ge=1, description="stored frames the model sees, evenly spread (image captioners: 1, "
                                                 "the middle one; video_lm: 8 unless set)")
    generation: dict[str, Any] = Field(default_factory=dict, description="passed to generate()")
    batch_size: int = Field(8, ge=1, description="clips per model call")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    dtype: str = Field("auto", description="auto | float32 | float16 | bfloat16")
    options: dict[str, Any] = Field(default_factory=dict, description="settings of this teacher kind")
    resources: Resources | None = Field(
        None, description="this teacher's workers (its own actor pool under Ray): cpus, gpus, pool_size, threads, "
                          "batch_size (rows a worker takes at a time); fields left out come from caption.resources")

    @model_validator(mode="after")
    def _served(self) -> "TeacherConfig":
        if self.backend in SERVED:
            if not TEACHERS.get(self.kind).serves:
                served = [k for k in TEACHERS.names() if TEACHERS.get(k).serves]
                raise ValueError(f"teacher {self.name!r}: kind {self.kind} runs only in-process; backend "
                                 f"{self.backend} serves {served}")
            if not self.model:
                raise ValueError(f"teacher {self.name!r}: backend {self.backend} needs `model` (the served model id)")
        return self

    def merged_resources(self, stage: Resources) -> Resources:
        """The stage's resources with the fields this teacher sets replaced; model-free kinds, and teachers whose
        model another machine serves, ask for no GPU; a served teacher's batches hold at least four times its
        requests in flight (a batch ends when its slowest request does)."""
        own = {k: getattr(self.resources, k) for k in self.resources.model_fields_set} if self.resources else {}
        if "gpus" not in own and (not TEACHERS.get(self.kind).uses_accelerator or self.backend == "openai"):
            own["gpus"] = 0.0
        if self.backend in SERVED and "batch_size" not in own:  # requests keep flowing while a batch's last finish
            own["batch_size"] = max(stage.batch_size, 4 * self.server.in_flight)
        return stage.model_copy(update=own)


@dataclass
class ClipInput:
    clip_id: str
    frames: list[bytes] = field(default_factory=list)   # JPEG bytes, in time order
    title: str | None = None
    description: str | None = None
    subtitles: str | None = None                        # the clip's slice of the transcript
    start_s: float = 0.0
    end_s: float = 0.0
    transcript: list = field(default_factory=list)      # the whole video's cues, for teachers that see context
    transcript_key: str | None = None                   # identifies the transcript (its path) for caching
    transcript_note: str | None = None                  # why ASR found no words for the video (no audio, silence)
    given: str | None = None                            # the input list's caption for the clip's span (Panda-70M)

    def images(self, count: int):
        """`count` of the stored frames, evenly spread (the centre of each of `count` equal parts, so the middle one
        when count is 1; frames repeat when fewer are stored), as PIL images."""
        from vlcurate.stages import media

        return media.frame_images(self.frames, count)


class Teacher:
    """Subclasses implement `caption`; `setup` loads the model once per worker."""

    kind: ClassVar[str]
    default_inputs: ClassVar[tuple[str, ...]] = ()
    default_num_frames: ClassVar[int] = 1
    rejects_copies: ClassVar[bool] = True  # a model that only repeats the subtitles adds nothing; baselines may
    uses_accelerator: ClassVar[bool] = True  # False: its workers ask for no GPU unless its own resources say so
    default_prompt: ClassVar[str | None] = None  # the prompt template it uses when none is configured
    default_generation: ClassVar[dict[str, Any]] = {}  # generate() settings under the configured `generation`
    serves: ClassVar[bool] = False  # True: it builds chat messages (`chat`), so a served backend can run it

    def __init__(self, config: TeacherConfig):
        self.config = config
        self.inputs = list(config.inputs or self.default_inputs)
        self.num_frames = config.num_frames if "num_frames" in config.model_fields_set else self.default_num_frames
        self.weights = "none"
        self.model_name = config.model or ""
        self.engine: Backend | None = None

    def setup(self) -> None:
        """Loads the in-process model (the transformers backend)."""

    def start(self, gpus: float = 0.0) -> None:
        """Once per worker: the in-process model, or the served backend (a client, or a vLLM engine on `gpus`)."""
        if self.config.backend == "transformers":
            self.setup()
            return
        self.engine = backend(self.config.backend)(self.config.name, self.model_name, self.config.server, gpus)
        self.engine.start()
        self.weights = self.engine.provenance

    def generate(self, clips: Sequence[ClipInput]) -> list[Generation]:
        """One Generation per clip: through the served backend (every clip of the batch at once; the backend keeps
        its requests in flight), or the kind's own `caption`."""
        if self.engine is None:
            return [g if isinstance(g, Generation) else Generation(g) for g in self.caption(clips)]
        params = sampling(self.config.generation, self.default_generation, self.config.server.seed)
        out = self.engine.generate([self.chat(c) for c in clips], params)
        for g in out:
            g.text = self.finish_text(g.text)
        return out

    def chat(self, clip: ClipInput) -> list[dict[str, Any]]:
        """The OpenAI chat messages for one clip (kinds with `serves`)."""
        raise NotImplementedError

    def finish_text(self, text: str) -> str:
        """What the kind keeps of a served model's reply (the in-process path does the same in `caption`)."""
        return text

    def resolve_model(self) -> "models.ResolvedModel":
        """Model files and device for teachers with a model; records the weights for every candidate."""
        if not self.config.model:
            raise ValueError(f"teacher {self.config.name!r} ({self.kind}): set `model`")
        resolved = models.resolve(self.config.model)
        self.weights = resolved.weights
        self.device = torch_device(self.config.device)
        return resolved

    def generation_kwargs(self, pad_token_id: int | None) -> dict[str, Any]:
        """What goes to transformers' generate(): the kind's defaults under the configured `generation`."""
        return {**self.default_generation, "pad_token_id": pad_token_id, **self.config.generation}

    def generate_locally(self, inputs: Any, decode: Any, pad_token_id: int | None) -> list[Generation]:
        """One left-padded batch through the in-process model (`self.model`): the text the kind keeps of each reply
        (`finish_text`, as on the served path) and its tokens; `decode` is the tokenizer's or processor's
        batch_decode."""
        import torch

        kwargs = self.generation_kwargs(pad_token_id)
        with torch.inference_mode():
            out = self.model.generate(**inputs, **kwargs)
        new_tokens = out[:, inputs["input_ids"].shape[1]:]
        texts = [self.finish_text(t) for t in decode(new_tokens, skip_special_tokens=True)]
        return generations(texts, inputs["attention_mask"], new_tokens, self.model.generation_config.eos_token_id,
                           kwargs.get("max_new_tokens"))

    def caption(self, clips: Sequence[ClipInput]) -> Sequence[str | Generation]:
        """In-process captions, one per clip: text, or a Generation with its token counts."""
        raise NotImplementedError

    @property
    def identity(self) -> tuple[str, str, str]:
        """(teacher, model, prompt hash): a candidate with the same identity is what this teacher would write again."""
        return (self.config.name, self.model_name, self.prompt_hash)

    @property
    def prompt_hash(self) -> str:
        spec: dict[str, Any] = {"kind": self.kind, "prompt": self.config.prompt, "inputs": self.inputs,
                                "frames": self.num_frames, "generation": self.config.generation}
        if self.config.backend != "transformers":  # what else changes a served model's text
            server = self.config.server
            spec.update(backend=self.config.backend, seed=server.seed, extra_body=server.extra_body)
        key = json.dumps(spec, sort_keys=True)
        return hashlib.sha1(key.encode()).hexdigest()[:12]

    def missing_inputs(self, clip: ClipInput) -> list[str]:
        """Inputs this teacher needs that the clip lacks; a teacher with nothing to see writes nothing."""
        missing = []
        for name in self.inputs:
            value = clip.frames if name == "frames" else getattr(clip, name)
            if not value:
                missing.append(name)
        return missing

    @property
    def instructions(self) -> str | None:
        """The prompt template it writes from (its configured one, else its kind's own): a caption that copies a run
        of its words back is flagged `prompt_echo`."""
        return self.config.prompt or self.default_prompt

    def can_caption(self, clip: ClipInput) -> bool:
        return len(self.missing_inputs(clip)) < len(self.inputs) if self.inputs else True


def generations(texts: Sequence[str], attention_mask: Any, new_tokens: Any, eos: int | list[int] | None,
                max_new_tokens: int | None) -> list[Generation]:
    """Generations of one left-padded transformers batch: prompt tokens from the attention mask, completion tokens up
    to and with the first end-of-sequence token, truncated when none came before `max_new_tokens`."""
    ends = set([eos] if isinstance(eos, int) else eos or [])
    out = []
    for text, mask, row in zip(texts, attention_mask.tolist(), new_tokens.tolist()):
        stop = next((k + 1 for k, token in enumerate(row) if token in ends), None)
        written = stop if stop is not None else len(row)
        out.append(Generation(text, int(sum(mask)), written,
                              stop is None and max_new_tokens is not None and written >= max_new_tokens))
    return out


_SPACE = re.compile(r"\s+")
_SPECIAL = re.compile(r"<\|[^|>]*\|>|</?s>|\[(?:CLS|SEP|PAD|UNK|MASK|DEC)\]|<pad>|<unk>")


def clean_caption(text: str, prompt: str | None = None) -> str:
    """Strip special tokens, an echoed prompt, quotes and whitespace noise."""
    text = _SPECIAL.sub(" ", text or "")
    text = _SPACE.sub(" ", text).strip()
    if prompt:
        p = _SPACE.sub(" ", prompt).strip()
        if p and text.lower().startswith(p.lower()):
            text = text[len(p):].strip()
    for prefix in ("Caption:", "caption:", "Answer:", "Sentence:"):
        if text.startswith(prefix):
            text = text[len(prefix):].strip()
    return text.strip(" \"'`")


def rejection_reason(text: str, copied_from: dict[str, str | None] | None = None) -> str | None:
    """The first flag of the caption-quality gate's defaults that rejects the caption (stages/caption/quality.py):
    `empty`, `copies_<name>` for a text in `copied_from` it merely repeats, `repetitive`; None when none does."""
    from vlcurate.stages.caption.quality import QualityConfig, flags, verdict

    config = QualityConfig()
    status, reason, _ = verdict(flags(text, config, copied_from), config)
    return reason.split(":")[0] if status == "rejected" and reason else None


TEACHERS: Registry[type[Teacher]] = Registry("teacher", attribute="kind", groups=("vlcurate.teachers",))
