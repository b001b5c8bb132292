from stages.cli_common import stage_app

app = stage_app("ingest", "Find videos (folder, glob or list file), hash and probe them -> <output>/ingest/manifest.parquet.")
