"""Prefill and generation speed of SmolLM2-135M-Instruct (the real Q4_1 GGUF,
dequantized to float32, CPU): peftcpp (benchmarks/bench_generate.cpp,
models::load_decoder + models::generate) against transformers
(AutoModelForCausalLM.from_pretrained(gguf_file=...) + generate) on the same
machine, the same torch (the venv's), the same thread count, the same ids.

Workloads (ids made once here with transformers' tokenizer from the GGUF file
and written to a safetensors file both stacks read):
  prefill.T     one forward over T tokens of SST-2 dev text (the sentences
                joined, cut at T), batch 1, empty KV cache, logits of the
                last position only: what generate's prefill does
                (transformers: model(ids, use_cache=True, logits_to_keep=1)
                under inference_mode)
  generate.bB   greedy generation of --max-new-tokens tokens with the KV cache
                for the first B SST-2 dev sentences, left-padded (pad = eos);
                min_new_tokens = max_new_tokens so every row generates the same
                count (eos is suppressed, as transformers' MinNewTokens
                processor does). The time covers the whole generate call,
                prefill of the short prompts included.
tokens/s: prefill T / time; generate B x new tokens / time.

Each run is a fresh process per stack (load, --warmup untimed rounds, then
--rounds timed rounds, each workload once per round in an order rotated by
the round); the stacks alternate run by run (which goes first alternates
too). Per stack and workload: the median of each run's median, and the range
of those; ratios are peftcpp's tokens/s over transformers' (> 1: peftcpp
faster). The greedy tokens of the first run of each stack are compared
position by position, so both stacks did the same work. Peak RSS is each
process's ru_maxrss (model load included). The 1-minute load average is read
before every process.

  $PEFTCPP_PYTHON benchmarks/bench_generate.py [--threads 2] [--runs 3]
      [--rounds 3] [--bin build/bin/bench_generate] [--markdown out.md]
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
from find_smollm2 import smollm2_gguf  # noqa: E402

SST2_DEV = "/work/shared/data/glue/SST-2/dev.tsv"


def sst2_sentences(path):
    with open(path, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f]
    return [r[0].strip() for r in rows[1:] if r and r[0].strip()]


def make_inputs(tok, sentences, prefill_lengths, batches):
    """The workloads as a dict of int64 tensors (see the module comment)."""
    import torch
    out = {}
    need = max(prefill_lengths)
    ids, i = [], 0
    while len(ids) < need:
        ids += tok(sentences[i] + " ", add_special_tokens=False)["input_ids"]
        i += 1
    for t in prefill_lengths:
        out[f"prefill.{t}.input_ids"] = torch.tensor([ids[:t]], dtype=torch.int64)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    for b in batches:
        rows = [tok(s, add_special_tokens=False)["input_ids"] for s in sentences[:b]]
        width = max(len(r) for r in rows)
        input_ids = torch.full((b, width), pad, dtype=torch.int64)
        mask = torch.zeros((b, width), dtype=torch.int64)
        for r, row in enumerate(rows):
            input_ids[r, width - len(row):] = torch.tensor(row)
            mask[r, width - len(row):] = 1
        out[f"generate.b{b}.input_ids"] = input_ids
        out[f"generate.b{b}.attention_mask"] = mask
    return out


def workload_names(inputs):
    return sorted(k[:-len(".input_ids")] for k in inputs if k.endswith(".input_ids"))


# --- the transformers side: one fresh process (--worker) ---------------------

def reference_worker(args):
    """Mirrors bench_generate.cpp with transformers; prints the same JSON."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(args.threads)
    inputs = load_file(args.inputs)
    names = workload_names(inputs)

    device = torch.device(args.device)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16,
             "float16": torch.float16}[args.dtype]
    t0 = time.perf_counter()
    if os.path.isdir(args.model):
        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype)
    else:
        d, f = os.path.split(args.model)
        model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=dtype)
    model = model.to(device).eval()
    inputs = {k: v.to(device) for k, v in inputs.items()}
    load_s = time.perf_counter() - t0
    with open("/proc/self/statm") as f:
        loaded_rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def run(name):
        ids = inputs[name + ".input_ids"]
        if name.startswith("generate."):
            # generate() runs under no_grad itself.
            return model.generate(
                input_ids=ids, attention_mask=inputs[name + ".attention_mask"],
                max_new_tokens=args.max_new_tokens, min_new_tokens=args.max_new_tokens,
                do_sample=False, eos_token_id=args.stop_token, pad_token_id=args.pad_token,
                use_cache=True)
        with torch.inference_mode():
            return model(input_ids=ids, use_cache=True, logits_to_keep=1).logits

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    outputs = {}
    for r in range(args.warmup):
        for name in names:
            out = run(name)
            if r == 0 and name.startswith("generate."):
                outputs[name + ".sequences"] = out.cpu().contiguous()
    if args.outputs:
        save_file(outputs, args.outputs)
    ms = {name: [] for name in names}
    for r in range(args.rounds):
        for k in range(len(names)):
            name = names[(k + r) % len(names)]
            sync()
            t0 = time.perf_counter()
            run(name)
            sync()
            ms[name].append((time.perf_counter() - t0) * 1e3)
    print(json.dumps({
        "stack": "transformers", "threads": torch.get_num_threads(), "load_s": load_s,
        "ms": ms, "median_ms": {n: statistics.median(v) for n, v in ms.items()},
        "rss_after_load_mib": loaded_rss,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    return 0


# --- the driver ---------------------------------------------------------------

def run_process(cmd, env, label):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"[bench_generate] expected {label} to succeed, got exit {p.returncode}:\n"
                 f"{p.stderr[-4000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def compare_tokens(cpp_path, py_path, inputs):
    """Per generate workload: generated tokens equal at the same position,
    rows identical, and each row's first differing step."""
    from safetensors.torch import load_file
    cpp, py = load_file(cpp_path), load_file(py_path)
    report = {}
    for key in sorted(cpp):
        name = key[:-len(".sequences")]
        prompt = inputs[name + ".input_ids"].shape[1]
        a, b = cpp[key][:, prompt:], py[key][:, prompt:]
        if a.shape != b.shape:
            sys.exit(f"[bench_generate] expected the same number of generated tokens for "
                     f"{name}, got {tuple(a.shape)} (peftcpp) and {tuple(b.shape)} "
                     f"(transformers)")
        eq = a.eq(b)
        first = [int(row.logical_not().nonzero()[0]) if not row.all() else None for row in eq]
        report[name] = {"equal": int(eq.sum()), "total": eq.numel(),
                        "rows_equal": int(eq.all(1).sum()), "rows": eq.shape[0],
                        "first_diff": first}
    return report


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3, help="fresh processes per stack")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds per process")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--prefill-lengths", type=int, nargs="+", default=[128, 512])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "bin", "bench_generate"))
    ap.add_argument("--markdown", help="also write the report here")
    ap.add_argument("--save-inputs", metavar="PATH",
                    help="write the workloads' ids here and exit (to run the C++ program alone)")
    # Worker mode (the transformers process the driver starts).
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (both stacks)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--model", help="GGUF file or model folder (default: the SmolLM2 GGUF)")
    ap.add_argument("--inputs-from", metavar="PATH",
                    help="token ids written by --save-inputs (no tokenizer needed; give "
                         "--stop-token and --pad-token)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--inputs", help=argparse.SUPPRESS)
    ap.add_argument("--outputs", help=argparse.SUPPRESS)
    ap.add_argument("--stop-token", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--pad-token", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return reference_worker(args)
    if not os.path.isfile(args.bin):
        sys.exit(f"[bench_generate] expected the C++ program at {args.bin}, got no such file "
                 f"(hint: scripts/setup.sh bench_generate)")

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    import transformers
    from safetensors.torch import save_file
    from transformers import AutoTokenizer

    gguf = args.model or smollm2_gguf()
    if args.inputs_from:
        from safetensors.torch import load_file
        inputs = load_file(args.inputs_from)
        eos, pad = args.stop_token, args.pad_token
    else:
        tok = AutoTokenizer.from_pretrained(os.path.dirname(gguf),
                                            gguf_file=os.path.basename(gguf))
        eos = tok.eos_token_id
        pad = tok.pad_token_id if tok.pad_token_id is not None else eos
        inputs = make_inputs(tok, sst2_sentences(SST2_DEV), args.prefill_lengths, args.batches)
    names = workload_names(inputs)
    if args.save_inputs:
        save_file(inputs, args.save_inputs)
        print(f"{args.save_inputs}: {', '.join(names)}; --stop-token {eos} --pad-token {pad}")
        return 0

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
               MKL_NUM_THREADS=str(args.threads), TRANSFORMERS_VERBOSITY="error",
               TQDM_DISABLE="1")
    results = {"peftcpp": [], "transformers": []}
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        ids_path = os.path.join(tmp, "inputs.safetensors")
        save_file(inputs, ids_path)
        common = ["--model", gguf, "--inputs", ids_path, "--threads", str(args.threads),
                  "--rounds", str(args.rounds), "--warmup", str(args.warmup),
                  "--max-new-tokens", str(args.max_new_tokens),
                  "--stop-token", str(eos), "--pad-token", str(pad),
                  "--device", args.device, "--dtype", args.dtype]
        out = {"peftcpp": os.path.join(tmp, "cpp.safetensors"),
               "transformers": os.path.join(tmp, "py.safetensors")}
        cmds = {"peftcpp": [args.bin] + common,
                "transformers": [sys.executable, os.path.abspath(__file__), "--worker"] + common}
        for run in range(args.runs):
            order = ["peftcpp", "transformers"] if run % 2 == 0 else ["transformers", "peftcpp"]
            for stack in order:
                extra = ["--outputs", out[stack]] if run == 0 else []
                loads.append(os.getloadavg())
                r = run_process(cmds[stack] + extra, env, stack)
                r["load_avg"] = loads[-1][0]
                results[stack].append(r)
                print(f"[bench_generate] run {run + 1} {stack}: load {loads[-1][0]:.2f}, "
                      + ", ".join(f"{n} {r['median_ms'][n]:.0f} ms" for n in names),
                      file=sys.stderr, flush=True)
        loads.append(os.getloadavg())
        match = compare_tokens(out["peftcpp"], out["transformers"], inputs)

    def tokens(name):
        ids = inputs[name + ".input_ids"]
        if name.startswith("prefill."):
            return ids.shape[1]
        return ids.shape[0] * args.max_new_tokens

    def label(name):
        ids = inputs[name + ".input_ids"]
        if name.startswith("prefill."):
            return f"prefill, {ids.shape[1]} tokens, batch 1"
        lengths = inputs[name + ".attention_mask"].sum(1).tolist()
        span = (f"prompt {lengths[0]} tokens" if len(lengths) == 1 else
                f"prompts {min(lengths)}-{max(lengths)} tokens, left-padded")
        return f"generate {args.max_new_tokens} new, batch {ids.shape[0]} ({span})"

    def tps(stack, name):
        """Per-run tokens/s (from each run's median ms)."""
        return [tokens(name) / (r["median_ms"][name] / 1e3) for r in results[stack]]

    lines = []
    one_min = [x[0] for x in loads]
    model_desc = ("SmolLM2-135M-Instruct (Q4_1 GGUF dequantized to float32)" if not args.model
                  else f"{args.model} ({args.dtype})")
    device_desc = ("CPU" if args.device == "cpu"
                   else f"{torch.cuda.get_device_name(0)} ({args.device}, {args.dtype})")
    lines.append(
        f"{model_desc}, {device_desc}, {args.threads} "
        f"thread{'s' if args.threads > 1 else ''}; {os.cpu_count()} cores ({platform.processor() or platform.machine()}); "
        f"torch {torch.__version__}, transformers {transformers.__version__}; {args.runs} "
        f"fresh processes per stack, alternating, each {args.warmup} warm-up + "
        f"{args.rounds} timed rounds; cells: median over processes of each process's median "
        f"(min-max of those); 1-minute load average {min(one_min):.2f} to "
        f"{max(one_min):.2f} (before each process; a run adds about {args.threads}).")
    lines.append("")
    lines.append("| workload | peftcpp tokens/s | transformers tokens/s | peftcpp / transformers |")
    lines.append("|---|---:|---:|---:|")
    for name in names:
        c, p = tps("peftcpp", name), tps("transformers", name)
        lines.append(f"| {label(name)} | {statistics.median(c):.1f} ({min(c):.1f}-{max(c):.1f}) "
                     f"| {statistics.median(p):.1f} ({min(p):.1f}-{max(p):.1f}) | "
                     f"**{statistics.median(c) / statistics.median(p):.2f}** |")
    lines.append("")
    lines.append("| process | peftcpp | transformers | peftcpp / transformers |")
    lines.append("|---|---:|---:|---:|")
    for key, what, fmt in (("peak_rss_mib", "peak RSS MiB", "{:.0f}"),
                           ("rss_after_load_mib", "RSS after model load MiB", "{:.0f}"),
                           ("load_s", "model load s", "{:.2f}")):
        c = statistics.median(r[key] for r in results["peftcpp"])
        p = statistics.median(r[key] for r in results["transformers"])
        lines.append(f"| {what} | {fmt.format(c)} | {fmt.format(p)} | {c / p:.2f} |")
    lines.append("")
    lines.append("Greedy tokens, peftcpp vs transformers (first run): " + "; ".join(
        f"{name}: {m['equal']}/{m['total']} equal, {m['rows_equal']}/{m['rows']} rows identical"
        + ("" if m["rows_equal"] == m["rows"] else
           " (first differing step per row: " +
           ", ".join("-" if x is None else str(x) for x in m["first_diff"]) + ")")
        for name, m in match.items()))
    lines.append("")
    lines.append("raw ms: " + json.dumps(
        {s: [{n: [round(x, 1) for x in r["ms"][n]] for n in names} for r in rs]
         for s, rs in results.items()}))
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
