# Sourced by the scripts: PEFTCPP_PYTHON = the venv's python (the venv that
# carries LibTorch), found by the same requirements hash as setup.sh uses.
_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_cache=${PEFTCPP_CACHE:-$HOME/.cache/peftcpp}
PEFTCPP_PYTHON="$_cache/venv-$(sha256sum "$_repo/scripts/requirements.txt" | cut -c1-16)/bin/python"
export PEFTCPP_PYTHON
unset _repo _cache
