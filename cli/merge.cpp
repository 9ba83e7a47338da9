// peftcpp merge: fold an adapter into its base model and write a plain
// Hugging Face model folder (config.json + model.safetensors, tokenizer
// files copied) that transformers loads without PEFT.

#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "common/text_file.h"
#include "models/checkpoint/state_dict.h"
#include "models/encoder/load_encoder.h"
#include "peft/head_labels.h"
#include "peft/peft_model.h"

namespace peftcpp::cli {

namespace fs = std::filesystem;

namespace {

struct MergeFlags {
  std::string model;
  std::string adapter;
  std::string out;
  bool force = false;
};

// Files a model folder carries besides its weights, copied so the merged
// folder is as usable as the base one.
constexpr const char* kCompanionFiles[] = {
    "tokenizer.json",    "tokenizer_config.json",
    "vocab.txt",         "special_tokens_map.json",
    "vocab.json",        "merges.txt",
    "added_tokens.json",
};

void run_merge(const MergeFlags& f) {
  const fs::path out(f.out);
  if (fs::exists(out) && !fs::is_empty(out) && !f.force) {
    throw std::invalid_argument(error_message(
        "--out " + f.out, "a new or empty folder", "a folder with files in it",
        "pass --force to overwrite the model files in it"));
  }
  // A head the adapter was trained with (head_config.json, written by
  // peftcpp train) is built even when the base has none.
  models::LoadEncoderOptions load;
  const auto head = peft::read_adapter_head(f.adapter);
  if (head)
    peft::apply_adapter_head(*head, load);
  models::LoadedEncoder base = models::load_encoder(f.model, load);
  if (const auto body = base.missing_body_keys(); !body.empty()) {
    throw std::runtime_error(error_message(
        "merge --model " + f.model, "every encoder weight in the checkpoint",
        std::to_string(body.size()) + " missing: " + join_names(body)));
  }
  peft::PeftModel model(base);
  model->load_adapter(f.adapter, "default");
  const auto type = model->adapter_config("default").peft_type();
  // Safe merge: a broken adapter (NaN/Inf) fails here, before any file.
  models::LoadedEncoder merged = model->merge_and_unload(/*safe=*/true);

  fs::create_directories(out);
  models::save_state_dict(merged.module(), out / "model.safetensors");
  // The architecture does not change: the base config.json is the merged
  // model's config, every field kept; only a head from head_config.json
  // changes its architectures and labels.
  if (head) {
    nlohmann::json config = nlohmann::json::parse(
        read_text_file(fs::path(f.model) / "config.json", "merge --model", ""));
    config["architectures"] = {head->architecture};
    nlohmann::json id2label = nlohmann::json::object(), label2id;
    for (size_t i = 0; i < head->id2label.size(); ++i) {
      id2label[std::to_string(i)] = head->id2label[i];
      label2id[head->id2label[i]] = i;
    }
    config["id2label"] = id2label;
    config["label2id"] = label2id;
    if (head->problem_type != models::ProblemType::kUnset)
      config["problem_type"] = models::problem_type_name(head->problem_type);
    write_file_atomically(out / "config.json", [&](std::ostream& o) {
      o << config.dump(2) << "\n";
    });
  } else {
    fs::copy_file(fs::path(f.model) / "config.json", out / "config.json",
                  fs::copy_options::overwrite_existing);
  }
  for (const char* name : kCompanionFiles) {
    if (fs::exists(fs::path(f.model) / name))
      fs::copy_file(fs::path(f.model) / name, out / name,
                    fs::copy_options::overwrite_existing);
  }
  std::fprintf(stderr, "merged %s adapter %s into %s: wrote %s\n",
               peft::to_string(type).c_str(), f.adapter.c_str(),
               f.model.c_str(), out.string().c_str());
}

}  // namespace

void add_merge_command(CLI::App& app) {
  auto f = std::make_shared<MergeFlags>();
  auto* cmd = app.add_subcommand(
      "merge",
      "Merge an adapter (LoRA, DoRA, (IA)^3) into its base model and write a "
      "plain Hugging Face model folder");
  cmd->add_option("--model", f->model, "Base model folder")->required();
  cmd->add_option("--adapter", f->adapter,
                  "Adapter folder (adapter_config.json + "
                  "adapter_model.safetensors)")
      ->required();
  cmd->add_option("--out", f->out, "Output model folder")->required();
  cmd->add_flag("--force", f->force, "Write into a non-empty --out folder");
  cmd->callback([f] { run_merge(*f); });
}

}  // namespace peftcpp::cli
