// peftcpp train: one training run from a YAML config (trainers/run_config.h),
// with any key overridden on the command line:
//
//   peftcpp train --config examples/configs/sst2_lora.yaml --model.path DIR
//       --trainer.learning_rate 1e-3 --set method.r=16
//
// The run itself (and everything it prints) is trainers::run_training.

#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "common/error.h"
#include "trainers/run_config.h"
#include "trainers/training_run.h"

namespace peftcpp::cli {

namespace {

struct TrainFlags {
  std::string config;
  std::vector<std::string> sets;
  bool resume = false;
  std::string output_dir;
};

// "--section.key value" and "--section.key=value" as "section.key=value";
// anything else is a command-line error (exit code 2).
std::vector<std::string> flag_overrides(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    const size_t eq = arg.find('=');
    const std::string name = arg.substr(0, eq);
    const bool dotted = name.size() > 2 && name.rfind("--", 0) == 0 &&
                        name.find('.') != std::string::npos &&
                        name.find('.') > 2 && name.back() != '.';
    if (!dotted) {
      throw CLI::ValidationError(
          arg,
          "expected --section.key VALUE (a config override such as "
          "--trainer.learning_rate 1e-3) or one of the options in "
          "--help");
    }
    if (eq != std::string::npos) {
      out.push_back(arg.substr(2));
    } else if (i + 1 < args.size()) {
      out.push_back(name.substr(2) + "=" + args[++i]);
    } else {
      throw CLI::ValidationError(arg, "expected a value after it");
    }
  }
  return out;
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto f = std::make_shared<TrainFlags>();
  auto* cmd = app.add_subcommand(
      "train",
      "Train a PEFT adapter as a YAML config says (examples/configs/). Any "
      "key can be overridden: --section.key VALUE (e.g. --trainer.seed 7, "
      "--method.target_modules [query,value])");
  cmd->add_option("--config", f->config, "Run config (YAML)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--set", f->sets,
                  "Override a config key: section.key=value (repeatable; "
                  "applied in order, before --section.key flags)")
      ->allow_extra_args(false);
  cmd->add_flag("--resume", f->resume,
                "Continue from the newest complete checkpoint in output_dir");
  cmd->add_option("--output-dir", f->output_dir,
                  "Where the run writes (overrides output_dir)");
  // --section.key flags are not known to CLI11: they come back as extras.
  cmd->allow_extras();
  cmd->callback([f, cmd] {
    std::vector<std::string> overrides = f->sets;
    for (auto& o : flag_overrides(cmd->remaining()))
      overrides.push_back(std::move(o));
    if (!f->output_dir.empty())
      overrides.push_back("output_dir=" + f->output_dir);
    trainers::RunConfig config =
        trainers::load_run_config(f->config, overrides);
    if (config.trainer.output_dir.empty()) {
      throw std::invalid_argument(error_message(
          "train --config " + f->config, "output_dir in the config", "none",
          "add output_dir: DIR to the file or pass --output-dir DIR"));
    }
    config.trainer.resume = f->resume;
    trainers::run_training(config);
  });
}

}  // namespace peftcpp::cli
