// peftcpp eval: the metrics of a model (with an adapter, or a merged or
// fully trained folder) on a task's evaluation split: GLUE dev by name, or
// the task of a run config (its eval_file, columns and labels).
//
//   peftcpp eval --model DIR --adapter runs/sst2-lora/adapter --task sst2
//       --data-dir ../shared/data/glue/SST-2 --json dev.json

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "data/dataset/glue.h"
#include "trainers/run_config.h"
#include "trainers/training_run.h"

namespace peftcpp::cli {

namespace fs = std::filesystem;

namespace {

struct EvalFlags {
  std::string model;
  std::string adapter;
  std::string task;
  std::string data_dir;
  std::string config;
  std::vector<std::string> sets;
  int64_t batch_size = 0;  // 0: the config's eval batch size, else 64
  int64_t max_length = 0;  // 0: the config's, else 128
  std::string dtype;
  int threads = -1;
  std::string json;
};

void print_table(const std::string& title, const trainers::EvalResult& r) {
  std::printf("%s: %lld examples, %.1f s\n", title.c_str(),
              static_cast<long long>(r.examples), r.seconds);
  // The task's metrics first, the loss last.
  for (const auto& [name, value] : r.metrics) {
    if (name != "loss")
      std::printf("  %-22s %.4f\n", name.c_str(), value);
  }
  if (const auto it = r.metrics.find("loss"); it != r.metrics.end())
    std::printf("  %-22s %.4f\n", "loss", it->second);
}

void run_eval(const EvalFlags& f) {
  trainers::ModelSection model;
  trainers::TaskSection task;
  int64_t batch_size = 64;
  if (!f.config.empty()) {
    std::vector<std::string> overrides = f.sets;
    if (!f.model.empty())
      overrides.push_back("model.path=" + f.model);
    const trainers::RunConfig config =
        trainers::load_run_config(f.config, overrides);
    model = config.model;
    task = config.task;
    batch_size = config.trainer.per_device_eval_batch_size;
  } else {
    model.path = f.model;
    const data::GlueTask& glue = data::glue_task(f.task);
    task.glue = glue.name;
    task.data_dir = f.data_dir;
    task.labels.kind = glue.kind;
  }
  if (f.batch_size > 0)
    batch_size = f.batch_size;
  if (f.max_length > 0)
    task.max_length = f.max_length;
  if (!f.dtype.empty())
    model.dtype = f.dtype;
  if (f.threads >= 0)
    model.threads = f.threads;

  const trainers::EvalResult result =
      trainers::run_evaluation(model, f.adapter, task, batch_size);
  const std::string name =
      task.glue.empty() ? task.eval_file.filename().string() : task.glue;
  print_table(name, result);
  if (!f.json.empty()) {
    nlohmann::json j;
    j["task"] = name;
    j["model"] = fs::absolute(model.path).string();
    j["adapter"] = f.adapter.empty()
                       ? nlohmann::json(nullptr)
                       : nlohmann::json(fs::absolute(f.adapter).string());
    j["examples"] = result.examples;
    j["seconds"] = result.seconds;
    j["metrics"] = result.metrics;
    write_file_atomically(f.json,
                          [&](std::ostream& out) { out << j.dump(2) << "\n"; });
  }
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto f = std::make_shared<EvalFlags>();
  auto* cmd = app.add_subcommand(
      "eval",
      "Evaluate a model (and adapter) on a task's evaluation split: GLUE dev "
      "(--task, --data-dir) or a run config's task (--config)");
  cmd->add_option("--model", f->model,
                  "Hugging Face model folder (with --config: overrides "
                  "model.path)");
  cmd->add_option("--adapter", f->adapter,
                  "Adapter folder (HF PEFT or AdapterHub format)");
  auto* task = cmd->add_option("--task", f->task, "GLUE task (sst2, cola, ...)")
                   ->check(CLI::Validator(
                       [](std::string& name) -> std::string {
                         try {
                           (void)data::glue_task(name);
                           return "";
                         } catch (const std::out_of_range& e) {
                           return e.what();
                         }
                       },
                       "TASK"));
  auto* data_dir =
      cmd->add_option("--data-dir", f->data_dir,
                      "The task's GLUE folder (or the GLUE root holding it)");
  auto* config = cmd->add_option("--config", f->config,
                                 "Run config (YAML) whose task to evaluate")
                     ->check(CLI::ExistingFile);
  auto* sets = cmd->add_option("--set", f->sets,
                               "Override a config key: section.key=value "
                               "(repeatable)")
                   ->allow_extra_args(false);
  task->excludes(config);
  task->needs(data_dir);
  data_dir->needs(task);
  sets->needs(config);
  cmd->add_option("--batch-size", f->batch_size,
                  "Examples per forward pass (default: the config's "
                  "per_device_eval_batch_size, else 64)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-length", f->max_length,
                  "Longest tokenized input (default: the config's, else 128)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--dtype", f->dtype, "float32, bfloat16 or float16")
      ->check(CLI::IsMember({"float32", "bfloat16", "float16"}));
  cmd->add_option("--threads", f->threads, "CPU threads (default: LibTorch's)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--json", f->json, "Also write the metrics to this file");
  cmd->callback([f] {
    if (f->task.empty() && f->config.empty())
      throw CLI::RequiredError("--task (with --data-dir) or --config");
    if (f->model.empty() && f->config.empty())
      throw CLI::RequiredError("--model");
    run_eval(*f);
  });
}

}  // namespace peftcpp::cli
