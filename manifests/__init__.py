"""Schemas of every manifest, in pipeline order. Each stage's manifest keeps all columns of the one before, so
every row stays self-describing and stages stay row-local."""

from __future__ import annotations

import pyarrow as pa

from vlcurate.manifests.base import Manifest
from vlcurate.pipeline.stage import Stored

f = pa.field

SPAN = pa.struct([f("start_s", pa.float64()), f("end_s", pa.float64())])
FETCH = pa.struct([  # how a video named by a URL was fetched (stages/ingest/fetch.py); null for files
    f("final_url", pa.string()),         # after redirects, or the media URL a page resolved to
    f("status", pa.int32()),             # the HTTP status of the body kept
    f("etag", pa.string()),
    f("last_modified", pa.string()),
    f("content_type", pa.string()),
    f("bytes", pa.int64()),
    f("sha256", pa.string()),            # of the bytes kept, all 64 hex digits
    f("extractor", pa.string()),         # "http" (a direct file) or yt-dlp's extractor, e.g. "generic", "youtube"
    f("extractor_version", pa.string()), # "urllib3 <v>" or "yt-dlp <v>"
    f("format", pa.string()),            # the yt-dlp format chosen (its id and resolution); null for direct files
    f("page_id", pa.string()),           # the site's own id for a page (yt-dlp's `id`)
    f("channel", pa.string()),
    f("upload_date", pa.string()),
    f("license", pa.string()),
])

VIDEOS = Manifest("videos", 4, (
    f("video_id", pa.string()),          # sha256 of the file's bytes, first 16 hex digits
    f("path", pa.string()),              # as given: an absolute path, or `pkg:<module>/<file>` inside a package;
                                         # a name that is not UTF-8 shows its odd bytes escaped (\xff) ...
    f("path_bytes", pa.binary()),        # ... and its exact bytes are here (null for every UTF-8 name)
    f("title", pa.string()),
    f("description", pa.string()),
    f("subtitles_path", pa.string()),
    f("size_bytes", pa.int64()),
    f("duration_s", pa.float64()),
    f("fps", pa.float64()),
    f("num_frames", pa.int64()),         # container's count or estimate at ingest; decoded count after split
    f("frames_stated", pa.int64()),      # the frame count the container states (null: it states none)
    f("width", pa.int32()),
    f("height", pa.int32()),
    f("codec", pa.string()),
    f("rotation", pa.int32()),           # display rotation in degrees
    f("sample_aspect_ratio", pa.float64()),
    f("has_audio", pa.bool_()),
    # a video named by an http(s) URL (`path` is the URL as given): where its fetched bytes are kept in the run
    # (`run:sources/<sha256(url)[:16]>.<ext>`, read by every later stage) and how they were fetched
    f("source", pa.string()),
    f("fetch", FETCH),
    f("spans", pa.list_(SPAN)),          # clip spans the input list gives (Panda-70M `timestamp`, `clips`, start/end)
    f("given_captions", pa.list_(pa.string())),  # a caption per span, from the list (Panda-70M `caption`)
    f("error", pa.string()),             # "<stage>/<reason>: <detail>", null when fine
))

SCORE = pa.struct([f("name", pa.string()), f("value", pa.float64())])
FILTER_RESULT = pa.struct([
    f("filter", pa.string()),            # the filter stage's name
    f("method", pa.string()),            # how it measured, e.g. frame_diff, dhash
    f("model", pa.string()),
    f("weights", pa.string()),           # "none" for weight-free filters, "untrained" for tiny test models
    f("scores", pa.list_(SCORE)),        # every number it measured for the clip
    f("threshold", pa.string()),         # the rule, in words: what would drop the clip
    f("passed", pa.bool_()),
    f("reason", pa.string()),            # why it failed the rule (kept anyway in `tag` mode)
])

CLIPS = VIDEOS.extend(
    "clips", 6,
    f("clip_id", pa.string()),           # "<video_id>_<start_frame>_<end_frame>"
    f("clip_index", pa.int32()),
    f("start_frame", pa.int64()),        # decoded frame index, inclusive
    f("end_frame", pa.int64()),          # exclusive
    f("start_s", pa.float64()),          # presentation time of start_frame, from the container's start
    f("end_s", pa.float64()),            # presentation time of end_frame (or the end of the last frame)
    f("detector", pa.string()),
    f("shots", pa.list_(pa.int32())),    # indexes of the detector shots (split/shots.parquet) the clip spans
    f("split_notes", pa.list_(pa.string())),  # merges, cuts and trims that made the clip, with their numbers
    f("decoder_passes", pa.int32()),     # times the source was decoded to make this clip's video's clips: 1
    f("frame_indices", pa.list_(pa.int64())),
    # the sampled frames' JPEG bytes are stored once, in split's frame store (FRAMES): the file, relative to the
    # run's output folder, and the clip's row in it; later stages read them by reference and never decode video
    f("frames_file", pa.string()),
    f("frames_row", pa.int32()),
    f("frames_digest", pa.string()),     # sha256 of the clip's stored JPEGs (first 16 hex): what caption reruns compare
    # the source decoded short of the frames its container states, or with decoder errors: its clips are kept
    # (split.damaged: drop makes them errors), flagged, and `damage` gives the numbers
    f("damaged", pa.bool_()),
    f("damage", pa.string()),
    f("filters", pa.list_(FILTER_RESULT)),  # each filter stage's measurement and verdict, in pipeline order
    # where `subtitles_path` came from: "file" (given with the video) or "asr" (the asr stage's transcript of its
    # speech, `run:asr/transcripts/<video_id>-<digest>.json`); null when there are none
    f("subtitles_source", pa.string()),
    f("transcript_note", pa.string()),   # why ASR gave no words ("asr/no_audio: ...", "asr/silence: ..."), or null
    f("given_caption", pa.string()),     # the input list's caption for the span this clip was cut from, or null
)

FRAMES = Manifest("frames", 1, (
    f("clip_id", pa.string()),
    f("frames", pa.list_(pa.binary())),  # JPEG bytes, in the order of the clip's frame_indices
))
# split stores the sampled frames once (`split/frames/`); every stage that reads them loads them by reference
STORED_FRAMES = Stored("frames", "clip_id", FRAMES.schema.field("frames").type)

CANDIDATE = pa.struct([
    f("teacher", pa.string()),           # the configured teacher's name
    f("kind", pa.string()),              # registered teacher kind
    f("model", pa.string()),
    f("weights", pa.string()),           # pretrained tag / hub id, or "untrained"
    f("inputs", pa.list_(pa.string())),  # frames, title, description, subtitles
    f("prompt_hash", pa.string()),
    f("text", pa.string()),
    f("status", pa.string()),            # ok | rejected | error
    f("reason", pa.string()),
    f("score", pa.float64()),            # filled by the score stage
    f("text_truncated", pa.bool_()),     # the scorer's text encoder saw only a prefix of the text
    f("subtitles_from", pa.string()),    # the subtitles it read: "file" or "asr" (null: it read none)
    f("flags", pa.list_(pa.string())),   # the caption-quality gate's flags it raised, rejecting or not
    f("prompt_tokens", pa.int32()),      # tokens the model read (null: a teacher without a language model)
    f("completion_tokens", pa.int32()),  # tokens it wrote
    f("truncated", pa.bool_()),          # generation stopped at the token limit
])

CAPTIONS = CLIPS.extend("captions", 8, f("candidates", pa.list_(CANDIDATE)))

SCORED = CAPTIONS.extend(
    "scored", 8,
    f("caption", pa.string()),
    f("caption_teacher", pa.string()),
    f("caption_score", pa.float64()),
    f("scorer", pa.string()),            # "<kind>:<model>@<weights>"
)

SHOTS = Manifest("shots", 1, (
    f("video_id", pa.string()),
    f("shot_index", pa.int32()),
    f("start_frame", pa.int64()),
    f("end_frame", pa.int64()),          # exclusive
    f("start_s", pa.float64()),
    f("end_s", pa.float64()),
    f("outcome", pa.list_(pa.string())), # what became of each piece of the shot: kept in a clip, merged, dropped
))

SHARD_INDEX = Manifest("shard_index", 4, (
    f("key", pa.string()),               # the clip id: the webdataset key
    f("shard", pa.string()),             # tar file name
    f("position", pa.int32()),           # sample's position within its tar
    f("video_id", pa.string()),
    f("path", pa.string()),
    f("start_frame", pa.int64()),
    f("end_frame", pa.int64()),
    f("start_s", pa.float64()),
    f("end_s", pa.float64()),
    f("frame_count", pa.int64()),        # frames in the written .mp4
    f("mp4_bytes", pa.int64()),
    f("encoding", pa.string()),          # "copy" (the source's packets, untouched) or the encoder and its settings
    f("caption", pa.string()),
    f("caption_teacher", pa.string()),
    f("caption_score", pa.float64()),
    f("damaged", pa.bool_()),            # cut from a source that decoded short or with errors (clips.damage)
))


FILTERED = Manifest("filtered", 1, (  # the clips a filter dropped, with why: `<filter>/filtered/part-N.parquet`
    f("clip_id", pa.string()),
    f("video_id", pa.string()),
    f("path", pa.string()),
    f("start_s", pa.float64()),
    f("end_s", pa.float64()),
    f("filter", pa.string()),
    f("reason", pa.string()),
    f("scores", pa.list_(SCORE)),
))


def with_frames(manifest: Manifest) -> pa.Schema:
    """A manifest's schema plus the `frames` column its rows carry in memory (on disk they sit in split's frame
    store, FRAMES, and the rows keep only a reference)."""
    schema = manifest.schema
    return pa.schema([*schema, FRAMES.schema.field("frames")], metadata=schema.metadata)


__all__ = ["CANDIDATE", "FETCH", "SPAN", "CAPTIONS", "CLIPS", "FILTERED", "FILTER_RESULT", "FRAMES", "Manifest",
           "SCORED", "SHARD_INDEX", "SHOTS", "VIDEOS", "with_frames"]
