from stages.cli_common import stage_app

app = stage_app("split", "Cut each ingested video into scene-consistent clips and sample their frames, in one decode.")
