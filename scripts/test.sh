#!/usr/bin/env bash
# README command (2), and what CI runs (.ci/run): set up and build, then run
# the whole test suite through CTest. The first CTest test writes the
# reference values with transformers / tokenizers in the venv; the C++ tests
# compare against them.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${PEFTCPP_BUILD_DIR:-$repo/build}
start=$(date +%s)
bash "$repo/scripts/setup.sh"
cd "$build"
# --no-tests=error: a filter that matches nothing must not pass.
ctest --output-on-failure --no-tests=error -j "${PEFTCPP_TEST_JOBS:-$(nproc)}" "$@"
echo "[test] setup, build and tests took $(( $(date +%s) - start ))s"
