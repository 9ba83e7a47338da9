#!/usr/bin/env bash
# A second Python venv holding AdapterHub's `adapters` package, the reference
# for the bottleneck adapters (tests/fixtures/bottleneck_reference.py).
# `adapters` pins transformers ~= 4.57, the main venv has transformers 5, so
# it cannot live there. torch is not installed again: a .pth file appends the
# main venv's site-packages at the END of sys.path, so this venv's own
# transformers / tokenizers / huggingface_hub win and torch (with its CUDA
# libraries) comes from the main venv.
#
# Idempotent: the venv is keyed by the pins below plus the main venv's path,
# made once and reused. Progress goes to stderr; the last line on stdout is the
# venv's python.
#
#   py=$(scripts/setup_adapters_venv.sh | tail -n1)
#   "$py" tests/fixtures/bottleneck_reference.py --out DIR
#
# Environment:
#   PEFTCPP_CACHE  where the venvs live (default ~/.cache/peftcpp)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${PEFTCPP_CACHE:-$HOME/.cache/peftcpp}
say() { printf '[setup-adapters] %s\n' "$*" >&2; }

# Pinned: adapters 1.3.0 (latest on PyPI) requires transformers~=4.57.6; the
# rest is what pip resolves for those two, minus torch (taken from the main
# venv). Installed with --no-deps, so nothing unlisted (torch) is pulled in.
pins='adapters==1.3.0
transformers==4.57.6
huggingface_hub==0.36.2
tokenizers==0.22.2
safetensors==0.8.0
numpy==2.4.6
packaging==26.3
PyYAML==6.0.3
regex==2026.11.15
requests==2.34.2
tqdm==4.70.1
filelock==4.2.11
fsspec==2026.9.0
hf-xet==1.8.0
typing_extensions==4.16.0
certifi==2026.10.18
charset-normalizer==3.5.2
idna==3.20
urllib3==2.8.0'

# --- The main venv (torch) -------------------------------------------------------
source "$repo/scripts/env.sh"
[ -x "$PEFTCPP_PYTHON" ] ||
  { say "expected the main venv's python at $PEFTCPP_PYTHON, got nothing (hint: run scripts/setup.sh first)"; exit 1; }
main_site=$("$PEFTCPP_PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
base_python=$("$PEFTCPP_PYTHON" -c 'import sys; print(sys._base_executable)')

# Keyed by the pins and by the main venv it borrows torch from: a change of
# either makes a new venv.
key=$(printf '%s\n%s\n' "$pins" "$main_site" | sha256sum | cut -c1-16)
venv="$cache/venv-adapters-$key"
if [ ! -f "$venv/.complete" ]; then
  say "creating $venv (adapters + transformers 4.57, torch from the main venv)"
  rm -rf "$venv"
  mkdir -p "$cache"
  # The main venv's interpreter: same Python ABI as its torch wheel.
  "$base_python" -m venv "$venv"
  printf '%s\n' "$pins" >"$venv/requirements.txt"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps -r "$venv/requirements.txt"
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  # A plain path line in a .pth is appended after this venv's site-packages.
  printf '%s\n' "$main_site" >"$site/zz_peftcpp_main_venv.pth"
  HF_HUB_OFFLINE=1 "$venv/bin/python" - <<'EOF' >&2 ||
import adapters, torch, transformers
assert transformers.__version__ == "4.57.6", transformers.__version__
assert "venv-adapters-" in transformers.__file__, transformers.__file__
print(f"[setup-adapters] adapters {adapters.__version__}, transformers {transformers.__version__}, "
      f"torch {torch.__version__}")
EOF
    { say "the new venv does not import adapters/transformers/torch (output above)"; exit 1; }
  touch "$venv/.complete"
fi
echo "$venv/bin/python"
