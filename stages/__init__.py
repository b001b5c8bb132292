"""The five stages of vlcurate. Each folder holds its Stage, its typer sub-app and its plug-ins."""
