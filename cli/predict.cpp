// peftcpp predict: run a model over a JSONL file and write its outputs as
// safetensors (logits for a model with a head; sentence embeddings, pooler
// output and hidden states for a bare encoder).

#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "cli/commands.h"
#include "cli/encode_inputs.h"
#include "cli/predict_decoder.h"
#include "common/error.h"
#include "data/tokenizer/model_files.h"
#include "models/checkpoint/safetensors.h"
#include "models/decoder/load_decoder.h"
#include "models/encoder/encoder_runner.h"
#include "models/encoder/load_encoder.h"
#include "peft/head_labels.h"
#include "peft/peft_model.h"

namespace peftcpp::cli {

namespace fs = std::filesystem;

namespace {

struct PredictFlags {
  std::string model;
  std::string input;
  std::string output;
  int64_t batch_size = 32;
  std::string device = "cpu";
  std::string dtype = "float32";
  int threads = 0;
  bool no_hidden_states = false;
  std::vector<std::string> adapters;
  std::string set_adapter;
  TokenizationFlags tokenization;
};

// An --adapter folder's name: its folder name without dots (adapter names
// become parts of parameter names).
std::string adapter_name_of(const std::string& dir) {
  std::string name = fs::path(dir).lexically_normal().filename().string();
  if (name.empty() || name == "." || name == "..")
    name =
        fs::absolute(dir).lexically_normal().parent_path().filename().string();
  std::replace(name.begin(), name.end(), '.', '_');
  return name;
}

// Loads every --adapter folder onto `model` under its folder name and
// activates --set-adapter (default: the last one).
void load_adapters(peft::PeftModelImpl& model, const PredictFlags& f) {
  for (const auto& dir : f.adapters) {
    const std::string name = adapter_name_of(dir);
    if (model.has_adapter(name)) {
      throw std::invalid_argument(error_message(
          "--adapter " + dir, "adapter folders with distinct names",
          "a second adapter named \"" + name + "\"",
          "adapters are named after their folders; rename one"));
    }
    model.load_adapter(dir, name);
  }
  if (!f.set_adapter.empty()) {
    if (!model.has_adapter(f.set_adapter)) {
      throw std::invalid_argument(
          error_message("--set-adapter",
                        "one of the loaded adapters [" +
                            join_names(model.adapter_names()) + "]",
                        "\"" + f.set_adapter + "\"",
                        "adapters are named after their folders"));
    }
    model.set_adapter(f.set_adapter);
  } else if (!f.adapters.empty()) {
    model.set_adapter(model.adapter_names().back());
  }
  std::fprintf(
      stderr, "adapter: %s (%s)\n", model.active_adapter().c_str(),
      peft::to_string(model.adapter_config(model.active_adapter()).peft_type())
          .c_str());
}

c10::Device parse_device(const std::string& name) {
  c10::Device device = c10::kCPU;
  try {
    device = c10::Device(name);
  } catch (const std::exception&) {
    throw std::invalid_argument(
        error_message("--device", "cpu, cuda or cuda:N", "\"" + name + "\""));
  }
  if (device.is_cuda() && !torch::cuda::is_available()) {
    throw std::invalid_argument(error_message("--device", "a CUDA device",
                                              "none on this machine",
                                              "use --device cpu"));
  }
  return device;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t)
      .count();
}

bool has_tokenizer_files(const fs::path& dir) {
  return fs::exists(dir / "tokenizer.json") || fs::exists(dir / "vocab.txt") ||
         fs::exists(dir / "tokenizer.model");
}

void run_predict(const PredictFlags& f) {
  if (f.threads > 0)
    torch::set_num_threads(f.threads);
  models::LoadEncoderOptions load;
  load.device = parse_device(f.device);
  load.dtype = models::parse_dtype(f.dtype);
  // Check everything that can be wrong before the (slower) model load and
  // inference: the output's place, then the inputs.
  check_output_path(f.output, "--output");
  const std::vector<InputLine> lines = read_jsonl_inputs(f.input);
  std::optional<data::Tokenizer> tokenizer;
  if (data::is_gguf_path(f.model) || has_tokenizer_files(f.model))
    tokenizer = data::load_model_tokenizer(f.model);
  const auto t_tokenize = std::chrono::steady_clock::now();
  const auto encodings =
      encode_inputs(tokenizer ? &*tokenizer : nullptr, lines,
                    to_encode_options(f.tokenization), f.input);
  const double tokenize_s = seconds_since(t_tokenize);

  if (models::is_decoder_checkpoint(f.model)) {
    DecoderPredictRequest request;
    request.model = f.model;
    request.encodings = encodings;
    request.device = f.device;
    request.dtype = f.dtype;
    request.batch_size = f.batch_size;
    if (!f.adapters.empty())
      request.load_adapters = [&f](peft::PeftModelImpl& m) {
        load_adapters(m, f);
      };
    std::map<std::string, std::string> metadata{
        {"format", "pt"},
        {"model", fs::absolute(f.model).string()},
        {"inputs", std::to_string(lines.size())}};
    const auto tensors = predict_decoder(request, metadata);
    models::save_safetensors(f.output, tensors, metadata);
    std::fprintf(stderr, "wrote %s: %zu inputs\n", f.output.c_str(),
                 lines.size());
    return;
  }

  // An adapter trained by peftcpp says which head it was trained with
  // (head_config.json): a base without a head (all-MiniLM-L6-v2) gets the
  // active adapter's. Adapters with heads of different sizes cannot share
  // one model.
  if (!f.adapters.empty()) {
    const std::string active = f.set_adapter.empty()
                                   ? adapter_name_of(f.adapters.back())
                                   : f.set_adapter;
    std::optional<peft::AdapterHead> first;
    std::string first_dir;
    for (const auto& dir : f.adapters) {
      const auto head = peft::read_adapter_head(dir);
      if (!head)
        continue;
      if (first && first->id2label.size() != head->id2label.size()) {
        throw std::invalid_argument(error_message(
            "--adapter " + dir,
            "a head of " + std::to_string(first->id2label.size()) +
                " labels, as " + first_dir + "'s",
            std::to_string(head->id2label.size()) + " labels",
            "adapters trained for different label sets need separate "
            "predict runs"));
      }
      if (!first) {
        first = head;
        first_dir = dir;
      }
      if (adapter_name_of(dir) == active)
        peft::apply_adapter_head(*head, load);
    }
  }
  models::LoadedEncoder model = models::load_encoder(f.model, load);
  // Random encoder weights would give outputs that look fine and mean
  // nothing: refuse. A fresh head is only warned about (a base checkpoint
  // under a head config, as transformers allows).
  if (const auto body = model.missing_body_keys(); !body.empty()) {
    throw std::runtime_error(error_message(
        "predict --model " + f.model, "every encoder weight in the checkpoint",
        std::to_string(body.size()) + " missing: " + join_names(body) +
            (model.unexpected_keys.empty()
                 ? ""
                 : "; unused checkpoint tensors: " +
                       join_names(model.unexpected_keys)),
        "does config.json's model_type match the checkpoint?"));
  }
  for (const auto& k : model.unexpected_keys) {
    std::fprintf(stderr,
                 "warning: checkpoint tensor %s is not used by the model\n",
                 k.c_str());
  }
  for (const auto& k : model.missing_keys) {
    std::fprintf(stderr,
                 "warning: %s is not in the checkpoint; initialised fresh\n",
                 k.c_str());
  }
  models::RunEncoderOptions run;
  std::optional<peft::PeftModel> adapted;
  if (!f.adapters.empty()) {
    adapted.emplace(model);
    load_adapters(**adapted, f);
    const bool head = model.has_classifier();
    run.encode = [&adapted, head](const models::EncoderInputs& in) {
      models::EncoderOutput out = (*adapted)->encode(in);
      // Prompt methods put their virtual tokens in front; a bare
      // encoder's outputs cover the real tokens only.
      const int64_t extra =
          out.last_hidden_state.size(1) - in.attention_mask.size(1);
      if (!head && extra > 0)
        out.last_hidden_state = out.last_hidden_state.slice(1, extra);
      return out;
    };
  } else if (!f.set_adapter.empty()) {
    throw std::invalid_argument(error_message(
        "--set-adapter", "--adapter folders to choose from", "none"));
  }
  run.batch_size = f.batch_size;
  run.with_hidden_states = !f.no_hidden_states && !model.has_classifier();
  run.show_progress = true;
  const auto t_run = std::chrono::steady_clock::now();
  const models::EncoderRunOutputs out =
      models::run_encoder(model, encodings, run);
  const double run_s = seconds_since(t_run);

  std::vector<std::pair<std::string, at::Tensor>> tensors;
  if (out.logits.defined())
    tensors.emplace_back("logits", out.logits);
  if (out.sentence_embedding.defined())
    tensors.emplace_back("sentence_embedding", out.sentence_embedding);
  if (out.pooler_output.defined())
    tensors.emplace_back("pooler_output", out.pooler_output);
  if (out.last_hidden_state.defined()) {
    tensors.emplace_back("last_hidden_state", out.last_hidden_state);
    tensors.emplace_back("attention_mask", out.attention_mask);
  }
  std::map<std::string, std::string> metadata{
      {"format", "pt"},
      {"model", fs::absolute(f.model).string()},
      {"inputs", std::to_string(lines.size())}};
  if (model.has_classifier()) {
    std::string labels;
    for (const auto& l : model.config.id2label)
      labels += (labels.empty() ? "" : ",") + l;
    metadata["labels"] = labels;
  }
  models::save_safetensors(f.output, tensors, metadata);
  // Tokenization + inference, model load and file I/O excluded: the figure
  // benchmarks/bench_predict.py compares with transformers.
  const double work_s = tokenize_s + run_s;
  std::fprintf(stderr,
               "wrote %s: %zu inputs, %lld tokens; tokenize+inference %.3f s "
               "(%.1f inputs/s)\n",
               f.output.c_str(), lines.size(),
               static_cast<long long>(out.tokens), work_s,
               lines.size() / work_s);
}

}  // namespace

void add_predict_command(CLI::App& app) {
  auto f = std::make_shared<PredictFlags>();
  auto* cmd = app.add_subcommand(
      "predict", "Run a model over a JSONL file; write outputs as safetensors");
  cmd->add_option("--model", f->model,
                  "Hugging Face model folder (encoder or decoder) or a .gguf "
                  "file")
      ->required();
  cmd->add_option("--input", f->input,
                  "JSONL: {\"text\": ..., \"text_pair\": ...} or "
                  "{\"input_ids\": [...]} per line")
      ->required();
  cmd->add_option("--output", f->output, "Output .safetensors file")
      ->required();
  cmd->add_option("--batch-size", f->batch_size, "Inputs per forward pass")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--device", f->device, "cpu, cuda or cuda:N")
      ->check(CLI::Validator(
          [](std::string& name) -> std::string {
            try {
              (void)c10::Device(name);
              return "";
            } catch (const std::exception&) {
              return "expected cpu, cuda or cuda:N, got \"" + name + "\"";
            }
          },
          "DEVICE"));
  cmd->add_option("--dtype", f->dtype, "float32, bfloat16 or float16")
      ->check(CLI::IsMember(
          {"float32", "fp32", "bfloat16", "bf16", "float16", "fp16"}));
  cmd->add_option("--threads", f->threads, "CPU threads (default: LibTorch's)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--no-hidden-states", f->no_hidden_states,
                "Leave last_hidden_state and attention_mask out of the output");
  cmd->add_option("--adapter", f->adapters,
                  "Adapter folder (HF PEFT or AdapterHub format), named after "
                  "the folder; repeat for several (the last is active)");
  cmd->add_option("--set-adapter", f->set_adapter,
                  "Name of the --adapter to run (default: the last)");
  add_tokenization_flags(*cmd, f->tokenization);
  cmd->callback([f] { run_predict(*f); });
}

}  // namespace peftcpp::cli
