"""Where a teacher's text is generated: in-process (`transformers`, the teacher's own code), an OpenAI-compatible server
(`openai`: vLLM, SGLang, llama.cpp's llama-server, TGI, hosted APIs) or a vLLM engine inside the worker (`vllm`).

A served backend takes the chat messages a teacher kind builds (`Teacher.chat`) and gives back `Generation`s; the
teacher only says what to ask. A new backend is one module here plus its registration in BACKENDS.
"""

from __future__ import annotations

from vlcurate.stages.caption.serving.base import BACKENDS, SERVED, Backend, Generation, ServerConfig, sampling


def backend(name: str) -> type[Backend]:
    """The registered backend `name` (its module imported on first use, so workers load only what they run)."""
    from vlcurate.stages.caption.serving import openai_api as _openai  # noqa: F401
    from vlcurate.stages.caption.serving import vllm_engine as _vllm  # noqa: F401

    return BACKENDS.get(name)


__all__ = ["BACKENDS", "SERVED", "Backend", "Generation", "ServerConfig", "backend", "sampling"]
