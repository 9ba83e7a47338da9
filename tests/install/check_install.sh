#!/usr/bin/env bash
# The installed package works from outside the tree (CTest: install.consumer).
#
#   check_install.sh BUILD_DIR WORK_DIR [CMAKE [PYTHON]]
#
# Installs BUILD_DIR into WORK_DIR/prefix with `cmake --install`, checks the
# layout, then configures, builds and runs tests/install/consumer against the
# prefix alone (no source tree on its include path, no -DPEFTCPP_PYTHON: the
# package must find LibTorch by itself), and runs the installed bin/peftcpp.
# With PYTHON (the venv's), the consumer is also configured with
# -DPEFTCPP_PYTHON, the override, and with a Python that has no torch, which
# must fail with peftcpp's message. WORK_DIR is wiped first. Slow: one
# LibTorch-sized compile and link (ccache makes the compile of a rerun
# nearly free).
set -euo pipefail
build=$(cd "$1" && pwd)
work=$2
cmake=${3:-cmake}
python=${4:-}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
say() { printf '[install] %s\n' "$*"; }
fail() { printf '[install] FAILED: %s\n' "$*" >&2; exit 1; }

rm -rf "$work"
mkdir -p "$work"
prefix="$work/prefix"
start=$(date +%s)

say "cmake --install $build --prefix $prefix"
"$cmake" --install "$build" --prefix "$prefix" >"$work/install.log" ||
  { cat "$work/install.log" >&2; fail "cmake --install"; }

for f in include/peft/peft_model.h include/data/tokenizer/tokenizer.h \
         include/models/encoder/load_encoder.h include/common/error.h \
         lib/libpeftcpp.a lib/libpeftcpp_data.a lib/libpeftcpp_tokenizer.a \
         lib/libpeftcpp_common.a bin/peftcpp \
         lib/cmake/peftcpp/peftcppConfig.cmake \
         lib/cmake/peftcpp/peftcppConfigVersion.cmake \
         lib/cmake/peftcpp/peftcppTargets.cmake; do
  [ -e "$prefix/$f" ] || fail "expected $prefix/$f after install, got nothing"
done
# Sources, build files and the venv's paths stay out of the package.
if find "$prefix/include" -type f ! -name '*.h' | grep -q .; then
  fail "expected only headers under include/, got: $(find "$prefix/include" -type f ! -name '*.h' | head -3)"
fi
if grep -l "$build\|/site-packages/" "$prefix"/lib/cmake/peftcpp/peftcppTargets*.cmake; then
  fail "expected no build or venv path in the exported targets (the config finds Torch)"
fi

# The installed command starts (its RPATH reaches the venv's libtorch).
"$prefix/bin/peftcpp" --help >"$work/cli_help.txt" 2>&1 ||
  { cat "$work/cli_help.txt" >&2; fail "installed bin/peftcpp --help"; }

# ccache like the main build, keyed outside any clone; no PCH in the consumer.
launcher=()
if command -v ccache >/dev/null; then
  export CCACHE_DIR=${CCACHE_DIR:-${PEFTCPP_CACHE:-$HOME/.cache/peftcpp}/ccache}
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
say "configuring the consumer against $prefix"
"$cmake" -S "$here/consumer" -B "$work/consumer" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" "${launcher[@]}" \
  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
  >"$work/configure.log" 2>&1 ||
  { cat "$work/configure.log" >&2; fail "consumer configure"; }
say "building the consumer"
"$cmake" --build "$work/consumer" >"$work/build.log" 2>&1 ||
  { tail -50 "$work/build.log" >&2; fail "consumer build"; }
# The compile saw the prefix's headers, never the source tree's.
repo=$(cd "$here/../.." && pwd)
if grep -qF -e "-I$repo " -e "-isystem $repo " "$work/consumer/compile_commands.json"; then
  fail "expected the consumer to compile against the prefix only, got $repo on its include path"
fi

printf '%s\n' '[PAD]' '[UNK]' '[CLS]' '[SEP]' '[MASK]' the film was not bad at all \
  '!' good '##ness' >"$work/vocab.txt"
say "running the consumer"
"$work/consumer/consumer" "$work/vocab.txt" "$work/adapter" | tee "$work/run.txt" ||
  fail "consumer exited with an error"
expect() { grep -qE "$1" "$work/run.txt" || fail "expected a line matching '$1' in the consumer's output"; }
expect '^tokens: \[CLS\] the film was not bad at all ! \[SEP\]$'
expect '^trainable params: [0-9,]+ \|\| all params: [0-9,]+ \|\| trainable%: '
expect '^logits shape: \[1, 2\]$'
expect '^lora at init equals the base: yes$'
for f in adapter_config.json adapter_model.safetensors; do
  [ -s "$work/adapter/$f" ] || fail "expected $work/adapter/$f from save_adapter, got nothing"
done
if [ -n "$python" ]; then
  say "configuring the consumer with -DPEFTCPP_PYTHON (the override)"
  "$cmake" -S "$here/consumer" -B "$work/consumer_python" "${generator[@]}" \
    -DCMAKE_PREFIX_PATH="$prefix" -DPEFTCPP_PYTHON="$python" \
    >"$work/configure_python.log" 2>&1 ||
    { cat "$work/configure_python.log" >&2; fail "consumer configure with -DPEFTCPP_PYTHON"; }
  say "configuring the consumer with a Python that has no torch (must fail)"
  if "$cmake" -S "$here/consumer" -B "$work/consumer_no_torch" "${generator[@]}" \
      -DCMAKE_PREFIX_PATH="$prefix" -DPEFTCPP_PYTHON=/bin/false \
      >"$work/configure_no_torch.log" 2>&1; then
    fail "expected find_package(peftcpp) to fail with -DPEFTCPP_PYTHON=/bin/false, got success"
  fi
  grep -q "expected torch importable from PEFTCPP_PYTHON=/bin/false" "$work/configure_no_torch.log" ||
    { cat "$work/configure_no_torch.log" >&2; fail "expected peftcpp's message for a Python without torch"; }
fi
say "passed in $(( $(date +%s) - start ))s"
