from __future__ import annotations

import json

import pyarrow as pa
import pytest

from vlcurate.pipeline import atomic
from vlcurate.pipeline.yaml_layers import apply_overrides, deep_merge, list_profiles, load_config_data
from vlcurate.pipeline.registry import Registry


def test_atomic_writes_leave_no_temp_files(tmp_path):
    atomic.atomic_write_json(tmp_path / "a" / "s.json", {"b": 1, "a": [1, 2]})
    atomic.write_parquet(tmp_path / "a" / "m.parquet", pa.table({"x": [1, 2]}))
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["m.parquet", "s.json"]
    assert json.loads((tmp_path / "a" / "s.json").read_text()) == {"a": [1, 2], "b": 1}
    assert atomic.read_parquet(tmp_path / "a" / "m.parquet").column("x").to_pylist() == [1, 2]


def test_equal_tables_give_equal_parquet_bytes(tmp_path):
    t = pa.table({"x": [1, 2, 3], "s": ["a", None, "c"]})
    atomic.write_parquet(tmp_path / "1.parquet", t)
    atomic.write_parquet(tmp_path / "2.parquet", t)
    assert (tmp_path / "1.parquet").read_bytes() == (tmp_path / "2.parquet").read_bytes()


def test_markers(tmp_path):
    d = tmp_path / "stage"
    assert not atomic.is_done(d)
    d.mkdir()
    atomic.mark_done(d)
    assert atomic.is_done(d)
    atomic.clear_stage_dir(d)
    assert not d.exists()


def test_overrides_parse_yaml_values_and_nest():
    data = apply_overrides({"split": {"min_clip_s": 2}}, ["split.min_clip_s=3.5", "shard.audio=false",
                                                         "caption.teachers=[]"])
    assert data == {"split": {"min_clip_s": 3.5}, "shard": {"audio": False}, "caption": {"teachers": []}}
    with pytest.raises(ValueError, match="key.path=value"):
        apply_overrides({}, ["novalue"])


def test_profiles_and_merge(tmp_path):
    assert {"demo", "pretrained"} <= set(list_profiles("vlcurate.profiles"))
    extra = tmp_path / "c.yaml"
    extra.write_text("split:\n  min_clip_s: 9\n")
    data = load_config_data("demo", extra, ["shard.maxcount=2"], profiles="vlcurate.profiles")
    assert data["split"]["min_clip_s"] == 9 and data["split"]["detector"] == "adaptive"
    assert data["shard"]["maxcount"] == 2
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"b": 3}}) == {"a": {"b": 3, "c": 2}}
    with pytest.raises(ValueError, match="unknown profile"):
        load_config_data("nope", profiles="vlcurate.profiles")


def test_registry():
    reg: Registry[int] = Registry("thing")
    reg.register("one")(1)
    assert reg.get("one") == 1 and "one" in reg and reg.names() == ["one"]
    with pytest.raises(KeyError, match="registered: one"):
        reg.get("two")
    with pytest.raises(ValueError):
        reg.register("one")(2)


def test_a_registered_class_gets_its_key_once():
    things: Registry[type] = Registry("thing", attribute="name")

    @things.register("alpha")
    class Alpha:
        pass

    assert Alpha.name == "alpha" and things.get("alpha") is Alpha
    with pytest.raises(ValueError, match="thing 'beta' says its name is 'gamma'"):
        things.register("beta")(type("Beta", (), {"name": "gamma"}))


@pytest.mark.parametrize("profile", ["demo", "pretrained"])
def test_shipped_profiles_validate(profile):
    from vlcurate.config import load_run_config

    config = load_run_config(profile)
    assert config.caption.teachers and config.score.scorer.model


def test_the_stages_list_is_checked_and_every_registered_stage_has_a_typed_section():
    from vlcurate.config import load_run_config

    config = load_run_config(None, None, ["stages=[ingest, split, motion, caption, score, shard]",
                                          "motion.min_motion=0.01"])
    assert config.motion.min_motion == 0.01 and config.stages[2] == "motion"
    with pytest.raises(ValueError, match="unknown stage 'blur'"):
        load_run_config(None, None, ["stages=[ingest, split, blur]"])
    with pytest.raises(ValueError, match="the first stage must read the input videos"):
        load_run_config(None, None, ["stages=[split, caption]"])
    with pytest.raises(ValueError, match="stages listed twice"):
        load_run_config(None, None, ["stages=[ingest, split, motion, motion]"])
    with pytest.raises(ValueError, match="extra_forbidden|Extra inputs"):
        load_run_config(None, None, ["motion.min_moton=0.01"])


def test_a_stage_after_one_that_lacks_its_columns_is_refused(tmp_path, scene_video):
    from vlcurate.pipeline.failures import UserError
    from vlcurate.config import load_run_config
    from vlcurate.run import run_stages

    listing = tmp_path / "list.csv"
    listing.write_text(f"path\n{scene_video[0]}\n")
    config = load_run_config(None, None, ["stages=[ingest, motion]", "ingest.list_paths=anywhere"],
                             output=str(tmp_path / "o"), input=str(listing))
    with pytest.raises(UserError, match="motion needs the columns .*clip_id.* which ingest's output lacks"):
        run_stages(config)
