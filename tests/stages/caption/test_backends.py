"""Served backends without a model: what is retried, what a clip's candidate records, what stops the run, what a
worker without a GPU says, and the token counts of the in-process path."""

from __future__ import annotations

import base64
import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow as pa
import pytest

from tests.stages.caption.test_caption import clip_rows, jpeg
from vlcurate.pipeline.failures import MachineError, UserError, is_machine_failure
from vlcurate.stages.caption import CaptionConfig, CaptionStage
from vlcurate.stages.caption.serving import Generation, ServerConfig, backend, sampling
from vlcurate.stages.caption.serving.vllm_engine import engine_arguments
from vlcurate.stages.caption.teachers import TEACHERS, ClipInput, TeacherConfig
from vlcurate.stages.caption.teachers.base import generations


class Scripted(BaseHTTPRequestHandler):
    """An OpenAI-compatible server whose answer the prompt picks: `429x2` fails twice with 429 then answers, `bad`
    is a 400, `down` is always 503; anything else is echoed back as the caption."""

    calls: dict[str, int] = {}
    models = ["m"]

    def log_message(self, *args) -> None:
        pass

    def reply(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.reply(200, {"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "t"}
                                                    for m in self.models]})

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = request["messages"][-1]["content"]
        prompt = prompt if isinstance(prompt, str) else prompt[-1]["text"]
        seen = Scripted.calls[prompt] = Scripted.calls.get(prompt, 0) + 1
        if prompt.startswith("429x2") and seen <= 2:
            return self.reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"})
        if prompt.startswith("bad"):
            return self.reply(400, {"error": {"message": "prompt is longer than the context"}})
        if prompt.startswith("down"):
            return self.reply(503, {"error": {"message": "loading"}})
        if prompt.startswith("auth"):
            return self.reply(401, {"error": {"message": "invalid key"}})
        words = len(prompt.split())
        limit = request["max_tokens"]
        self.reply(200, {"id": "x", "object": "chat.completion", "created": 0, "model": request["model"],
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": f"Said: {prompt}"},
                                      "finish_reason": "length" if words >= limit else "stop"}],
                         "usage": {"prompt_tokens": words + 5, "completion_tokens": min(words, limit),
                                   "total_tokens": words + 5 + min(words, limit)}})


@pytest.fixture()
def scripted():
    Scripted.calls = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


OPEN: list = []


@pytest.fixture(autouse=True)
def _closed():
    """Every backend a test starts is closed after it (its client and event loop)."""
    yield
    while OPEN:
        OPEN.pop().close()


def engine(url: str, **server):
    out = backend("openai")("t", "m", ServerConfig(base_url=url, backoff_s=0.01, **server))
    OPEN.append(out)
    out.start()
    return out


def ask(*prompts: str) -> list[list[dict]]:
    return [[{"role": "user", "content": p}] for p in prompts]


def test_429_is_retried_and_a_400_is_the_clips_alone(scripted):
    out = engine(scripted).generate(ask("429x2 a b", "bad request", "a b c d e"), sampling({}, {}, 0))
    assert out[0] == Generation("Said: 429x2 a b", 8, 3, False) and Scripted.calls["429x2 a b"] == 3
    assert out[1].error.startswith("server refused the request (400): prompt is longer than the context")
    assert out[2].truncated is False and out[2].completion_tokens == 5
    assert engine(scripted).generate(ask("one two three"), sampling({"max_new_tokens": 2}, {}, 0))[0].truncated


def test_a_server_that_stays_down_is_the_machines_failure_and_a_bad_key_the_users(scripted):
    with pytest.raises(MachineError, match="failed 3 times: InternalServerError: loading") as caught:
        engine(scripted, retries=2).generate(ask("down"), sampling({}, {}, 0))
    assert is_machine_failure(caught.value) and Scripted.calls["down"] == 3
    with pytest.raises(UserError, match="answered 401: invalid key"):
        engine(scripted).generate(ask("auth"), sampling({}, {}, 0))
    with pytest.raises(UserError, match=r"serves \['m'\], not 'other'"):
        backend("openai")("t", "other", ServerConfig(base_url=scripted)).start()
    with pytest.raises(MachineError, match="failed 1 times"):  # nothing listens: refused, not the clip's fault
        engine("http://127.0.0.1:9/v1", retries=0)


def test_a_failed_request_cancels_the_ones_still_waiting(scripted):
    """The task fails at once: requests queued behind the failed one are never sent, none is left on the loop."""
    failing = engine(scripted, retries=0, in_flight=1)
    with pytest.raises(MachineError):
        failing.generate(ask("down", "never sent"), sampling({}, {}, 0))
    assert not asyncio.all_tasks(failing._loop)
    failing.close()
    assert "never sent" not in Scripted.calls and failing._loop.is_closed()


def test_the_caption_stage_through_a_served_teacher(scripted, monkeypatch):
    monkeypatch.setenv("TEST_KEY", "secret-value")
    config = TeacherConfig(name="served", kind="llm", backend="openai", model="m", inputs=["title"],
                           prompt="{title}", generation={"max_new_tokens": 3},
                           server={"base_url": scripted, "api_key_env": "TEST_KEY"})
    stage = CaptionStage(CaptionConfig(teachers=[config]))
    table = clip_rows(["a", "b"])
    table = table.set_column(table.schema.get_field_index("title"), "title",
                             pa.array(["bad title", "Cows graze on a hill"]))
    rows = stage.process_batch(table).to_pylist()
    bad, good = (r["candidates"][0] for r in rows)
    assert bad["status"] == "error" and "400" in bad["reason"]
    assert (good["text"], good["truncated"]) == ("Said: Cows graze on a hill", True)
    assert good["flags"] == ["truncated", "copies_title"] and good["reason"].startswith("copies_title")
    assert good["weights"].startswith("served:m by an OpenAI-compatible server") and good["prompt_tokens"] == 10
    assert "secret-value" not in json.dumps(CaptionConfig(teachers=[config]).model_dump())
    assert stage.passes()[0].resources.gpus == 0.0  # the model is served elsewhere: no GPU for this worker


def test_video_lm_sends_the_stored_jpegs_as_they_are():
    teacher = TEACHERS.get("video_lm")(TeacherConfig(name="v", kind="video_lm", num_frames=2, inputs=["frames"]))
    frames = [jpeg((k * 40, 0, 0)) for k in range(4)]
    (message,) = teacher.chat(ClipInput("a", frames=frames, end_s=2.0))
    urls = [part["image_url"]["url"] for part in message["content"][:-1]]
    assert [base64.b64decode(u.split(",", 1)[1]) for u in urls] == [frames[1], frames[3]]
    assert message["content"][-1] == {"type": "text", "text": "Please faithfully summarize the video in one sentence."}


def test_served_backends_only_for_kinds_that_build_chat_messages_and_vllm_refuses_without_a_gpu():
    only_in_process = r"kind hf_image_captioner runs only in-process; backend openai serves \[.llm., .video_lm.\]"
    with pytest.raises(ValueError, match=only_in_process):
        TeacherConfig(name="x", kind="hf_image_captioner", backend="openai", model="m")
    with pytest.raises(ValueError, match="needs `model`"):
        TeacherConfig(name="x", kind="llm", backend="vllm")
    stage = CaptionStage(CaptionConfig(teachers=[TeacherConfig(name="x", kind="video_lm", backend="vllm",
                                                               model="Qwen/Qwen2.5-VL-3B-Instruct")]))
    with pytest.raises(UserError, match="backend vllm needs a GPU and this worker sees none"):
        stage.passes()[0].load()


def test_vllm_engine_arguments_follow_the_teachers_gpu_share():
    server = ServerConfig(in_flight=64, seed=3)
    assert engine_arguments("m", server, 0.5) == {"model": "m", "gpu_memory_utilization": 0.5, "max_num_seqs": 64,
                                                  "tensor_parallel_size": 1, "seed": 3}
    whole = engine_arguments("m", ServerConfig(engine={"dtype": "bfloat16"}, max_model_len=4096), 2)
    assert (whole["gpu_memory_utilization"], whole["tensor_parallel_size"], whole["dtype"],
            whole["max_model_len"]) == (0.9, 2, "bfloat16", 4096)


def test_sampling_maps_transformers_settings_to_openai_fields():
    assert sampling({"max_new_tokens": 12}, {"max_new_tokens": 40, "no_repeat_ngram_size": 4}, 7) == {
        "max_tokens": 12, "temperature": 0.0, "seed": 7}
    assert sampling({"do_sample": True, "temperature": 0.7, "top_p": 0.9}, {}, None) == {
        "max_tokens": 64, "temperature": 0.7, "top_p": 0.9}


def test_token_counts_of_a_transformers_batch():
    import torch

    mask = torch.tensor([[0, 1, 1], [1, 1, 1]])
    new = torch.tensor([[5, 6, 2, 2], [7, 8, 9, 10]])  # 2 is the end of sequence (and the padding after it)
    assert generations(["a", "b"], mask, new, [2], 4) == [Generation("a", 2, 3, False), Generation("b", 3, 4, True)]
