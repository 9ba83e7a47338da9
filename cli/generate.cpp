// peftcpp generate: text from a decoder-only model (a Hugging Face folder or
// a GGUF file), greedy or sampled, prompts batched with left padding,
// optionally in the model's chat format.

#include <c10/core/InferenceMode.h>
#include <torch/cuda.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <stdexcept>

#include "cli/commands.h"
#include "cli/encode_inputs.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "data/chat_template.h"
#include "data/tokenizer/model_files.h"
#include "models/decoder/generation.h"
#include "models/decoder/load_decoder.h"
#include "models/encoder/load_encoder.h"
#include "peft/peft_model.h"

namespace peftcpp::cli {

namespace {

struct GenerateFlags {
  std::string model;
  std::string adapter;
  std::vector<std::string> prompts;
  bool chat = false;
  std::string system;
  int64_t max_new_tokens = 64;
  bool sample = false;
  double temperature = 1.0;
  int64_t top_k = 0;
  double top_p = 1.0;
  uint64_t seed = 0;
  std::string device = "cpu";
  std::string dtype = "float32";
  std::string json_output;
  bool no_cache = false;
};

// The prompt texts as the model sees them: the chat template around each
// (system message first when given) or the plain text.
std::vector<std::string> prompt_texts(const GenerateFlags& f,
                                      const data::ChatFormat& format) {
  if (!f.chat)
    return f.prompts;
  if (!format.chat_template.has_value()) {
    throw std::invalid_argument(
        error_message("generate --chat", "a model that ships a chat template",
                      f.model + " without one",
                      "leave out --chat to give the prompt as plain text"));
  }
  const data::ChatTemplate chat_template(*format.chat_template);
  std::vector<std::string> texts;
  for (const std::string& prompt : f.prompts) {
    std::vector<data::ChatMessage> messages;
    if (!f.system.empty())
      messages.push_back({"system", f.system});
    messages.push_back({"user", prompt});
    texts.push_back(chat_template.render(messages,
                                         /*add_generation_prompt=*/true,
                                         format.bos_token, format.eos_token));
  }
  return texts;
}

void run_generate(const GenerateFlags& f) {
  if (f.prompts.empty()) {
    throw std::invalid_argument(
        error_message("generate", "at least one --prompt", "none"));
  }
  if (!f.json_output.empty())
    check_output_path(f.json_output, "--json");
  const c10::Device device(f.device);
  if (device.is_cuda() && !torch::cuda::is_available()) {
    throw std::invalid_argument(error_message("generate --device",
                                              "a CUDA device", "none available",
                                              "use --device cpu"));
  }
  models::LoadDecoderOptions load_options;
  load_options.head = models::DecoderHead::kCausalLM;
  load_options.device = device;
  load_options.dtype = models::parse_dtype(f.dtype);
  const auto load_start = std::chrono::steady_clock::now();
  models::LoadedDecoder loaded = models::load_decoder(f.model, load_options);
  const data::Tokenizer tokenizer = data::load_model_tokenizer(f.model);
  const data::ChatFormat format =
      data::read_chat_format(f.model, tokenizer, loaded.config.eos_token_ids,
                             loaded.config.pad_token_id);
  const double load_seconds = std::chrono::duration<double>(
                                  std::chrono::steady_clock::now() - load_start)
                                  .count();

  const std::vector<std::string> texts = prompt_texts(f, format);
  data::EncodeOptions encode;
  // A chat template writes its own special tokens (as apply_chat_template
  // does); a plain prompt gets the tokenizer's.
  encode.add_special_tokens = !f.chat;
  encode.padding = data::PaddingStrategy::kLongest;
  encode.padding_side = data::Side::kLeft;
  data::Tokenizer batch_tokenizer = data::load_model_tokenizer(f.model);
  if (!batch_tokenizer.pad_token().has_value()) {
    if (!format.pad_token_id.has_value() && texts.size() > 1) {
      throw std::invalid_argument(error_message(
          "generate", "a pad or eos token to batch several prompts", "none",
          "give one --prompt at a time"));
    }
    const int64_t pad = format.pad_token_id.value_or(0);
    batch_tokenizer.set_pad_token(
        data::PadToken{pad, 0, tokenizer.id_to_token(pad).value_or("")});
  }
  std::vector<data::TextInput> inputs;
  for (const auto& t : texts)
    inputs.push_back({t, std::nullopt});
  const std::vector<data::Encoding> encodings =
      batch_tokenizer.encode_batch(inputs, encode);
  const int64_t batch = static_cast<int64_t>(encodings.size());
  const int64_t length = static_cast<int64_t>(encodings[0].ids.size());
  at::Tensor ids = at::empty({batch, length}, at::kLong);
  at::Tensor mask = at::empty({batch, length}, at::kLong);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t t = 0; t < length; ++t) {
      ids[b][t] = encodings[b].ids[t];
      mask[b][t] = encodings[b].attention_mask[t];
    }
  }

  models::GenerationOptions options;
  options.max_new_tokens = f.max_new_tokens;
  options.do_sample = f.sample;
  options.temperature = f.temperature;
  options.top_k = f.top_k;
  options.top_p = f.top_p;
  options.seed = f.seed;
  options.stop_token_ids = format.stop_token_ids;
  options.pad_token_id = format.pad_token_id;
  options.use_cache = !f.no_cache;
  models::GenerationInputs gen_inputs;
  gen_inputs.input_ids = ids.to(device);
  gen_inputs.attention_mask = mask.to(device);
  // With an adapter the PEFT model generates (prompt and prefix tuning add
  // their virtual tokens / keys and values); without, the model alone.
  peft::PeftModel peft_model{nullptr};
  if (!f.adapter.empty()) {
    peft_model = peft::PeftModel(std::move(loaded));
    peft_model->load_adapter(f.adapter, "default");
    peft_model->to(device);
    peft_model->eval();
  }
  const auto start = std::chrono::steady_clock::now();
  const models::GenerationOutput out =
      peft_model.is_empty()
          ? models::generate(*loaded.causal_lm, gen_inputs, options)
          : peft_model->generate(gen_inputs, options);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();

  const at::Tensor sequences = out.sequences.to(at::kCPU);
  nlohmann::json results = nlohmann::json::array();
  int64_t total_new = 0;
  for (int64_t b = 0; b < batch; ++b) {
    std::vector<int64_t> new_ids;
    for (int64_t t = length; t < length + out.num_generated[b]; ++t)
      new_ids.push_back(sequences[b][t].item<int64_t>());
    total_new += out.num_generated[b];
    const std::string text =
        tokenizer.decode(new_ids, /*skip_special_tokens=*/true);
    if (batch > 1)
      std::cout << "### " << f.prompts[b] << "\n";
    std::cout << text << "\n";
    results.push_back({{"prompt", f.prompts[b]},
                       {"completion", text},
                       {"completion_ids", new_ids}});
  }
  std::cout.flush();
  std::fprintf(stderr,
               "generated %lld tokens for %lld prompt(s) in %.2f s (%.1f "
               "tokens/s; model and tokenizer loaded in %.2f s)\n",
               static_cast<long long>(total_new), static_cast<long long>(batch),
               seconds, seconds > 0 ? total_new / seconds : 0.0, load_seconds);
  if (!f.json_output.empty()) {
    write_file_atomically(f.json_output, [&](std::ostream& o) {
      o << results.dump(1, ' ', /*ensure_ascii=*/false,
                        nlohmann::json::error_handler_t::replace)
        << '\n';
    });
  }
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto f = std::make_shared<GenerateFlags>();
  auto* cmd = app.add_subcommand(
      "generate", "Generate text with a decoder-only model (folder or GGUF)");
  cmd->add_option("--model", f->model,
                  "Model folder (config.json + weights + tokenizer) or a "
                  ".gguf file")
      ->required();
  cmd->add_option("--adapter", f->adapter,
                  "A PEFT adapter folder (adapter_config.json + "
                  "adapter_model.safetensors) to generate with");
  cmd->add_option("--prompt", f->prompts,
                  "Prompt text; repeat for a batch (left-padded)")
      ->required();
  cmd->add_flag("--chat", f->chat,
                "Wrap each prompt as a user message in the model's chat "
                "template");
  cmd->add_option("--system", f->system, "System message (with --chat)");
  cmd->add_option("--max-new-tokens", f->max_new_tokens,
                  "Tokens to generate at most")
      ->capture_default_str();
  cmd->add_flag("--sample", f->sample,
                "Sample (temperature, top-k, top-p) instead of greedy");
  cmd->add_option("--temperature", f->temperature, "Sampling temperature")
      ->capture_default_str();
  cmd->add_option("--top-k", f->top_k, "Keep the k likeliest tokens (0: all)")
      ->capture_default_str();
  cmd->add_option("--top-p", f->top_p, "Nucleus sampling mass")
      ->capture_default_str();
  cmd->add_option("--seed", f->seed, "Sampling seed")->capture_default_str();
  cmd->add_option("--device", f->device, "cpu, cuda or cuda:N")
      ->capture_default_str();
  cmd->add_option("--dtype", f->dtype, "float32, bfloat16 or float16")
      ->capture_default_str();
  cmd->add_option("--json", f->json_output,
                  "Also write prompts and completions to this JSON file");
  cmd->add_flag("--no-cache", f->no_cache,
                "Recompute every position each step (slow; for checking)");
  cmd->callback([f] { run_generate(*f); });
}

}  // namespace peftcpp::cli
