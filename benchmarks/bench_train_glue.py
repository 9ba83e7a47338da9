"""Training side by side: the SST-2 LoRA recipe of examples/configs/sst2_lora.yaml
(all-MiniLM-L6-v2, LoRA r 8 / alpha 16 / dropout 0.1 on query and value, batch
32, lr 5e-4, linear schedule with 6 % warmup, weight decay 0.01, clipping at
1.0, max length 128, dynamic padding, fp32, CPU) trained by `peftcpp train`
and by transformers' Trainer + peft (benchmarks/hf_train_reference.py), on
the first --train-examples rows of GLUE SST-2 train, evaluated (accuracy) on
the full dev set (872) after every epoch.

Modes:
  equal  both stacks the same settings, group_by_length off: the same
         padded work per example, so examples/s and padded tokens/s ratios
         both compare the stacks' speed per unit of work.
  best   each stack its own best settings: group_by_length on for both
         (transformers' LengthGroupedSampler; peftcpp plans batches the same
         way), and time to --target-accuracy.
Runs alternate (peftcpp, HF, peftcpp, HF, ... one pair per seed) so that the
machine's drift hits both; each run is a fresh child process.

Measured per run:
  dev accuracy   best over the epochs and after the last epoch
  train ex/s     training examples / training seconds: batch preparation,
                 forward, backward, clipping and optimizer steps; evaluation,
                 checkpoints, start-up and tokenization left out. peftcpp:
                 summary.json train_examples_per_second; HF: the child's
                 callback clock (on_epoch_begin / on_step_end, chained).
  padded tok/s   train_padded_tokens (sum of rows x padded length over the
                 training batches) / training seconds; HF counts
                 input_ids.numel() in Trainer.training_step.
  peak RSS       ru_maxrss of the child, from os.wait4 on its pid. Linux
                 folds the RSS of the forked image (this script) into it, so
                 this script imports no torch: its own RSS (in the results)
                 stays far below any child's peak.
  time to target the first evaluation with accuracy >= --target-accuracy, as
                 (a) training seconds up to that evaluation (peftcpp: from
                 metrics.jsonl, logging_steps is set to one epoch so each
                 epoch's log record covers the epoch: seconds =
                 examples / examples_per_second, summed; HF: the callback
                 clock at the evaluation) and (b) wall seconds from launching
                 the child until its metrics.jsonl shows that evaluation
                 (polled every 0.2 s; holds start-up, loading, tokenization,
                 earlier evaluations and, for peftcpp, its checkpoints).
Differences left: peftcpp always writes a checkpoint (adapter, optimizer state) at
each evaluation (outside its train time, inside its wall time); HF uses
save_strategy "no". Trainer keys that hf_train_reference.py does not carry
over are printed. Shuffles differ (peftcpp's mt19937 plan vs torch.randperm),
so the padded tokens per example differ a little even in equal mode.

Command used for docs/benchmarks.md (after scripts/setup.sh; the venv's python):
  source scripts/env.sh
  $PEFTCPP_PYTHON benchmarks/bench_train_glue.py --mode equal --seeds 1 2 3 \
      --train-examples 4000 --epochs 3 --threads 2 --out runs/bench-train
  $PEFTCPP_PYTHON benchmarks/bench_train_glue.py --mode best --seeds 1 2 3 \
      --train-examples 4000 --epochs 3 --threads 2 --target-accuracy 0.85 \
      --out runs/bench-train
Other run-config overrides for both stacks: --set trainer.learning_rate 1e-3.
Writes OUT/results-MODE.json and OUT/table-MODE.md, prints the table.
Every cell: the mean over seeds with (min-max); ratios are of the means.
"""

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from importlib.metadata import version

import yaml

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(REPO, "scripts"))
sys.path.insert(0, os.path.join(REPO, "benchmarks"))
from find_minilm import minilm_dir  # noqa: E402
from glue_tsv import read_tsv  # noqa: E402
from hf_train_reference import not_mirrored  # noqa: E402

TAG = "[bench_train_glue]"
STACKS = ["peftcpp", "HF"]


def parse_value(text):
    """A YAML value as the peftcpp CLI reads it; numbers PyYAML leaves as
    strings (1e-3) become numbers."""
    v = yaml.safe_load(text)
    if isinstance(v, str):
        for cast in (int, float):
            try:
                return cast(v)
            except ValueError:
                pass
    return v


def run_child(cmd, run_dir, label, t_start_all):
    """Runs cmd as a fresh process, logging to run_dir/child.log; polls
    run_dir/metrics.jsonl for evaluation records and stamps each with the
    wall seconds since launch. Returns (eval records, peak RSS bytes, wall s)."""
    evals, seen = [], 0
    metrics = os.path.join(run_dir, "metrics.jsonl")
    with open(os.path.join(run_dir, "child.log"), "w") as logf:
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, cwd=REPO)
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            done = pid != 0
            if os.path.exists(metrics):
                with open(metrics) as f:
                    lines = f.read().split("\n")[:-1]  # complete lines only
                for line in lines[seen:]:
                    rec = json.loads(line)
                    if "eval_accuracy" in rec:
                        rec["wall_seconds"] = time.monotonic() - t0
                        evals.append(rec)
                        print(f"{TAG}   {label}: epoch {rec['epoch']:.2f} eval_accuracy "
                              f"{rec['eval_accuracy']:.4f} at {rec['wall_seconds']:.1f} s "
                              f"(elapsed {time.monotonic() - t_start_all:.0f} s)", flush=True)
                seen = len(lines)
            if done:
                break
            time.sleep(0.2)
        wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        with open(os.path.join(run_dir, "child.log")) as f:
            tail = f.read()[-3000:]
        sys.exit(f"{TAG} expected {label} to succeed, got exit {p.returncode}:\n{tail}")
    return evals, usage.ru_maxrss * 1024, wall


def peftcpp_train_seconds(run_dir, n_examples):
    """Training seconds up to each epoch's end, from the per-epoch log
    records of metrics.jsonl (logging_steps = one epoch)."""
    out, total = [], 0.0
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            rec = json.loads(line)
            if "examples_per_second" in rec and rec["examples_per_second"] > 0:
                total += n_examples / rec["examples_per_second"]
                out.append((rec["step"], total))
    return out


def one_run(stack, seed, args, cfg, n_train, steps_per_epoch, t_start_all):
    run_dir = os.path.join(args.out, "runs", f"{args.mode}-{stack}-seed{seed}")
    shutil.rmtree(run_dir, ignore_errors=True)
    os.makedirs(run_dir)
    grouped = args.mode == "best"
    if stack == "peftcpp":
        cmd = [args.bin, "train", "--config", args.config, "--model.path", args.model,
               "--task.data_dir", args.data_dir, "--output-dir", run_dir,
               "--task.max_train_examples", str(n_train),
               "--task.cache_dir", os.path.join(run_dir, "cache"),  # tokenize every run, as HF
               "--trainer.num_train_epochs", str(args.epochs), "--trainer.seed", str(seed),
               "--model.threads", str(args.threads),
               "--trainer.group_by_length", "true" if grouped else "false",
               "--trainer.logging_steps", str(steps_per_epoch)]
        for key, value in args.set:
            cmd += [f"--{key}", value]
    else:
        trainer = dict(cfg["trainer"], num_train_epochs=args.epochs, seed=seed,
                       group_by_length=grouped, logging_steps=steps_per_epoch)
        spec = {"model_dir": args.model, "data_dir": args.data_dir, "output_dir": run_dir,
                "max_train_examples": n_train, "threads": args.threads,
                "max_length": cfg["task"].get("max_length", 128),
                "method": cfg["method"], "trainer": trainer}
        spec_path = os.path.join(run_dir, "spec.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f, indent=2)
        cmd = [sys.executable, os.path.join(REPO, "benchmarks", "hf_train_reference.py"),
               spec_path]
    label = f"{stack} seed {seed}"
    evals, rss, wall = run_child(cmd, run_dir, label, t_start_all)
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    if stack == "peftcpp":  # attach training seconds up to each evaluation
        marks = peftcpp_train_seconds(run_dir, n_train)
        for e in evals:
            e["train_seconds"] = next((s for step, s in marks if step == e["step"]), None)
    if not evals:
        sys.exit(f"{TAG} expected evaluation records in {run_dir}/metrics.jsonl, got none")
    acc = [e["eval_accuracy"] for e in evals]
    hit = next((e for e in evals if e["eval_accuracy"] >= args.target_accuracy), None)
    return {"stack": stack, "seed": seed, "run_dir": run_dir,
            "best_accuracy": max(acc), "last_accuracy": acc[-1], "evals": evals,
            "train_seconds": summary["train_seconds"],
            "train_examples": summary["train_examples"],
            "examples_per_second": summary["train_examples_per_second"],
            "padded_tokens": summary["train_padded_tokens"],
            "padded_tokens_per_second": summary["train_padded_tokens"] / summary["train_seconds"],
            "peak_rss_bytes": rss, "self_reported_peak_rss_bytes": summary.get("peak_rss_bytes"),
            "process_wall_seconds": wall,
            "target_train_seconds": hit["train_seconds"] if hit else None,
            "target_wall_seconds": hit["wall_seconds"] if hit else None}


def spread(xs, fmt):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "not reached"
    if len(xs) == 1:
        return fmt.format(xs[0])
    return f"{fmt.format(statistics.mean(xs))} ({fmt.format(min(xs))}-{fmt.format(max(xs))})"


def mean(xs):
    xs = [x for x in xs if x is not None]
    return statistics.mean(xs) if xs else None


def table(runs, args):
    """Markdown: one row per stack, and peftcpp / HF."""
    cols = [("best dev acc", "best_accuracy", "{:.4f}"), ("last dev acc", "last_accuracy", "{:.4f}"),
            ("train ex/s", "examples_per_second", "{:.1f}"),
            ("padded tok/s", "padded_tokens_per_second", "{:,.0f}"),
            ("padded tok/ex", None, "{:.1f}"), ("peak RSS MiB", "peak_rss_mib", "{:.0f}")]
    if args.mode == "best":
        cols += [(f"train s to {args.target_accuracy:g}", "target_train_seconds", "{:.1f}"),
                 (f"wall s to {args.target_accuracy:g}", "target_wall_seconds", "{:.1f}")]
    for r in runs:
        r["peak_rss_mib"] = r["peak_rss_bytes"] / 2**20
        r["padded_tokens_per_example"] = r["padded_tokens"] / r["train_examples"]
    lines = ["| stack | " + " | ".join(c[0] for c in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    means = {}
    for stack in STACKS:
        rs = [r for r in runs if r["stack"] == stack]
        if not rs:
            continue
        cells = []
        for name, key, fmt in cols:
            key = key or "padded_tokens_per_example"
            vals = [r[key] for r in rs]
            means[(stack, key)] = mean(vals)
            cell = spread(vals, fmt)
            if key.startswith("target_"):
                cell += f" [{sum(v is not None for v in vals)}/{len(vals)}]"
            cells.append(cell)
        lines.append(f"| {stack} | " + " | ".join(cells) + " |")
    if all(any(r["stack"] == s for r in runs) for s in STACKS):
        cells = []
        for name, key, fmt in cols:
            key = key or "padded_tokens_per_example"
            a, b = means[("peftcpp", key)], means[("HF", key)]
            cells.append("" if "acc" in name or a is None or b is None else f"**{a / b:.2f}**")
        lines.append("| peftcpp / HF | " + " | ".join(cells) + " |")
    return "\n".join(lines), {f"{s}:{k}": v for (s, k), v in means.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=["equal", "best"], default="equal")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--train-examples", type=int, default=4000, help="-1: all 67,349")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--target-accuracy", type=float, default=0.85)
    ap.add_argument("--only", choices=["peftcpp", "hf"], help="run one stack (smoke tests)")
    ap.add_argument("--set", nargs=2, action="append", default=[], metavar=("SECTION.KEY", "VALUE"),
                    help="a run-config override for both stacks (repeatable)")
    ap.add_argument("--config", default=os.path.join(REPO, "examples", "configs", "sst2_lora.yaml"))
    ap.add_argument("--data-dir", default=os.path.join(REPO, "..", "shared", "data", "glue", "SST-2"))
    ap.add_argument("--model", default=None, help="default: scripts/find_minilm.py")
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "bin", "peftcpp"))
    ap.add_argument("--out", default=os.path.join(REPO, "runs", "bench-train"))
    args = ap.parse_args()
    args.model = args.model or minilm_dir()
    args.out, args.data_dir = os.path.abspath(args.out), os.path.abspath(args.data_dir)
    stacks = {"peftcpp": ["peftcpp"], "hf": ["HF"], None: STACKS}[args.only]
    if "peftcpp" in stacks and not os.path.isfile(args.bin):
        sys.exit(f"{TAG} expected the peftcpp binary at {args.bin}, got no such file "
                 f"(hint: scripts/setup.sh)")

    with open(args.config) as f:
        cfg = yaml.safe_load(f)
    for key, value in args.set:  # the same overrides for the HF side
        section, _, name = key.partition(".")
        if section not in ("model", "task", "method", "trainer") or not name:
            sys.exit(f"{TAG} expected --set SECTION.KEY VALUE, got {key!r}")
        cfg.setdefault(section, {})[name] = parse_value(value)
    if str(cfg["method"].get("peft_type", "")).upper() != "LORA":
        sys.exit(f"{TAG} expected method.peft_type LORA in {args.config}, got "
                 f"{cfg['method'].get('peft_type')!r}")
    rows = len(read_tsv(os.path.join(args.data_dir, "train.tsv"), header=True))
    n_train = rows if args.train_examples <= 0 else min(args.train_examples, rows)
    tr = cfg["trainer"]
    batch = tr.get("per_device_train_batch_size", tr.get("batch_size", 32))
    if tr.get("gradient_accumulation_steps", 1) != 1 or tr.get("max_steps", -1) > 0:
        sys.exit(f"{TAG} expected gradient_accumulation_steps 1 and no max_steps "
                 "(the per-epoch timing assumes one batch per step, whole epochs)")
    steps_per_epoch = -(-n_train // batch)
    differs = not_mirrored(tr)

    env = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
           **{p: version(p) for p in ("torch", "transformers", "peft")},
           "date": time.strftime("%Y-%m-%d")}
    os.makedirs(args.out, exist_ok=True)
    total = len(args.seeds) * len(stacks)
    print(f"{TAG} mode {args.mode}: {total} runs, {n_train} training examples x {args.epochs} "
          f"epochs ({steps_per_epoch} steps each), {args.threads} threads; "
          f"{env['torch']}, transformers {env['transformers']}, peft {env['peft']}", flush=True)
    runs, loads, t_all = [], [os.getloadavg()[0]], time.monotonic()
    for i, seed in enumerate(args.seeds):
        for stack in stacks:
            k = len(runs) + 1
            print(f"{TAG} run {k}/{total}: {stack} seed {seed} "
                  f"(elapsed {time.monotonic() - t_all:.0f} s)", flush=True)
            r = one_run(stack, seed, args, cfg, n_train, steps_per_epoch, t_all)
            runs.append(r)
            loads.append(os.getloadavg()[0])
            print(f"{TAG} run {k}/{total} done in {r['process_wall_seconds']:.0f} s: best acc "
                  f"{r['best_accuracy']:.4f}, {r['examples_per_second']:.1f} ex/s, "
                  f"{r['padded_tokens_per_second']:,.0f} padded tok/s, peak RSS "
                  f"{r['peak_rss_bytes'] / 2**20:.0f} MiB", flush=True)

    md, means = table(runs, args)
    lr = tr.get("learning_rate")
    head = (f"SST-2, first {n_train} training examples, {args.epochs} epochs, dev 872; "
            f"{os.path.basename(args.config)} (lr {lr}, batch {batch}); "
            f"mode {args.mode} (group_by_length {'on' if args.mode == 'best' else 'off'}); "
            f"seeds {' '.join(map(str, args.seeds))}; {args.threads} threads; {env['machine']}; "
            f"torch {env['torch']}, transformers {env['transformers']}, peft {env['peft']}; "
            f"1-minute load average {min(loads):.1f} to {max(loads):.1f}; {env['date']}. "
            "Accuracy: mean (min-max) over seeds; other cells: mean (min-max); "
            "[k/n]: seeds that reached the target.")
    notes = ("Not the same on both sides: peftcpp writes a checkpoint at "
             "every evaluation (not in train time, in wall time); HF save_strategy \"no\"; "
             "shuffles come from different generators.")
    if differs:
        notes += f" Trainer keys not carried over to HF: {', '.join(differs)}."
    text = f"{head}\n\n{md}\n\n{notes}\n"
    print("\n" + text)
    with open(os.path.join(args.out, f"table-{args.mode}.md"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, f"results-{args.mode}.json"), "w") as f:
        json.dump({"args": vars(args), "config": cfg, "n_train": n_train,
                   "steps_per_epoch": steps_per_epoch, "environment": env, "loadavg": loads,
                   "driver_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                   "not_mirrored": differs, "means": means, "runs": runs}, f, indent=2)
    print(f"{TAG} wrote {args.out}/results-{args.mode}.json and table-{args.mode}.md "
          f"({time.monotonic() - t_all:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
