#pragma once
// The AdapterHub reference files (<fixtures>/bottleneck, written by
// tests/fixtures/bottleneck_reference.py) and a base model with the context
// add_bottleneck needs, for the bottleneck tests.

#include <torch/torch.h>
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

#include "models/checkpoint/safetensors.h"
#include "models/checkpoint/state_dict.h"
#include "models/encoder/load_encoder.h"
#include "peft/bottleneck.h"
#include "tests/test_paths.h"
#include "tests/test_tensors.h"

namespace peftcpp::testing::bottleneck {

namespace fs = std::filesystem;
using namespace peftcpp::peft;

inline const std::vector<std::string> kModels = {"bert", "roberta"};
inline const std::vector<std::string> kConfigs = {"seq_bn", "double_seq_bn",
                                                  "par_bn"};

inline std::string read_text(const fs::path& p) {
  return testing::read_file_bytes(p);
}

// <fixtures>/bottleneck, failing the case (not skipping it) when
// generate_all.py could not make the references.
inline fs::path bn_fixtures() {
  const fs::path dir = testing::fixture_dir() / "bottleneck";
  if (fs::exists(dir / "UNAVAILABLE.txt")) {
    FAIL("the AdapterHub references were not generated: " +
         read_text(dir / "UNAVAILABLE.txt"));
  }
  if (!fs::exists(dir / "bert" / "inputs.safetensors")) {
    FAIL("expected the AdapterHub references in " + dir.string() +
         ", got none (hint: run the tests through ctest, or "
         "tests/fixtures/generate_all.py --out " +
         testing::fixture_dir().string() + ")");
  }
  return dir;
}

inline std::string adapters_python() {
  std::string line = read_text(bn_fixtures() / "python.txt");
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
    line.pop_back();
  return line;
}

inline models::EncoderInputs inputs_of(const std::string& model) {
  const auto io =
      models::load_checkpoint(bn_fixtures() / model / "inputs.safetensors");
  models::EncoderInputs in;
  in.input_ids = io.at("input_ids");
  in.attention_mask = io.at("attention_mask");
  in.token_type_ids = io.at("token_type_ids");
  return in;
}

// The base model of `model` in eval mode, and what add_bottleneck is told.
struct Base {
  models::LoadedEncoder loaded;
  AdapterContext ctx;
};

inline Base load_base(const std::string& model,
                      const models::LoadEncoderOptions& options = {}) {
  Base b{models::load_encoder(bn_fixtures() / model / "base", options), {}};
  b.loaded.module().eval();
  const auto& c = b.loaded.config;
  b.ctx.root = &b.loaded.module();
  b.ctx.info = ModelInfo{c.model_type, c.hidden_size, c.num_hidden_layers,
                         c.num_attention_heads, c.vocab_size};
  return b;
}

inline at::Tensor logits_of(Base& b, const models::EncoderInputs& in) {
  at::NoGradGuard no_grad;
  return b.loaded.classifier->forward(in);
}

// transformers' hidden_states: the embeddings' output, then every layer's.
std::vector<at::Tensor> hidden_states_of(Base& b,
                                         const models::EncoderInputs& in) {
  at::NoGradGuard no_grad;
  auto& enc = b.loaded.base();
  std::vector<at::Tensor> out{enc->embeddings->forward(in)};
  const at::Tensor mask =
      models::make_attention_mask(in.attention_mask, /*prefix_length=*/0);
  for (size_t i = 0; i < enc->layers->size(); ++i)
    out.push_back(enc->layer(i)->forward(out.back(), mask, nullptr));
  return out;
}

inline TensorMap head_of(Base& b) {
  TensorMap out;
  for (const auto& item : b.loaded.module().named_parameters()) {
    if (item.key().rfind("classifier.", 0) == 0)
      out[item.key()] = item.value().detach();
  }
  return out;
}

inline std::vector<std::string> sorted_keys(const TensorMap& m) {
  std::vector<std::string> keys;
  for (const auto& [k, v] : m)
    keys.push_back(k);
  return keys;
}

inline std::string model_class(const Base& b) {
  return b.loaded.config.architectures.front();
}

// Runs check_bottleneck_adapter.py on a folder we wrote (with `stack`,
// AdapterHub runs Stack(adapter, stack)): AdapterHub must give our logits.
void check_in_adapterhub(const std::string& model, const fs::path& adapter,
                         const at::Tensor& our_logits,
                         const testing::ScratchDir& scratch,
                         const fs::path& stack = {}) {
  const fs::path expected = scratch / "ours.safetensors";
  models::save_safetensors(expected, {{"logits", our_logits.contiguous()}});
  const auto r = testing::run_command(
      "'" + adapters_python() + "' '" + PEFTCPP_SOURCE_DIR +
      "/tests/fixtures/check_bottleneck_adapter.py' --base '" +
      (bn_fixtures() / model / "base").string() + "' --adapter '" +
      adapter.string() + "' --inputs '" +
      (bn_fixtures() / model / "inputs.safetensors").string() +
      "' --expected '" + expected.string() + "'" +
      (stack.empty() ? "" : " --stack '" + stack.string() + "'"));
  INFO(r.output);
  REQUIRE(r.code == 0);
  std::printf("[bottleneck] %s %s in AdapterHub: %s", model.c_str(),
              adapter.filename().c_str(),
              r.output.substr(r.output.rfind("max_abs_diff")).c_str());
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no exception)";
}

}  // namespace peftcpp::testing::bottleneck
