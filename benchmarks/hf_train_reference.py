"""The Python side of benchmarks/bench_train_glue.py: one SST-2 LoRA training
run with transformers' Trainer + peft, the recipe of a peftcpp run config.

  python benchmarks/hf_train_reference.py SPEC.json

SPEC.json (written by bench_train_glue.py): model_dir, data_dir, output_dir,
max_train_examples, threads, max_length, method (the YAML's method section)
and trainer (its trainer section, overrides applied). Writes into output_dir,
with the field names of peftcpp's own files:
  metrics.jsonl  one line per evaluation, as it happens: step, epoch,
                 eval_accuracy, eval_loss, eval_seconds, and train_seconds
                 (training time up to this evaluation)
  summary.json   train_seconds, train_examples, train_examples_per_second,
                 train_padded_tokens, step_seconds, global_step, train_loss

Training time: the wall time from each epoch's start (on_epoch_begin) to
each optimizer step's end (on_step_end), chained, so it holds fetching and
collating the batches, forward, backward, clipping and the optimizer step,
and leaves out evaluation (it runs after on_epoch_end), as peftcpp's
train_seconds does. step_seconds is on_step_begin to on_step_end alone
(without the batch fetch). Padded tokens: input_ids.numel() of every
training batch (rows x the batch's padded length).
"""

import json
import os
import sys
import time

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(REPO, "scripts"))
from glue_tsv import read_tsv  # noqa: E402

# Trainer keys that TrainingArguments names the same way.
SAME_KEYS = ["num_train_epochs", "max_steps", "per_device_train_batch_size",
             "per_device_eval_batch_size", "gradient_accumulation_steps", "learning_rate",
             "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "lr_scheduler_type",
             "max_grad_norm", "seed", "logging_steps"]
# Mirrored under another name (see training_arguments).
MAPPED_KEYS = ["batch_size", "warmup_ratio", "warmup_steps", "group_by_length"]


def not_mirrored(trainer: dict) -> list:
    """The run config's trainer keys this script does not carry over."""
    return sorted(k for k in trainer if k not in SAME_KEYS + MAPPED_KEYS
                  and not (k == "eval_steps" and trainer[k] == 0))  # 0: eval_strategy epoch


def training_arguments(trainer: dict, output_dir: str) -> dict:
    args = {k: trainer[k] for k in SAME_KEYS if k in trainer}
    if "batch_size" in trainer:
        args["per_device_train_batch_size"] = trainer["batch_size"]
    # transformers 5: warmup_steps < 1 is a ratio of the total steps (ceil, as peftcpp).
    if trainer.get("warmup_steps", 0) > 0:
        args["warmup_steps"] = int(trainer["warmup_steps"])
    elif trainer.get("warmup_ratio", 0) > 0:
        args["warmup_steps"] = float(trainer["warmup_ratio"])
    args["train_sampling_strategy"] = ("group_by_length" if trainer.get("group_by_length")
                                       else "random")
    args.update(output_dir=output_dir, eval_strategy="epoch", save_strategy="no",
                logging_strategy="steps", report_to="none", dataloader_num_workers=0,
                use_cpu=True, disable_tqdm=True)
    return args


def load_split(path, tokenizer, max_length, limit=None):
    rows = read_tsv(path, header=True)
    if limit is not None and limit > 0:
        rows = rows[:limit]
    enc = tokenizer([r[0] for r in rows], truncation=True, max_length=max_length)
    return [{**{k: enc[k][i] for k in enc.keys()}, "labels": int(r[1])}
            for i, r in enumerate(rows)]


def main(spec_path: str) -> int:
    with open(spec_path) as f:
        spec = json.load(f)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer,
                              DataCollatorWithPadding, Trainer, TrainerCallback,
                              TrainingArguments)
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(spec["threads"])
    out = spec["output_dir"]
    os.makedirs(out, exist_ok=True)

    method = dict(spec["method"])
    if str(method.pop("peft_type", "LORA")).upper() != "LORA":
        sys.exit("[hf_train_reference] expected method.peft_type LORA, got another")
    method.pop("task_type", None)
    trainer_cfg = spec["trainer"]
    transformers.set_seed(trainer_cfg.get("seed", 42))  # head and LoRA init

    tok = AutoTokenizer.from_pretrained(spec["model_dir"])
    train = load_split(os.path.join(spec["data_dir"], "train.tsv"), tok, spec["max_length"],
                       spec["max_train_examples"])
    dev = load_split(os.path.join(spec["data_dir"], "dev.tsv"), tok, spec["max_length"])
    model = AutoModelForSequenceClassification.from_pretrained(spec["model_dir"], num_labels=2)
    model = get_peft_model(model, LoraConfig(task_type="SEQ_CLS", **method))

    clock = {"mark": None, "train": 0.0, "step_begin": None, "step": 0.0}
    log = open(os.path.join(out, "metrics.jsonl"), "w")

    class Timing(TrainerCallback):
        def on_epoch_begin(self, args, state, control, **kw):
            clock["mark"] = time.perf_counter()

        def on_step_begin(self, args, state, control, **kw):
            clock["step_begin"] = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            now = time.perf_counter()
            clock["train"] += now - clock["mark"]
            clock["step"] += now - clock["step_begin"]
            clock["mark"] = now

        def on_evaluate(self, args, state, control, metrics=None, **kw):
            rec = {"step": state.global_step, "epoch": state.epoch,
                   "eval_accuracy": metrics["eval_accuracy"], "eval_loss": metrics["eval_loss"],
                   "eval_seconds": metrics["eval_runtime"], "train_seconds": clock["train"]}
            log.write(json.dumps(rec) + "\n")
            log.flush()

    class CountingTrainer(Trainer):
        rows = 0
        padded = 0

        def training_step(self, model, inputs, num_items_in_batch=None):
            CountingTrainer.rows += inputs["input_ids"].shape[0]
            CountingTrainer.padded += inputs["input_ids"].numel()
            return super().training_step(model, inputs, num_items_in_batch)

    def accuracy(p):
        return {"accuracy": float((np.argmax(p.predictions, axis=-1) == p.label_ids).mean())}

    trainer = CountingTrainer(
        model=model, args=TrainingArguments(**training_arguments(trainer_cfg, out)),
        train_dataset=train, eval_dataset=dev, processing_class=tok,
        data_collator=DataCollatorWithPadding(tok), compute_metrics=accuracy,
        callbacks=[Timing()])
    result = trainer.train()
    log.close()
    summary = {"global_step": result.global_step, "train_loss": result.training_loss,
               "train_seconds": clock["train"], "step_seconds": clock["step"],
               "train_examples": CountingTrainer.rows,
               "train_examples_per_second": CountingTrainer.rows / clock["train"],
               "train_padded_tokens": CountingTrainer.padded,
               "not_mirrored": not_mirrored(trainer_cfg),
               "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                            "peft": __import__("peft").__version__}}
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
