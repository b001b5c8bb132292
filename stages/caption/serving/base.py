"""What every backend shares: the Generation it returns, the server settings, the registry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from vlcurate.pipeline.registry import Registry


@dataclass
class Generation:
    """One generated caption and what it cost: tokens in and out, and whether it stopped at the token limit."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    truncated: bool | None = None
    error: str | None = None  # what the server said about this request alone (a 400): the clip's candidate fails


class ServerConfig(BaseModel):
    """How a teacher reaches its served model. The API key is read from the environment variable named here when the
    worker starts; it is never written to a config dump, a manifest, stats or a log."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = Field(None, description="openai: the server's /v1 address, e.g. http://127.0.0.1:8080/v1")
    api_key_env: str = Field("OPENAI_API_KEY", description="openai: the environment variable holding the API key "
                             "(a local server takes any; unset: 'none')")
    in_flight: int = Field(8, ge=1, description="requests in flight per worker (openai), sequences per engine step "
                           "(vllm: max_num_seqs)")
    timeout_s: float = Field(120.0, gt=0, description="openai: one request's limit; past it the request is retried")
    retries: int = Field(5, ge=0, description="openai: tries after the first for a timeout, a refused connection, 429 "
                         "or 5xx; once spent, the task fails as the machine's failure (no clip is blamed)")
    backoff_s: float = Field(1.0, ge=0, description="openai: the first wait between tries; doubles each time, jittered")
    seed: int | None = Field(0, description="sampling seed sent with every request (with temperature 0, reruns and "
                             "Ray give the same text where the server honours it); null: none")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="openai: more request fields, as the server "
                                       "names them (e.g. llama.cpp's repeat_penalty, vLLM's top_k)")
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1, description="vllm: the share of the GPU's memory "
                                                 "the engine takes (default: the teacher's GPU share, at most 0.9)")
    max_model_len: int | None = Field(None, ge=1, description="vllm: context length (default: the model's)")
    engine: dict[str, Any] = Field(default_factory=dict, description="vllm: more engine arguments, e.g. "
                                   "limit_mm_per_prompt, dtype, tensor_parallel_size")


def sampling(generation: dict[str, Any], defaults: dict[str, Any], seed: int | None) -> dict[str, Any]:
    """OpenAI sampling fields from a teacher's transformers-style `generation` (over its kind's defaults): greedy
    unless `do_sample`, `max_new_tokens` as `max_tokens`. Keys with no OpenAI meaning are left out."""
    merged = {**defaults, **generation}
    out: dict[str, Any] = {"max_tokens": int(merged.get("max_new_tokens", merged.get("max_tokens", 64)))}
    out["temperature"] = float(merged.get("temperature", 1.0)) if merged.get("do_sample") else 0.0
    for key in ("top_p", "frequency_penalty", "presence_penalty", "stop"):
        if key in merged:
            out[key] = merged[key]
    if seed is not None:
        out["seed"] = seed
    return out


class Backend:
    """Generates for a batch of conversations; `start` once per worker, `close` when the worker is done."""

    name: ClassVar[str]

    def __init__(self, teacher: str, model: str, server: ServerConfig, gpus: float = 0.0):
        self.teacher, self.model, self.server, self.gpus = teacher, model, server, gpus
        self.provenance = "none"  # recorded as every candidate's `weights`: what served the model, and its version

    def start(self) -> None:
        raise NotImplementedError

    def generate(self, conversations: list[list[dict[str, Any]]], params: dict[str, Any]) -> list[Generation]:
        raise NotImplementedError

    def close(self) -> None:
        pass


BACKENDS: Registry[type[Backend]] = Registry("backend", attribute="name", groups=("vlcurate.backends",))


SERVED = ("openai", "vllm")
