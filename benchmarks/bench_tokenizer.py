"""Tokenization throughput on the 872 SST-2 dev sentences: peftcpp's
Tokenizer (C++, benchmarks/bench_tokenizer.cpp) against HF `tokenizers`
(Rust, from Python) and transformers' tokenizer call, on this machine, same
tokenizer (all-MiniLM-L6-v2), same options ([CLS] ... [SEP], no padding).
With --bpe DIR (default: <build>/fixtures/bpe_tokenizer/gpt2 when the
fixtures exist) the same rows follow for that GPT-2 style byte-level BPE
tokenizer (tests/fixtures/make_bpe_tokenizer.py), without the transformers
row.

Timed: the encode calls only (loading and file reading excluded); median of
--repeats runs after one warm-up. "batch" uses all cores on both sides
(encode_batch: std::threads in C++, rayon in Rust); "sequential" encodes
one sentence after another on one core. The C++ ids are checked against
HF's through a checksum before anything is reported.

  python benchmarks/bench_tokenizer.py [--bin build/bin/bench_tokenizer] [--repeats 20]
                                       [--bpe DIR]
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(REPO, "scripts"))
from find_minilm import minilm_dir  # noqa: E402
from glue_tsv import sst2_dev_sentences  # noqa: E402



def median_time(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def checksum(all_ids):
    return sum(i * (k + 1) for ids in all_ids for k, i in enumerate(ids))


def bench(bin_path, model, sentences, repeats, with_transformers):
    """Rows (name, seconds) for one tokenizer folder, and its token count."""
    from tokenizers import Tokenizer
    rust = Tokenizer.from_file(os.path.join(model, "tokenizer.json"))
    rust.no_truncation()
    rust.no_padding()

    ids = [e.ids for e in rust.encode_batch(sentences)]
    n_tokens = sum(len(x) for x in ids)
    rows = [
        ("HF tokenizers encode_batch (Rust, all cores)",
         median_time(lambda: rust.encode_batch(sentences), repeats)),
        ("HF tokenizers encode, one by one",
         median_time(lambda: [rust.encode(s) for s in sentences], repeats)),
    ]
    if with_transformers:
        from transformers import AutoTokenizer
        hf = AutoTokenizer.from_pretrained(model)
        rows.append(("transformers tokenizer(list) (Rust underneath)",
                     median_time(lambda: hf(sentences), repeats)))

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        f.write("\n".join(sentences) + "\n")
        path = f.name
    try:
        out = subprocess.run([bin_path, model, path, str(repeats)], check=True,
                             capture_output=True, text=True).stdout
    finally:
        os.unlink(path)
    cpp = json.loads(out.strip().splitlines()[-1])
    if cpp["sentences"] != len(sentences) or cpp["tokens"] != n_tokens or \
            cpp["checksum"] != checksum(ids):
        sys.exit(f"[bench_tokenizer] expected the C++ ids to equal HF's, got {cpp['tokens']} "
                 f"tokens / checksum {cpp['checksum']} vs {n_tokens} / {checksum(ids)}")
    rows += [
        ("peftcpp encode_batch (C++, all cores)", statistics.median(cpp["batch_s"])),
        ("peftcpp encode, one by one", statistics.median(cpp["sequential_s"])),
    ]
    return rows, n_tokens


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "bin", "bench_tokenizer"))
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--bpe", default=os.path.join(REPO, "build", "fixtures", "bpe_tokenizer",
                                                  "gpt2"),
                    help="folder of a byte-level BPE tokenizer.json (skipped when missing)")
    args = ap.parse_args()
    if not os.path.isfile(args.bin):
        sys.exit(f"[bench_tokenizer] expected the C++ program at {args.bin}, got no such "
                 f"file (hint: cmake --build build --target bench_tokenizer)")

    sentences = sst2_dev_sentences()
    runs = [("all-MiniLM-L6-v2 (WordPiece)", minilm_dir(), True)]
    if os.path.isfile(os.path.join(args.bpe, "tokenizer.json")):
        runs.append(("GPT-2 style byte-level BPE", args.bpe, False))
    for title, model, with_transformers in runs:
        rows, n_tokens = bench(args.bin, model, sentences, args.repeats, with_transformers)
        print(f"{title}, SST-2 dev: {len(sentences)} sentences, {n_tokens} tokens "
              f"(identical ids); {os.cpu_count()} cores, "
              f"{platform.processor() or platform.machine()}; median of {args.repeats}\n")
        print("| tokenizer | ms | sentences/s | tokens/s |")
        print("|---|---:|---:|---:|")
        for name, t in rows:
            print(f"| {name} | {t * 1e3:.2f} | {len(sentences) / t:,.0f} | {n_tokens / t:,.0f} |")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
