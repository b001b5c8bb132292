"""The list formats of published datasets (stages/ingest/columns.py): Panda-70M, video2dataset, WebVid, Kinetics."""

from __future__ import annotations

import pytest

from vlcurate.pipeline.failures import UserError
from vlcurate.stages.ingest.columns import captions_of, seconds, spans_of, video_of
from vlcurate.stages.ingest.discover import discover


def test_times_are_seconds_or_clock_strings():
    assert [seconds(v, "x") for v in (3, 2.5, "4.25", "0:00:06.840", "01:02.5", "1:00:00")] == \
        [3.0, 2.5, 4.25, 6.84, 62.5, 3600.0]
    with pytest.raises(UserError, match="x: 'soon' is not a time"):
        seconds("soon", "x")


def test_each_format_names_its_video_spans_and_captions():
    panda = {"videoID": "abc", "url": "https://e.x/v.mp4", "timestamp": "[['0:00:00.000', '0:00:05.280'], "
             "['0:00:05.280', '0:00:09.000']]", "caption": "['One.', 'Two.']", "matching_score": "[0.4, 0.3]"}
    spans = spans_of(panda, "row 2")
    assert video_of(panda) == "https://e.x/v.mp4"
    assert spans == [{"start_s": 0.0, "end_s": 5.28}, {"start_s": 5.28, "end_s": 9.0}]
    assert captions_of(panda, spans, "row 2") == ["One.", "Two."]
    assert spans_of({"clips": [[1, 2.5]]}, "r") == [{"start_s": 1.0, "end_s": 2.5}]
    kinetics = {"youtube_id": "dQw4w9WgXcQ", "time_start": 10, "time_end": 20, "label": "dancing"}
    assert video_of(kinetics) == "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
    assert spans_of(kinetics, "r") == [{"start_s": 10.0, "end_s": 20.0}]
    webvid = {"contentUrl": "https://e.x/w.mp4", "name": "Aerial view of a coast, with [waves]"}
    assert captions_of(webvid, None, "r") == ["Aerial view of a coast, with [waves]"]
    assert spans_of({"path": "a.mp4"}, "r") is None


@pytest.mark.parametrize("row,message", [
    ({"timestamp": "[['0:00:05', '0:00:01']]"}, "does not end after it starts"),
    ({"timestamp": "not a list"}, "column 'timestamp' is not a list"),
    ({"clips": [[1, 2, 3]]}, "a span is \\[start, end\\]"),
    ({"start": 1}, "'start' and 'end' come together"),
    ({"timestamp": "[[0, 1], [1, 2]]", "caption": "['only one']"}, "1 captions for 2 spans"),
])
def test_a_malformed_span_or_caption_list_stops_the_run_naming_the_row(row, message):
    with pytest.raises(UserError, match=message):
        captions_of(row, spans_of(row, "list.csv, row 2"), "list.csv, row 2")


def test_a_panda70m_csv_is_read_as_published(tmp_path):
    (tmp_path / "panda.csv").write_text(
        "videoID,url,timestamp,caption,matching_score\n"
        "abc,https://e.x/watch?v=abc,\"[['0:00:00.000', '0:00:01.500']]\",\"['A dog runs.']\",[0.45]\n")
    (tmp_path / "bad.csv").write_text("videoID,link\nabc,https://e.x/v.mp4\n")
    row = discover(tmp_path / "panda.csv").to_pylist()[0]
    assert (row["path"], row["spans"], row["given_captions"], row["error"]) == (
        "https://e.x/watch?v=abc", [{"start_s": 0.0, "end_s": 1.5}], ["A dog runs."], None)
    with pytest.raises(UserError, match="unknown columns \\['link'\\]"):
        discover(tmp_path / "bad.csv")
    assert discover("https://e.x/one.mp4").to_pylist()[0]["path"] == "https://e.x/one.mp4"
