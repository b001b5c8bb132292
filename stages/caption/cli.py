from stages.cli_common import stage_app

app = stage_app("caption", "Run every configured teacher on every clip; each writes one candidate caption.")
