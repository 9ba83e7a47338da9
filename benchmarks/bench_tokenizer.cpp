// Tokenization throughput of peftcpp's Tokenizer on a file of sentences
// (one per line), timed in-process: encode_batch on all cores, and encode()
// one sentence after another on one core. Prints one JSON line for
// benchmarks/bench_tokenizer.py, which runs HF tokenizers beside it.
//
//   bench_tokenizer <model dir> <sentences.txt> [repeats]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "data/tokenizer/tokenizer.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string json_list(const std::vector<double>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i)
      out += ", ";
    out += std::to_string(v[i]);
  }
  return out + "]";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s <model dir> <sentences.txt> [repeats]\n",
                 argv[0]);
    return 2;
  }
  const int repeats = argc > 3 ? std::max(1, std::atoi(argv[3])) : 20;
  try {
    const auto tok = peftcpp::data::Tokenizer::from_pretrained(argv[1]);
    std::ifstream in(argv[2]);
    if (!in)
      throw std::runtime_error(std::string("cannot read ") + argv[2]);
    std::vector<peftcpp::data::TextInput> inputs;
    for (std::string line; std::getline(in, line);) {
      inputs.push_back({line, std::nullopt});
    }
    const peftcpp::data::EncodeOptions options;  // [CLS] ... [SEP], no padding

    // Warm-up, and the checksum the Python side compares with HF's ids.
    const auto first = tok.encode_batch(inputs, options);
    long long tokens = 0, checksum = 0;
    for (const auto& e : first) {
      tokens += static_cast<long long>(e.ids.size());
      for (size_t i = 0; i < e.ids.size(); ++i) {
        checksum += e.ids[i] * static_cast<long long>(i + 1);
      }
    }

    std::vector<double> batch, sequential;
    for (int r = 0; r < repeats; ++r) {
      auto t0 = Clock::now();
      const auto out = tok.encode_batch(inputs, options);
      batch.push_back(seconds_since(t0));
      t0 = Clock::now();
      size_t n = 0;
      for (const auto& in : inputs)
        n += tok.encode(in.text, std::nullopt, options).size();
      sequential.push_back(seconds_since(t0));
      if (out.size() != inputs.size() || n != static_cast<size_t>(tokens)) {
        throw std::runtime_error("inconsistent results between runs");
      }
    }
    std::printf(
        "{\"sentences\": %zu, \"tokens\": %lld, \"checksum\": %lld, "
        "\"threads\": %u, \"batch_s\": %s, \"sequential_s\": %s}\n",
        inputs.size(), tokens, checksum, std::thread::hardware_concurrency(),
        json_list(batch).c_str(), json_list(sequential).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_tokenizer: %s\n", e.what());
    return 1;
  }
  return 0;
}
