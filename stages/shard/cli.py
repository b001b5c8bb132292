from stages.cli_common import stage_app

app = stage_app("shard", "Write WebDataset tars (.mp4 clip, .json metadata, .txt caption) with Parquet sidecars.")
