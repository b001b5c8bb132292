from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from vlcurate.manifests import CAPTIONS, with_frames
from vlcurate.pipeline.executor import read_manifest
from vlcurate.cli import app
from vlcurate.stages import selector
from vlcurate.stages.scorers.base import ScorerConfig
from vlcurate.stages.selector.synthetic import COLOURS, SHAPES, SynthConfig, generate

runner = CliRunner()

# The synthetic proof: 400 clips (about 300 train, 100 held out), 12 epochs of 32 clips: 120 steps, ~15 s on 2 cores.
SYNTH_CLIPS = 400
TRAIN_ARGS = [f"--set={k}" for k in ("scorer.kind=open_clip", "scorer.model=tiny:open_clip", "scorer.pretrained=null",
                                      "train.epochs=12", "train.lr=1e-3", "train.batch_size=32", "train.holdout=0.25",
                                      "train.seed=0", "train.threads=2")]


# ------------------------------------------------------------------------------------------------------------ loss

def _unit(rng, n, d=8):
    import torch

    x = torch.tensor(rng.normal(size=(n, d)), dtype=torch.float32)
    return torch.nn.functional.normalize(x, dim=-1)


def test_loss_without_in_batch_negatives_is_the_per_clip_cross_entropy():
    import torch

    rng = np.random.default_rng(0)
    clips, texts = _unit(rng, 3), _unit(rng, 8)
    own = [[0, 1, 2], [3, 4], [5, 6, 7]]
    positives = [1, 3, 7]
    got = selector.selection_loss(clips, texts, own, positives, 10.0, 1.0, 0.0)
    per_clip = [torch.nn.functional.cross_entropy((10.0 * clips[i] @ texts[own[i]].T)[None],
                                                  torch.tensor([own[i].index(positives[i])]))
                for i in range(3)]
    assert torch.allclose(got, torch.stack(per_clip).mean(), atol=1e-6)


def test_loss_weights_hard_negatives_above_in_batch_negatives():
    rng = np.random.default_rng(1)
    clips, texts = _unit(rng, 2), _unit(rng, 5)
    own, positives = [[0, 1], [2, 3, 4]], [0, 4]
    scale, hard, easy = 7.0, 1.0, 0.01
    logits = scale * (clips @ texts.T).numpy()
    expected = []
    for i in range(2):
        weights = np.array([hard if j in own[i] else easy for j in range(5)])
        weights[positives[i]] = 1.0
        expected.append(-logits[i, positives[i]] + math.log(float(np.sum(weights * np.exp(logits[i])))))
    got = selector.selection_loss(clips, texts, own, positives, scale, hard, easy)
    assert float(got) == pytest.approx(float(np.mean(expected)), abs=1e-5)
    # an in-batch negative costs a hundredth of what the same text costs as one of the clip's own candidates
    more_in_batch = float(selector.selection_loss(clips, texts, own, positives, scale, hard, 0.5))
    assert more_in_batch > float(got)
    only_positive = float(selector.selection_loss(clips, texts, own, positives, scale, 0.0, 0.0))
    assert only_positive == pytest.approx(0.0, abs=1e-6)


def test_learning_rate_warms_up_then_decays_to_zero():
    factors = [selector.learning_rate_factor(s, 100, 0.1) for s in range(100)]
    assert factors[0] < factors[5] < factors[9] <= 1.0
    assert factors[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:])) and factors[-1] < 0.01


# ---------------------------------------------------------------------------------------------------------- labels

def captions_table(clips: dict[str, list[tuple[str, str, str]]], errors: dict[str, str] | None = None) -> pa.Table:
    """clip id -> [(teacher, text, status)]: a minimal captions manifest."""
    rows = []
    for n, (clip_id, cands) in enumerate(clips.items()):
        rows.append({"clip_id": clip_id, "path": "/v", "start_frame": n, "frames": [b"jpeg"],
                     "error": (errors or {}).get(clip_id),
                     "candidates": [{"teacher": t, "text": x, "status": s} for t, x, s in cands]})
    return pa.Table.from_pylist(rows, schema=with_frames(CAPTIONS))


CAPTIONS_3 = {"0001": [("blip", "a dog", "ok"), ("llm", "a cat", "ok"), ("title", "", "rejected")],
              "c2": [("blip", "red", "ok"), ("llm", "blue", "ok")],
              "c3": [("blip", "only one", "ok"), ("llm", "x", "error")]}


def test_labels_by_teacher_or_text_from_csv_and_parquet(tmp_path):
    csv = tmp_path / "labels.csv"
    csv.write_text("clip_id,teacher,text\n0001,llm,\nc2,,blue\n")
    labels = selector.read_labels(csv)
    assert labels == {"0001": {"teacher": "llm", "text": None}, "c2": {"teacher": None, "text": "blue"}}
    examples, skipped = selector.join_labels(captions_table(CAPTIONS_3), labels)
    assert [(e.clip_id, e.texts, e.label) for e in examples] == [("0001", ["a dog", "a cat"], 1),
                                                                  ("c2", ["red", "blue"], 1)]
    parquet = tmp_path / "labels.parquet"
    pq.write_table(pa.Table.from_pylist([{"clip_id": "c2", "chosen_text": "red"},
                                         {"clip_id": "c3", "chosen_text": "only one"}]), parquet)
    examples, skipped = selector.join_labels(captions_table(CAPTIONS_3), selector.read_labels(parquet))
    assert [(e.clip_id, e.label) for e in examples] == [("c2", 0)]
    assert skipped == {"fewer_than_two_candidates": 1}


@pytest.mark.parametrize("content, message", [
    ("clip,teacher\nc2,blip\n", "needs a clip_id column and a teacher or text column"),
    ("clip_id,good\nc2,1\n", "needs a clip_id column and a teacher or text column"),
    ("clip_id,teacher\nc2,\n", "names no chosen candidate"),
    ("clip_id,teacher\nc2,blip\nc2,llm\n", "labelled twice with different choices"),
])
def test_label_file_errors(tmp_path, content, message):
    path = tmp_path / "labels.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        selector.read_labels(path)


@pytest.mark.parametrize("labels, message", [
    ({"nope": {"teacher": "blip", "text": None}, "c9": {"teacher": "blip", "text": None}},
     r"2 labelled clip id\(s\) are not in the captions manifest, e.g. c9, nope"),
    ({"c2": {"teacher": "bogus", "text": None}}, "c2: no candidate from teacher 'bogus' \\(teachers: blip, llm\\)"),
    ({"0001": {"teacher": "title", "text": None}}, "teacher 'title' has status 'rejected'"),
    ({"c2": {"teacher": None, "text": "green"}}, "c2: no usable candidate has the text 'green'"),
    ({"c2": {"teacher": "blip", "text": "blue"}}, "c2: teacher 'blip' wrote 'red', the label says 'blue'"),
])
def test_labels_that_do_not_match_the_manifest_are_errors(labels, message):
    with pytest.raises(ValueError, match=message):
        selector.join_labels(captions_table(CAPTIONS_3), labels)


def test_clips_with_upstream_errors_are_left_out_not_fatal():
    table = captions_table(CAPTIONS_3, errors={"c2": "split/too_short: x"})
    examples, skipped = selector.join_labels(table, {"c2": {"teacher": "blip", "text": None},
                                                     "0001": {"teacher": "blip", "text": None}})
    assert [e.clip_id for e in examples] == ["0001"] and skipped == {"upstream_error": 1}


def test_holdout_is_a_stable_hash_of_the_clip_id():
    ids = [f"video_{i}_{i + 10}" for i in range(2000)]
    held = [i for i in ids if selector.is_holdout(i, 0.2)]
    assert 0.17 < len(held) / len(ids) < 0.23
    assert held == [i for i in reversed(ids) if selector.is_holdout(i, 0.2)][::-1]
    assert set(held) <= {i for i in ids if selector.is_holdout(i, 0.5)}  # a larger split contains the smaller
    assert not any(selector.is_holdout(i, 0.0) for i in ids)


# ------------------------------------------------------------------------------------------------------- synthetic

def test_synthetic_data_is_deterministic_and_one_word_off():
    captions, labels = generate(SynthConfig(clips=12, seed=3))
    again, labels_again = generate(SynthConfig(clips=12, seed=3))
    assert captions.equals(again) and labels.equals(labels_again)
    assert not captions.equals(generate(SynthConfig(clips=12, seed=4))[0])
    CAPTIONS.validate(captions)
    for row, label in zip(captions.to_pylist(), labels.to_pylist()):
        assert row["clip_id"] == label["clip_id"] and len(row["frames"]) == 2
        texts = {c["teacher"]: c["text"] for c in row["candidates"]}
        assert texts[label["teacher"]] == label["text"] and len(set(texts.values())) == 4
        truth = label["text"].split()
        assert truth[0] in COLOURS and truth[1].rstrip("s") in SHAPES
        for text in texts.values():
            if text != label["text"]:
                assert sum(a != b for a, b in zip(text.split(), truth)) == 1


# -------------------------------------------------------------------------------------------------------- training

def synth_examples(clips: int, seed: int = 0) -> list[selector.Example]:
    captions, labels = generate(SynthConfig(clips=clips, seed=seed))
    found = {r["clip_id"]: {"teacher": r["teacher"], "text": None} for r in labels.to_pylist()}
    return selector.join_labels(captions, found)[0]


def test_training_is_deterministic_on_cpu(tmp_path):
    from safetensors.torch import load_file

    examples = synth_examples(16)
    config = selector.SelectorTrainConfig(epochs=1, lr=1e-3, batch_size=8, holdout=0.25, threads=2, device="cpu")
    base = ScorerConfig(kind="open_clip", model="tiny:open_clip")
    first = selector.train_selector(examples, base, tmp_path / "a", config)
    second = selector.train_selector(examples, base, tmp_path / "b", config)
    assert first.loss_per_epoch == second.loss_per_epoch and first.steps == 2
    a = load_file(str(tmp_path / "a" / "open_clip_model.safetensors"))
    b = load_file(str(tmp_path / "b" / "open_clip_model.safetensors"))
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    with pytest.raises(FileExistsError, match="not empty"):
        selector.train_selector(examples, base, tmp_path / "a", config)
    with pytest.raises(ValueError, match="no held-out clips"):
        selector.train_selector(examples[:1], base, tmp_path / "c", config.model_copy(update={"holdout": 0.01}))


def test_hf_clip_selector_trains_saves_and_scores(tmp_path):
    from vlcurate.stages.score import ScoreConfig, ScoreStage

    examples = synth_examples(16)
    config = selector.SelectorTrainConfig(epochs=1, lr=1e-3, batch_size=8, holdout=0.25, threads=2, device="cpu")
    result = selector.train_selector(examples, ScorerConfig(kind="hf_clip", model="tiny:hf_clip"),
                                     tmp_path / "sel", config)
    info = json.loads((tmp_path / "sel" / "selector.json").read_text())
    assert info["kind"] == "hf_clip" and info["base_weights"] == "untrained" and result.steps == 2
    captions, _ = generate(SynthConfig(clips=2))
    stage = ScoreStage(ScoreConfig(scorer={"kind": "hf_clip", "model": str(tmp_path / "sel")}))
    out = stage.process_batch(captions).to_pylist()
    assert all(r["scorer"] == f"hf_clip:{tmp_path / 'sel'}@selector:{(tmp_path / 'sel').resolve()}" for r in out)
    assert all(r["caption"] for r in out)
    wrong = ScoreStage(ScoreConfig(scorer={"kind": "open_clip", "model": str(tmp_path / "sel")}))
    with pytest.raises(ValueError, match="fine-tuned from a hf_clip model"):
        wrong.process_batch(captions)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The CLI end to end: synthetic data, then `vlcurate selector train` from the untrained tiny model."""
    root = tmp_path_factory.mktemp("selector")
    result = runner.invoke(app, ["selector", "synth", str(root / "data"), "--clips", str(SYNTH_CLIPS)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["selector", "train", str(root / "data" / "labels.csv"), str(root / "data"),
                                 "--to", str(root / "selector"), *TRAIN_ARGS])
    assert result.exit_code == 0, result.output
    return root, result.output


@pytest.mark.slow
def test_selector_learns_the_synthetic_task_from_chance(trained):
    root, output = trained
    info = json.loads((root / "selector" / "selector.json").read_text())
    acc = info["holdout_accuracy"]
    assert info["base_model"] == "tiny:open_clip" and info["base_weights"] == "untrained"
    assert info["data"]["holdout_clips"] >= 80 and acc["chance"] == 0.25
    assert acc["before"] <= 0.45, acc     # an untrained model picks at about chance
    assert acc["after"] >= 0.9, acc
    assert f"before {acc['before']:.3f} -> after {acc['after']:.3f}" in output
    assert info["loss_per_epoch"][-1] < info["loss_per_epoch"][0]

    # the recorded number is what the score stage does with the saved folder on the held-out clips
    from vlcurate.stages.score import ScoreConfig, ScoreStage

    captions = read_manifest(root / "data" / "caption", root / "data")
    labels = _labels(root)
    held = captions.filter(pa.array([selector.is_holdout(c, 0.25) for c in captions.column("clip_id").to_pylist()]))
    stage = ScoreStage(ScoreConfig(scorer={"kind": "open_clip", "model": str(root / "selector")}))
    picks = {r["clip_id"]: r["caption"] for r in stage.process_batch(held).to_pylist()}
    assert len(picks) == info["data"]["holdout_clips"]
    assert round(float(np.mean([picks[c] == labels[c] for c in picks])), 6) == acc["after"]


def _labels(root) -> dict[str, str]:
    import csv

    with (root / "data" / "labels.csv").open() as f:
        return {r["clip_id"]: r["text"] for r in csv.DictReader(f)}


@pytest.mark.slow
def test_score_with_the_saved_selector_picks_other_captions(trained):
    root, _ = trained
    labels = _labels(root)

    def score(model: str) -> list[dict]:
        result = runner.invoke(app, ["score", "-o", str(root / "data"), "--overwrite",
                                     "--set", "score.scorer.kind=open_clip", "--set", f"score.scorer.model={model}"])
        assert result.exit_code == 0, result.output
        return read_manifest(root / "data" / "score").to_pylist()

    base = score("tiny:open_clip")
    tuned = score(str(root / "selector"))
    assert {r["scorer"] for r in base} == {"open_clip:tiny:open_clip@untrained"}
    assert {r["scorer"] for r in tuned} == {f"open_clip:{root / 'selector'}@selector:{(root / 'selector').resolve()}"}
    base_picks = {r["clip_id"]: r["caption"] for r in base}
    tuned_picks = {r["clip_id"]: r["caption"] for r in tuned}
    changed = sum(base_picks[c] != tuned_picks[c] for c in labels)
    base_right = np.mean([base_picks[c] == t for c, t in labels.items()])
    tuned_right = np.mean([tuned_picks[c] == t for c, t in labels.items()])
    assert changed >= len(labels) // 2, (changed, len(labels))
    assert base_right < 0.45 and tuned_right >= 0.9, (base_right, tuned_right)


def test_selector_cli_errors_and_help(tmp_path):
    for command in (["selector"], ["selector", "train"], ["selector", "synth"]):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output, result.output
    assert "hard negatives" in runner.invoke(app, ["selector", "train", "--help"]).output
    result = runner.invoke(app, ["selector", "synth", str(tmp_path / "d"), "--clips", "4"])
    assert result.exit_code == 0, result.output
    labels = tmp_path / "bad.csv"
    labels.write_text("clip_id,teacher\nnot-a-clip,synth0\n")
    result = runner.invoke(app, ["selector", "train", str(labels), str(tmp_path / "d"), "--to", str(tmp_path / "s"),
                                 "--set", "scorer.model=tiny:open_clip"])
    assert result.exit_code == 2 and "not in the captions manifest" in result.output
    result = runner.invoke(app, ["selector", "train", str(tmp_path / "d" / "labels.csv"), str(tmp_path / "nowhere"),
                                 "--to", str(tmp_path / "s")])
    assert result.exit_code == 2 and "nowhere" in result.output
    result = runner.invoke(app, ["selector", "train", str(tmp_path / "d" / "labels.csv"), str(tmp_path / "d"),
                                 "--to", str(tmp_path / "s"), "--set", "train.epoch=3"])
    assert result.exit_code == 2 and result.output.strip() == "error: train.epoch: unknown key"
    result = runner.invoke(app, ["selector", "synth", str(tmp_path / "e"), "--candidates", "9"])
    assert result.exit_code == 2 and "candidates must be 2..6" in result.output
