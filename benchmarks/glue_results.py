"""Fine-tunes all-MiniLM-L6-v2 on GLUE tasks with the example recipes and
writes the table of docs/results.md: one `peftcpp train` run per row, in a
fresh process, one after the other.

  source scripts/env.sh
  $PEFTCPP_PYTHON benchmarks/glue_results.py --glue ../shared/data/glue \
      --threads 2 --out runs/glue-results [--only sst2_lora,cola_lora]

Each row: the config in examples/configs/, the overrides below (documented
subsets), the best dev metric over the evaluations at each epoch's end, and
the run's time, examples/s, trainable parameters and peak RSS from
summary.json. Results go to OUT/results.json and OUT/results.md.
"""

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name, config, GLUE folder, overrides (subsets and epochs are part of the
# recipe, so they are stated in the table).
RUNS = [
    ("sst2_lora", "sst2_lora.yaml", "SST-2", {"task.max_train_examples": 8000}),
    ("cola_lora", "cola_lora.yaml", "CoLA", {}),
    ("stsb_lora", "stsb_lora.yaml", "STS-B", {}),
    ("mrpc_lora", "mrpc_lora.yaml", "MRPC", {}),
    ("sst2_bottleneck", "sst2_bottleneck.yaml", "SST-2",
     {"task.max_train_examples": 8000, "trainer.num_train_epochs": 2}),
    ("sst2_prefix", "sst2_prefix.yaml", "SST-2",
     {"task.max_train_examples": 8000, "trainer.num_train_epochs": 2}),
]


def minilm() -> str:
    sys.path.insert(0, os.path.join(REPO, "scripts"))
    from find_minilm import minilm_dir
    return minilm_dir()


def run_one(name, config, folder, overrides, args, model):
    out = os.path.join(os.path.abspath(args.out), name)
    if os.path.exists(os.path.join(out, "summary.json")):
        print(f"[glue] {name}: done before, reading {out}", flush=True)
    else:
        cmd = [os.path.join(args.build, "bin", "peftcpp"), "train",
               "--config", os.path.join(REPO, "examples", "configs", config),
               "--model.path", model,
               "--task.data_dir", os.path.join(os.path.abspath(args.glue), folder),
               "--model.threads", str(args.threads), "--output-dir", out]
        resume = os.path.isdir(out)
        for k, v in overrides.items():
            cmd += [f"--{k}", str(v)]
        if resume:
            cmd.append("--resume")
        print(f"[glue] {name}: {' '.join(cmd)}", flush=True)
        t0 = time.time()
        subprocess.run(cmd, check=True)
        print(f"[glue] {name}: {time.time() - t0:.0f} s", flush=True)
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    with open(os.path.join(out, "run_config.yaml")) as f:
        run_config = f.read()
    return {"name": name, "config": config, "overrides": overrides,
            "summary": summary, "run_config": run_config}


def table(rows) -> str:
    lines = ["| run | task | method | train examples x epochs | best dev metric | "
             "other dev metrics | train time | train ex/s | trainable params | peak RSS |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r["summary"]
        best = s.get("best_eval", {})
        key = s["metric_for_best_model"]
        others = ", ".join(f"{k} {v:.4f}" for k, v in best.items()
                           if k not in (key, "loss") and v is not None)
        task, method = r["name"].split("_", 1)
        if r["overrides"]:
            method += " (" + ", ".join(f"{k.split('.')[-1]}={v}" for k, v in
                                      r["overrides"].items()
                                      if not k.startswith("task.")) + ")"
            method = method.replace(" ()", "")
        epochs = s["epochs"]
        per_epoch = round(s["train_examples"] / epochs) if epochs else 0
        lines.append(
            f"| {r['name']} | {task} | {method} | {per_epoch} x {epochs:g} | "
            f"{key} **{best.get(key, float('nan')):.4f}** (epoch {s['best_epoch']:.0f}) | "
            f"{others} | {s['train_seconds'] / 60:.1f} min | "
            f"{s['train_examples_per_second']:.1f} | {s['trainable_parameters']:,} | "
            f"{s['peak_rss_bytes'] / 2**20:.0f} MiB |")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--glue", default=os.path.join(REPO, "..", "shared", "data", "glue"))
    p.add_argument("--build", default=os.path.join(REPO, "build"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=os.path.join(REPO, "runs", "glue-results"))
    p.add_argument("--only", default="", help="comma-separated run names")
    args = p.parse_args()
    only = set(filter(None, args.only.split(",")))
    model = minilm()
    rows = []
    for name, config, folder, overrides in RUNS:
        if only and name not in only:
            continue
        rows.append(run_one(name, config, folder, overrides, args, model))
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump(rows, f, indent=2)
        with open(os.path.join(args.out, "results.md"), "w") as f:
            f.write(table(rows))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
