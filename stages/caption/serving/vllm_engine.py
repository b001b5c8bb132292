"""A vLLM engine inside the worker: one per actor, started once, continuous batching over every conversation of a
task (vLLM schedules them itself, so no fixed chunk drains half idle), torn down when the worker ends.

GPU workers only: where no GPU is visible it refuses in one line. Its GPU share comes from the teacher's
`resources.gpus` (the actor pool under Ray is sized from the cluster's GPUs by the runner); `server.in_flight` is the
engine's `max_num_seqs`. `pip install vllm` on the GPU workers (it pins its own torch); the CPU path is the
`transformers` backend.
"""

from __future__ import annotations

import atexit
from typing import Any

from vlcurate.pipeline.failures import UserError
from vlcurate.stages.caption.serving.base import BACKENDS, Backend, Generation


def engine_arguments(model: str, server: Any, gpus: float) -> dict[str, Any]:
    """vLLM's LLM(...) arguments: memory from the GPU share (a fraction of one GPU takes that fraction), tensor
    parallel over whole GPUs, `server.engine` last so the user has the final word."""
    share = server.gpu_memory_utilization or min(0.9, gpus if 0 < gpus < 1 else 0.9)
    args: dict[str, Any] = {"model": model, "gpu_memory_utilization": round(share, 3),
                            "max_num_seqs": server.in_flight, "tensor_parallel_size": max(1, int(gpus))}
    if server.seed is not None:
        args["seed"] = server.seed
    if server.max_model_len:
        args["max_model_len"] = server.max_model_len
    return {**args, **server.engine}


def refuse_without_gpu(teacher: str) -> None:
    """One line where this worker has no GPU or no vLLM."""
    try:
        import torch
        has_gpu = torch.cuda.is_available() and torch.cuda.device_count() > 0
    except ImportError:
        has_gpu = False
    if not has_gpu:
        raise UserError(f"teacher {teacher!r}: backend vllm needs a GPU and this worker sees none (use backend openai "
                        "with a served model, or transformers on CPU)")
    try:
        import vllm  # noqa: F401
    except ImportError as exc:
        raise UserError(f"teacher {teacher!r}: backend vllm needs vLLM on the GPU workers (pip install vllm)") from exc


@BACKENDS.register("vllm")
class VLLMBackend(Backend):
    def start(self) -> None:
        refuse_without_gpu(self.teacher)
        import vllm

        self._vllm = vllm
        self._engine = vllm.LLM(**engine_arguments(self.model, self.server, self.gpus))
        self.provenance = f"engine:{self.model} by vllm {vllm.__version__}"
        atexit.register(self.close)

    def generate(self, conversations: list[list[dict[str, Any]]], params: dict[str, Any]) -> list[Generation]:
        """One `chat` call for the whole task: the engine batches continuously; outputs come back in order."""
        sampling = self._vllm.SamplingParams(**params)
        outputs = self._engine.chat(conversations, sampling, use_tqdm=False)
        return [as_generation(out) for out in outputs]

    def close(self) -> None:
        """Frees the GPU for what the worker runs next (vLLM's own shutdown, then the CUDA cache)."""
        engine = getattr(self, "_engine", None)
        if engine is None:
            return
        self._engine = None
        shutdown = getattr(getattr(engine, "llm_engine", None), "shutdown", None)
        if callable(shutdown):
            shutdown()
        del engine
        import gc

        import torch

        gc.collect()
        torch.cuda.empty_cache()


def as_generation(output: Any) -> Generation:
    """A vLLM RequestOutput as text and tokens; `finish_reason` "length" is a caption cut at max_tokens."""
    best = output.outputs[0]
    return Generation(best.text, len(output.prompt_token_ids or []), len(best.token_ids),
                      best.finish_reason == "length")
