// Forward latency of an encoder with a LoRA adapter, unmerged and merged,
// against the same encoder without one: the C++ half of
// benchmarks/bench_lora_overhead.py, which runs HF peft beside it on the same
// ids and adapter and compares the outputs.
//
//   bench_lora_overhead --model DIR --inputs ids.safetensors
//       [--adapter ADAPTER_DIR] [--threads N] [--rounds 5] [--warmup 1]
//       [--outputs out.safetensors]
//
// ids.safetensors holds input_ids [B, T] (int64) and, optionally,
// attention_mask [B, T].
// ADAPTER_DIR is a PEFT adapter folder (save_pretrained); without it a LoRA
// r=8, alpha=16 on query/value is added here with lora_B drawn at random, so
// the adapter's matmuls are not skipped and change the output.
//
// Four configurations, each its own model copy so that nothing is merged or
// unmerged between timings:
//   base      the plain encoder, no hook attached
//   disabled  the PEFT model inside disable_adapters() (hooks attached, off)
//   unmerged  y = W x + b + s B A x on every targeted layer
//   merged    merge_adapter() once: W' = W + s B A, no hook work
// A round times one forward of each, in an order rotated by the round so no
// configuration always runs first after another. Prints one JSON line with
// the times of every round (ms), their medians, and the page faults each
// forward took (fresh memory from the kernel).

#include <sys/resource.h>
#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "models/checkpoint/safetensors.h"
#include "models/encoder/load_encoder.h"
#include "peft/peft_model.h"

namespace {

namespace models = peftcpp::models;
namespace peft = peftcpp::peft;
using Clock = std::chrono::steady_clock;

constexpr std::array<const char*, 4> kConfigs = {"base", "disabled", "unmerged",
                                                 "merged"};

// Page faults of this process so far: fresh pages the allocator got from
// the kernel, a cost that scales with the bytes of new tensors.
double minor_faults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_minflt);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string json_list(const std::vector<double>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%s%.1f", i ? ", " : "", v[i]);
    out += buf;
  }
  return out + "]";
}

// A PEFT model over a fresh copy of the encoder, with the adapter of the
// Python side (read from `adapter_dir`) or a random-B LoRA of the same shape.
peft::PeftModel make_peft_model(const std::string& model_dir,
                                const std::string& adapter_dir,
                                const models::LoadEncoderOptions& load) {
  peft::PeftModel model(models::load_encoder(model_dir, load));
  if (!adapter_dir.empty()) {
    model->load_adapter(adapter_dir, "default");
  } else {
    peft::LoraConfig lora;
    lora.r = 8;
    lora.lora_alpha = 16;
    lora.target_modules = peft::ModuleSelector::list({"query", "value"});
    peft::AdapterConfig config;
    config.method = lora;
    config.task_type = "FEATURE_EXTRACTION";
    // The same draws for A (at add_adapter) and B in every copy: loading
    // the encoder consumed the generator already.
    torch::manual_seed(0);
    model->add_adapter("default", config);
    // B = 0 at init would make the adapter a no-op in value, though not in
    // work; random B makes the outputs of the configurations differ, so a
    // forward that silently skipped the adapter would show.
    torch::NoGradGuard no_grad;
    for (auto& item : model->named_parameters()) {
      if (item.key().find(".lora_B.default.") != std::string::npos)
        item.value().normal_(/*mean=*/0.0, /*std=*/0.02);
    }
  }
  model->eval();
  return model;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"LoRA forward overhead: base vs unmerged vs merged"};
  std::string model_dir, inputs_path, adapter_dir, outputs_path;
  int threads = 0, rounds = 5, warmup = 1;
  app.add_option("--model", model_dir, "Model folder")->required();
  app.add_option("--inputs", inputs_path,
                 "safetensors with input_ids, attention_mask [B, T]")
      ->required();
  app.add_option("--adapter", adapter_dir, "PEFT adapter folder (optional)");
  app.add_option("--threads", threads, "at::set_num_threads (0: default)");
  app.add_option("--rounds", rounds, "Timed rounds")
      ->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup,
                 "Untimed rounds first (at least one: --outputs comes from it)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--outputs", outputs_path,
                 "Write each configuration's last_hidden_state here");
  CLI11_PARSE(app, argc, argv);

  try {
    if (threads > 0)
      at::set_num_threads(threads);
    torch::NoGradGuard no_grad;

    const auto file = models::SafetensorsFile::open(inputs_path);
    models::EncoderInputs inputs;
    inputs.input_ids = file->tensor("input_ids").to(at::kLong);
    if (file->contains("attention_mask"))
      inputs.attention_mask = file->tensor("attention_mask").to(at::kLong);

    models::LoadEncoderOptions load;
    load.head = models::EncoderHead::kNone;
    models::LoadedEncoder base = models::load_encoder(model_dir, load);
    base.module().eval();
    peft::PeftModel unmerged = make_peft_model(model_dir, adapter_dir, load);
    peft::PeftModel merged = make_peft_model(model_dir, adapter_dir, load);
    merged->merge_adapter();

    // One forward of configuration `c`.
    const auto forward = [&](size_t c) -> at::Tensor {
      switch (c) {
        case 0:
          return base.base()->forward(inputs).last_hidden_state;
        case 1: {
          const auto off = unmerged->disable_adapters();
          return unmerged->encode(inputs).last_hidden_state;
        }
        case 2:
          return unmerged->encode(inputs).last_hidden_state;
        default:
          return merged->encode(inputs).last_hidden_state;
      }
    };

    std::vector<std::pair<std::string, at::Tensor>> outputs;
    for (size_t c = 0; c < kConfigs.size(); ++c)
      outputs.emplace_back(kConfigs[c], forward(c));
    if (!outputs_path.empty())
      models::save_safetensors(outputs_path, outputs);
    for (int w = 1; w < warmup; ++w) {
      for (size_t c = 0; c < kConfigs.size(); ++c)
        forward(c);
    }

    std::vector<std::vector<double>> ms(kConfigs.size()),
        faults(kConfigs.size());
    for (int r = 0; r < rounds; ++r) {
      for (size_t k = 0; k < kConfigs.size(); ++k) {
        const size_t c = (k + r) % kConfigs.size();
        const double f0 = minor_faults();
        const auto t0 = Clock::now();
        const at::Tensor y = forward(c);
        ms[c].push_back(
            std::chrono::duration<double, std::milli>(Clock::now() - t0)
                .count());
        faults[c].push_back(minor_faults() - f0);
      }
    }

    std::string times = "{", medians = "{", fault_counts = "{";
    for (size_t c = 0; c < kConfigs.size(); ++c) {
      const std::string sep = c ? ", " : "";
      times += sep + "\"" + kConfigs[c] + "\": " + json_list(ms[c]);
      fault_counts += sep + "\"" + kConfigs[c] + "\": " + json_list(faults[c]);
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%.3f", median(ms[c]));
      medians += sep + "\"" + kConfigs[c] + "\": " + buf;
    }
    times += "}";
    medians += "}";
    fault_counts += "}";
    std::printf(
        "{\"threads\": %d, \"batch\": %lld, \"tokens\": %lld, "
        "\"ms\": %s, \"median_ms\": %s, \"minor_faults\": %s}\n",
        at::get_num_threads(), static_cast<long long>(inputs.input_ids.size(0)),
        static_cast<long long>(inputs.input_ids.size(1)), times.c_str(),
        medians.c_str(), fault_counts.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_lora_overhead: %s\n", e.what());
    return 1;
  }
  return 0;
}
