"""What a LoRA adapter costs at inference: forward latency of all-MiniLM-L6-v2
with an unmerged LoRA (r=8, alpha=16, query/value) and with the same adapter
merged, against the model without one; peftcpp (benchmarks/
bench_lora_overhead.cpp) and HF peft on the same machine, the same torch (the
venv's), the same thread count, the same ids and the same adapter weights.

Setup: a fixed random batch (--batch x --length token ids from the
vocabulary, [CLS] first, [SEP] last, full attention mask, seed 0) and a LoRA
adapter made with peft's get_peft_model, lora_B drawn at random (seed 0) so
that the adapter changes the output; both are written to a temporary folder,
and the C++ program reads the same ids and loads the same adapter with
PeftModel::load_adapter. Before anything is timed, each configuration's
last_hidden_state from C++ is compared with peft's.

Configurations, each its own model copy (nothing is merged or unmerged
between timings), under no_grad / NoGradGuard in eval mode:
  base      the plain BertModel
  disabled  the peft model with adapters disabled (peft: disable_adapter())
  unmerged  the adapter active: y = W x + b + (alpha / r) B A x
  merged    merge_adapter() once: W' = W + (alpha / r) B A

Timed: one forward of the batch (model(input_ids, attention_mask)). A round
times each configuration once, in an order rotated by the round; the stacks
alternate in blocks (C++ --rounds, then Python --rounds, --blocks times) so
that the machine's background load hits both alike. Reported: the median
over all rounds per configuration, ratios of medians, the median of the
per-round ratios, and the page faults per forward (the fresh memory glibc's
malloc takes from the kernel for big tensors; it moves with the allocator's
state and can outweigh the adapter's own cost, see docs/benchmarks.md). To
keep freed memory in the process and so take the allocator out of the
comparison, run both stacks with
  GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296

  python benchmarks/bench_lora_overhead.py [--threads 2] [--rounds 4] [--blocks 6]
      [--bin build/bin/bench_lora_overhead]
Prints a Markdown table; docs/benchmarks.md records a run.
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(REPO, "scripts"))
from find_minilm import minilm_dir  # noqa: E402

CONFIGS = ["base", "disabled", "unmerged", "merged"]


def make_inputs(vocab_size, cls_id, sep_id, batch, length):
    import torch
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, vocab_size, (batch, length), generator=g, dtype=torch.int64)
    ids[:, 0] = cls_id
    ids[:, -1] = sep_id
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def make_models(model_dir, adapter_dir, r, alpha):
    """The plain model, the peft model (adapter saved to adapter_dir) and a
    second peft model over another copy of the base with the adapter merged."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import BertModel

    base = BertModel.from_pretrained(model_dir).eval()
    config = LoraConfig(r=r, lora_alpha=alpha, target_modules=["query", "value"],
                        task_type="FEATURE_EXTRACTION")
    unmerged = get_peft_model(BertModel.from_pretrained(model_dir), config)
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in unmerged.named_parameters():
            if ".lora_B." in name:
                p.normal_(0.0, 0.02)
    unmerged.save_pretrained(adapter_dir)
    unmerged.eval()
    merged = PeftModel.from_pretrained(BertModel.from_pretrained(model_dir), adapter_dir).eval()
    merged.merge_adapter()
    return base, unmerged, merged


def python_forwards(base, unmerged, merged, inputs):
    def run_base():
        return base(**inputs).last_hidden_state

    def run_disabled():
        with unmerged.disable_adapter():
            return unmerged(**inputs).last_hidden_state

    def run_unmerged():
        return unmerged(**inputs).last_hidden_state

    def run_merged():
        return merged(**inputs).last_hidden_state

    return [run_base, run_disabled, run_unmerged, run_merged]


def minor_faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def python_rounds(forwards, rounds, times, faults):
    """Times `rounds` rounds in the C++ program's rotated order; appends ms
    and the page faults of each forward."""
    import torch
    with torch.no_grad():
        for f in forwards:  # warm-up after the C++ block
            f()
        for r in range(rounds):
            for k in range(len(CONFIGS)):
                c = (k + r) % len(CONFIGS)
                f0 = minor_faults()
                t0 = time.perf_counter()
                forwards[c]()
                times[CONFIGS[c]].append((time.perf_counter() - t0) * 1e3)
                faults[CONFIGS[c]].append(minor_faults() - f0)


def cpp_rounds(cmd, rounds, times, faults, outputs=None):
    full = cmd + ["--rounds", str(rounds)] + (["--outputs", outputs] if outputs else [])
    p = subprocess.run(full, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"[bench_lora_overhead] expected the C++ program to succeed, got exit "
                 f"{p.returncode}:\n{p.stderr}")
    result = json.loads(p.stdout.strip().splitlines()[-1])
    for c in CONFIGS:
        times[c].extend(result["ms"][c])
        faults[c].extend(result["minor_faults"][c])
    return result


def check_outputs(cpp_path, forwards):
    """Each configuration's C++ last_hidden_state against peft's; the adapter
    must change the output (else the timing would not mean much)."""
    import torch
    from safetensors.torch import load_file
    cpp = load_file(cpp_path)
    diffs = {}
    with torch.no_grad():
        py = {c: f() for c, f in zip(CONFIGS, forwards)}
    for c in CONFIGS:
        diffs[c] = (cpp[c] - py[c]).abs().max().item()
        if diffs[c] > 1e-3:
            sys.exit(f"[bench_lora_overhead] expected C++ and peft outputs to agree for "
                     f"'{c}', got max |diff| {diffs[c]:.2e}")
    effect = (py["unmerged"] - py["base"]).abs().max().item()
    if effect < 1e-3:
        sys.exit(f"[bench_lora_overhead] expected the adapter to change the output, got "
                 f"max |unmerged - base| {effect:.2e}")
    return diffs, effect


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=4, help="timed rounds per block and stack")
    ap.add_argument("--blocks", type=int, default=6, help="C++/Python alternations")
    ap.add_argument("--r", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16)
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "bin", "bench_lora_overhead"))
    args = ap.parse_args()
    if not os.path.isfile(args.bin):
        sys.exit(f"[bench_lora_overhead] expected the C++ program at {args.bin}, got no such "
                 f"file (hint: scripts/setup.sh bench_lora_overhead)")

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import peft
    import torch
    import transformers
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoTokenizer
    torch.set_num_threads(args.threads)

    model_dir = minilm_dir()
    cfg = AutoConfig.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    inputs = make_inputs(cfg.vocab_size, tok.cls_token_id, tok.sep_token_id,
                         args.batch, args.length)

    py_times = {c: [] for c in CONFIGS}
    cpp_times = {c: [] for c in CONFIGS}
    py_faults = {c: [] for c in CONFIGS}
    cpp_faults = {c: [] for c in CONFIGS}
    with tempfile.TemporaryDirectory() as tmp:
        ids_path = os.path.join(tmp, "inputs.safetensors")
        adapter_dir = os.path.join(tmp, "adapter")
        out_path = os.path.join(tmp, "cpp_outputs.safetensors")
        save_file(inputs, ids_path)
        base, unmerged, merged = make_models(model_dir, adapter_dir, args.r, args.alpha)
        forwards = python_forwards(base, unmerged, merged, inputs)
        cmd = [args.bin, "--model", model_dir, "--inputs", ids_path, "--adapter", adapter_dir,
               "--threads", str(args.threads), "--warmup", "1"]
        loads = [os.getloadavg()[0]]
        for b in range(args.blocks):
            cpp_rounds(cmd, args.rounds, cpp_times, cpp_faults, out_path if b == 0 else None)
            if b == 0:
                diffs, effect = check_outputs(out_path, forwards)
            python_rounds(forwards, args.rounds, py_times, py_faults)
            loads.append(os.getloadavg()[0])

    med = {"peftcpp": {c: statistics.median(cpp_times[c]) for c in CONFIGS},
           "HF peft": {c: statistics.median(py_times[c]) for c in CONFIGS}}
    raw = {"peftcpp": cpp_times, "HF peft": py_times}

    def paired(stack, c):
        """Median over rounds of (config / base) within the same round."""
        t = raw[stack]
        return statistics.median(x / y for x, y in zip(t[c], t["base"]))

    n = args.rounds * args.blocks
    print(f"all-MiniLM-L6-v2, batch {args.batch} x {args.length} tokens, LoRA r={args.r} "
          f"alpha={args.alpha:g} on query/value; {os.cpu_count()} cores "
          f"({platform.processor() or platform.machine()}), {args.threads} threads; "
          f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"peft {peft.__version__}; median of {n} rounds per configuration "
          f"({args.blocks} alternating blocks of {args.rounds}); 1-minute load average "
          f"{min(loads):.1f} to {max(loads):.1f} (this run adds about {args.threads})")
    print("C++ vs peft outputs, max |diff|: " +
          ", ".join(f"{c} {diffs[c]:.1e}" for c in CONFIGS) +
          f"; the adapter moves the output by up to {effect:.2f}\n")
    print("| stack | base ms | adapter disabled ms | LoRA unmerged ms | LoRA merged ms "
          "| disabled / base | unmerged / base | merged / base |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for stack, m in med.items():
        print(f"| {stack} | {m['base']:.1f} | {m['disabled']:.1f} | {m['unmerged']:.1f} | "
              f"{m['merged']:.1f} | {m['disabled'] / m['base']:.3f} | "
              f"{m['unmerged'] / m['base']:.3f} | {m['merged'] / m['base']:.3f} |")
    cpp, py = med["peftcpp"], med["HF peft"]
    print(f"| peft / peftcpp (time) | {py['base'] / cpp['base']:.2f} | "
          f"{py['disabled'] / cpp['disabled']:.2f} | {py['unmerged'] / cpp['unmerged']:.2f} | "
          f"{py['merged'] / cpp['merged']:.2f} | | | |")
    print()
    print("Paired ratios (median over rounds of config / base in the same round):")
    for stack in raw:
        print(f"  {stack}: " + ", ".join(f"{c} {paired(stack, c):.3f}"
                                         for c in CONFIGS[1:]))
    over_cpp = cpp["unmerged"] / cpp["base"] - 1
    over_py = py["unmerged"] / py["base"] - 1
    print("Page faults per forward, median (4 KiB pages the allocator took fresh from the "
          "kernel):")
    for stack, f in (("peftcpp", cpp_faults), ("HF peft", py_faults)):
        print(f"  {stack}: " + ", ".join(f"{c} {statistics.median(f[c]):.0f}" for c in CONFIGS))
    print(f"\nUnmerged overhead: peftcpp {over_cpp * 100:+.1f}%, HF peft {over_py * 100:+.1f}% "
          f"({cpp['unmerged'] - cpp['base']:+.1f} ms vs {py['unmerged'] - py['base']:+.1f} ms)")
    print("raw ms: " + json.dumps({s: {c: [round(x, 1) for x in raw[s][c]] for c in CONFIGS}
                                   for s in raw}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
