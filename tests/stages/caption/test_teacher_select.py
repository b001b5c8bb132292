from __future__ import annotations

import json

from typer.testing import CliRunner

from vlcurate.stages.caption.teacher_select import greedy_cover, read_labels
from vlcurate.cli import app

# Hand-computed: 6 clips. Good captions per clip:
#   c1: A B   c2: A   c3: B C   c4: C   c5: C D   c6: nobody
# step 1: A covers {c1,c2}=2, B {c1,c3}=2, C {c3,c4,c5}=3, D {c5}=1  -> C (3/6)
# step 2: left {c1,c2}: A 2, B 1, D 0                                 -> A (5/6)
# step 3: left {}: stop. c6 is never covered.
LABELS = {"c1": "AB", "c2": "A", "c3": "BC", "c4": "C", "c5": "CD", "c6": ""}


def write_labels(path):
    lines = ["clip_id,teacher,good"]
    for clip, good in LABELS.items():
        for teacher in "ABCD":
            lines.append(f"{clip},{teacher},{'true' if teacher in good else 'false'}")
    path.write_text("\n".join(lines) + "\n")


def test_greedy_cover_matches_the_hand_computed_one(tmp_path):
    write_labels(tmp_path / "labels.csv")
    steps = greedy_cover(read_labels(tmp_path / "labels.csv"))
    assert [(s.teacher, s.newly_covered, s.covered, s.total) for s in steps] == [("C", 3, 3, 6), ("A", 2, 5, 6)]
    assert [round(s.coverage, 4) for s in steps] == [0.5, 0.8333]
    assert [s.teacher for s in greedy_cover(read_labels(tmp_path / "labels.csv"), k=1)] == ["C"]


def test_ties_go_to_the_first_name():
    assert [s.teacher for s in greedy_cover({"x": {"b", "a"}, "y": set()})] == ["a"]


def test_cli_prints_and_writes_the_curve(tmp_path):
    write_labels(tmp_path / "labels.csv")
    result = CliRunner().invoke(app, ["teachers", "select", str(tmp_path / "labels.csv"), "--to",
                                      str(tmp_path / "curve.json")])
    assert result.exit_code == 0, result.output
    assert "83.3%" in result.output and "50.0%" in result.output
    curve = json.loads((tmp_path / "curve.json").read_text())
    assert [row["teacher"] for row in curve] == ["C", "A"]
    (tmp_path / "bad.csv").write_text("clip,who\n1,A\n")
    result = CliRunner().invoke(app, ["teachers", "select", str(tmp_path / "bad.csv")])
    assert result.exit_code == 2 and "clip_id, teacher, good" in result.output
