"""Sentence embeddings of the 872 SST-2 dev sentences with all-MiniLM-L6-v2:
`peftcpp predict` against transformers in Python, on the same machine, the
same torch (the venv's), the same thread count and batch size.

Timed work on both sides: tokenization + forward passes + mean pooling
(model load and file I/O excluded; peftcpp reports its own figure on
stderr). Also reported: the whole command's wall time, start to exit.

Python baselines:
  transformers         batches in file order, padded to each batch's longest
  transformers-sorted  batches sorted by length first (what
                       sentence-transformers' encode() does, and what
                       peftcpp predict does)

  python benchmarks/bench_predict.py [--threads N] [--batch-size 32] [--repeats 5]
Prints a Markdown table; docs/benchmarks.md records a run.
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(REPO, "scripts"))
from find_minilm import minilm_dir  # noqa: E402
from glue_tsv import sst2_dev_sentences  # noqa: E402



def python_rate(sentences, model_dir, threads, batch_size, sort):
    import torch
    from transformers import AutoTokenizer, BertModel
    torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = BertModel.from_pretrained(model_dir).eval()

    def run():
        order = sorted(range(len(sentences)), key=lambda i: -len(sentences[i])) if sort \
            else list(range(len(sentences)))
        out = [None] * len(sentences)
        with torch.inference_mode():
            for s in range(0, len(order), batch_size):
                idx = order[s:s + batch_size]
                enc = tok([sentences[i] for i in idx], padding=True, return_tensors="pt")
                h = model(**enc).last_hidden_state
                m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
                emb = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
                for k, i in enumerate(idx):
                    out[i] = emb[k]
        return out

    run()  # warm-up
    times = []
    for _ in range(ARGS.repeats):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return len(sentences) / statistics.median(times)


def cpp_rate(cli, model_dir, inputs, threads, batch_size):
    rates, walls = [], []
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.safetensors")
        cmd = [cli, "predict", "--model", model_dir, "--input", inputs, "--output", out,
               "--batch-size", str(batch_size), "--threads", str(threads), "--no-hidden-states"]
        subprocess.run(cmd, check=True, capture_output=True)  # warm-up (page cache)
        for _ in range(ARGS.repeats):
            t = time.perf_counter()
            p = subprocess.run(cmd, check=True, capture_output=True, text=True)
            walls.append(time.perf_counter() - t)
            m = re.search(r"\(([\d.]+) inputs/s\)", p.stderr)
            rates.append(float(m.group(1)))
    return statistics.median(rates), statistics.median(walls)


def python_wall(model_dir, inputs, threads, batch_size):
    """The same job as one Python process: start, import, load, embed, save."""
    code = f"""
import json, torch
from transformers import AutoTokenizer, BertModel
from safetensors.torch import save_file
torch.set_num_threads({threads})
tok = AutoTokenizer.from_pretrained({model_dir!r}); model = BertModel.from_pretrained({model_dir!r}).eval()
s = [json.loads(l)["text"] for l in open({inputs!r})]
embs = []
with torch.inference_mode():
    for i in range(0, len(s), {batch_size}):
        enc = tok(s[i:i+{batch_size}], padding=True, return_tensors="pt")
        h = model(**enc).last_hidden_state; m = enc["attention_mask"].unsqueeze(-1).float()
        embs.append((h*m).sum(1)/m.sum(1).clamp(min=1e-9))
save_file({{"sentence_embedding": torch.cat(embs)}}, "/dev/null")
"""
    walls = []
    for _ in range(ARGS.repeats):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
        walls.append(time.perf_counter() - t)
    return statistics.median(walls)


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cli", default=os.path.join(REPO, "build", "bin", "peftcpp"))
    ARGS = ap.parse_args()
    import torch
    import transformers

    sentences = sst2_dev_sentences()
    model_dir = minilm_dir()
    with tempfile.TemporaryDirectory() as tmp:
        inputs = os.path.join(tmp, "sst2_dev.jsonl")
        with open(inputs, "w", encoding="utf-8") as f:
            for s in sentences:
                f.write(json.dumps({"text": s}) + "\n")
        cpp, cpp_wall = cpp_rate(ARGS.cli, model_dir, inputs, ARGS.threads, ARGS.batch_size)
        py = python_rate(sentences, model_dir, ARGS.threads, ARGS.batch_size, sort=False)
        py_sorted = python_rate(sentences, model_dir, ARGS.threads, ARGS.batch_size, sort=True)
        py_wall = python_wall(model_dir, inputs, ARGS.threads, ARGS.batch_size)

    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"torch {torch.__version__}, transformers {transformers.__version__}; "
          f"threads {ARGS.threads}, batch size {ARGS.batch_size}, median of {ARGS.repeats}\n")
    print("| implementation | sentences/s (tokenize + forward) | peftcpp ratio |")
    print("|---|---|---|")
    print(f"| peftcpp predict | {cpp:.1f} | 1.00 |")
    print(f"| transformers (file order) | {py:.1f} | {cpp / py:.2f} |")
    print(f"| transformers (length-sorted) | {py_sorted:.1f} | {cpp / py_sorted:.2f} |")
    print()
    print("| whole command, start to exit | seconds | peftcpp ratio |")
    print("|---|---|---|")
    print(f"| peftcpp predict | {cpp_wall:.2f} | 1.00 |")
    print(f"| python + transformers script | {py_wall:.2f} | {py_wall / cpp_wall:.2f} |")


if __name__ == "__main__":
    main()
