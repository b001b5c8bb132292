from stages.cli_common import stage_app

app = stage_app("score", "Score every candidate caption with a video-text retrieval model and choose the best.")
