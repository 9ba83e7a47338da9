// Prefill and generation speed of a causal LM: the C++ half of
// benchmarks/bench_generate.py, which runs transformers beside it on the
// same token ids with the same settings and compares the greedy tokens.
//
//   bench_generate --model MODEL.gguf --inputs ids.safetensors
//       [--threads N] [--rounds 3] [--warmup 1] [--max-new-tokens 64]
//       [--stop-token ID]... [--pad-token ID] [--outputs out.safetensors]
//
// ids.safetensors names the workloads by its keys:
//   prefill.NAME.input_ids        [1, T]: one forward over the prompt with
//                                 an empty KV cache, logits of the last
//                                 position only (generate's prefill)
//   generate.NAME.input_ids       [B, T], left-padded, and
//   generate.NAME.attention_mask  [B, T]: greedy generation of exactly
//                                 --max-new-tokens tokens per row
//                                 (min_new_tokens = max_new_tokens, so the
//                                 stop tokens are suppressed, not skipped)
// A round times each workload once, in an order rotated by the round.
// Prints one JSON line: the load time, the times of every round (ms), their
// medians, the resident set after loading and the process's peak RSS; --outputs
// gets each generate workload's sequences from the first (untimed) round.

#include <c10/core/InferenceMode.h>
#include <sys/resource.h>
#include <torch/cuda.h>
#include <torch/torch.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "models/checkpoint/safetensors.h"
#include "models/decoder/generation.h"
#include "models/decoder/load_decoder.h"
#include "models/encoder/load_encoder.h"

namespace {

namespace models = peftcpp::models;
using Clock = std::chrono::steady_clock;

double elapsed_ms(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
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
    std::snprintf(buf, sizeof(buf), "%s%.2f", i ? ", " : "", v[i]);
    out += buf;
  }
  return out + "]";
}

// Resident set now (/proc/self/statm), MiB.
double rss_mib() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2)
      resident = 0;
    std::fclose(f);
  }
  return static_cast<double>(resident) *
         static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

// Peak resident set of this process (ru_maxrss is in KiB on Linux).
double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

// One workload read from the inputs file.
struct Workload {
  std::string name;  ///< "prefill.NAME" or "generate.NAME"
  bool generate = false;
  at::Tensor input_ids;       ///< [B, T] int64
  at::Tensor attention_mask;  ///< [B, T] int64 (generate only)
};

std::vector<Workload> read_workloads(const std::string& path) {
  const auto file = models::SafetensorsFile::open(path);
  std::vector<Workload> out;
  const std::string suffix = ".input_ids";
  for (const std::string& key : file->keys()) {
    if (key.size() <= suffix.size() ||
        key.compare(key.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    Workload w;
    w.name = key.substr(0, key.size() - suffix.size());
    w.generate = w.name.rfind("generate.", 0) == 0;
    if (!w.generate && w.name.rfind("prefill.", 0) != 0) {
      throw std::invalid_argument(
          "[bench_generate] expected keys prefill.* or "
          "generate.*, got " +
          key);
    }
    w.input_ids = file->tensor(key).to(at::kLong);
    if (w.generate)
      w.attention_mask = file->tensor(w.name + ".attention_mask").to(at::kLong);
    out.push_back(std::move(w));
  }
  if (out.empty()) {
    throw std::invalid_argument(
        "[bench_generate] expected at least one *.input_ids in " + path +
        ", got none");
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Prefill and greedy generation speed of a causal LM"};
  std::string model_path, inputs_path, outputs_path;
  int threads = 0, rounds = 3, warmup = 1;
  int64_t max_new_tokens = 64;
  std::vector<int64_t> stop_tokens;
  int64_t pad_token = -1;
  std::string device_name = "cpu", dtype_name = "float32";
  app.add_option("--device", device_name, "cpu, cuda or cuda:N");
  app.add_option("--dtype", dtype_name, "float32, bfloat16 or float16");
  app.add_option("--model", model_path, "GGUF file or model folder")
      ->required();
  app.add_option("--inputs", inputs_path,
                 "safetensors with prefill.*/generate.* workloads")
      ->required();
  app.add_option("--threads", threads, "at::set_num_threads (0: default)");
  app.add_option("--rounds", rounds, "Timed rounds")
      ->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup,
                 "Untimed rounds first (at least one: --outputs comes from it)")
      ->check(CLI::PositiveNumber);
  app.add_option("--max-new-tokens", max_new_tokens,
                 "Tokens generated per row (also min_new_tokens)")
      ->check(CLI::PositiveNumber);
  app.add_option("--stop-token", stop_tokens,
                 "Stop (eos) token ids, suppressed as min_new_tokens does");
  app.add_option("--pad-token", pad_token, "Pad token id (-1: none)");
  app.add_option("--outputs", outputs_path,
                 "Write each generate workload's sequences here");
  CLI11_PARSE(app, argc, argv);

  try {
    if (threads > 0)
      at::set_num_threads(threads);
    torch::NoGradGuard no_grad;
    const c10::Device device(device_name);
    std::vector<Workload> workloads = read_workloads(inputs_path);
    for (Workload& w : workloads) {
      w.input_ids = w.input_ids.to(device);
      if (w.attention_mask.defined())
        w.attention_mask = w.attention_mask.to(device);
    }
    // GPU work is asynchronous: time up to the device's completion.
    const auto sync = [&] {
      if (device.is_cuda())
        torch::cuda::synchronize();
    };

    const auto t_load = Clock::now();
    models::LoadDecoderOptions load_options;
    load_options.device = device;
    load_options.dtype = models::parse_dtype(dtype_name);
    models::LoadedDecoder loaded =
        models::load_decoder(model_path, load_options);
    if (loaded.causal_lm.is_empty()) {
      throw std::invalid_argument("[bench_generate] expected a causal LM in " +
                                  model_path + ", got a classifier");
    }
    loaded.module().eval();
    const double load_s = elapsed_ms(t_load) / 1e3;
    const double loaded_rss = rss_mib();
    models::CausalLMImpl& lm = *loaded.causal_lm;

    models::GenerationOptions options;
    options.max_new_tokens = max_new_tokens;
    options.min_new_tokens = max_new_tokens;
    options.stop_token_ids = stop_tokens;
    if (pad_token >= 0)
      options.pad_token_id = pad_token;

    // One run of workload `w`; the generated sequences for generate.
    const auto run = [&](const Workload& w) -> at::Tensor {
      if (w.generate)
        return models::generate(lm, w.input_ids, w.attention_mask, options)
            .sequences;
      // generate's prefill: an empty cache, logits of the last position.
      c10::InferenceMode inference;
      models::KeyValueCache cache(loaded.config.num_hidden_layers);
      models::DecoderInputs in;
      in.input_ids = w.input_ids;
      in.cache = &cache;
      return lm.forward(in, /*logits_to_keep=*/1);
    };
    const auto timed_run = [&](const Workload& w) {
      sync();
      const auto t0 = Clock::now();
      run(w);
      sync();
      return elapsed_ms(t0);
    };

    std::vector<std::pair<std::string, at::Tensor>> outputs;
    for (int r = 0; r < warmup; ++r) {
      for (const Workload& w : workloads) {
        at::Tensor out = run(w);
        if (r == 0 && w.generate)
          outputs.emplace_back(w.name + ".sequences", out.cpu());
      }
    }
    if (!outputs_path.empty())
      models::save_safetensors(outputs_path, outputs);

    std::map<std::string, std::vector<double>> ms;
    for (int r = 0; r < rounds; ++r) {
      for (size_t k = 0; k < workloads.size(); ++k) {
        const Workload& w = workloads[(k + r) % workloads.size()];
        ms[w.name].push_back(timed_run(w));
      }
    }

    std::string times = "{", medians = "{";
    for (const auto& [name, v] : ms) {
      const std::string sep = times.size() > 1 ? ", " : "";
      times += sep + "\"" + name + "\": " + json_list(v);
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.3f", median(v));
      medians += sep + "\"" + name + "\": " + buf;
    }
    std::printf(
        "{\"stack\": \"peftcpp\", \"threads\": %d, \"load_s\": %.3f, "
        "\"ms\": %s}, \"median_ms\": %s}, \"rss_after_load_mib\": %.1f, "
        "\"peak_rss_mib\": %.1f}\n",
        at::get_num_threads(), load_s, times.c_str(), medians.c_str(),
        loaded_rss, peak_rss_mib());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_generate: %s\n", e.what());
    return 1;
  }
  return 0;
}
