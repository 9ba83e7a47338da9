// run_encoder, the batched inference behind `predict`: however the inputs
// come (padded left or right, in any order, in any batch size), each row's
// outputs are the model's outputs for that row alone, in input order.

#include <torch/torch.h>
#include <catch2/catch.hpp>

#include "models/checkpoint/state_dict.h"
#include "models/encoder/encoder_runner.h"
#include "tests/test_paths.h"
#include "tests/test_tensors.h"

using namespace peftcpp::models;
namespace fs = std::filesystem;
using peftcpp::data::Encoding;
using peftcpp::testing::max_abs_diff;

namespace {

fs::path tiny(const std::string& name) {
  return peftcpp::testing::fixture_dir() / "models" / name;
}

// Row r of the fixture's padded batch as an encoding, padded with `pad`
// extra positions on the left or right.
Encoding row(const StateDict& io, int64_t r, int64_t pad, bool left) {
  const at::Tensor mask = io.at("attention_mask")[r];
  const int64_t n = mask.sum().item<int64_t>();
  Encoding e;
  const auto push = [&](int64_t id, int64_t type, int64_t keep) {
    e.ids.push_back(id);
    e.type_ids.push_back(type);
    e.attention_mask.push_back(keep);
  };
  if (left) {
    for (int64_t k = 0; k < pad; ++k)
      push(0, 0, 0);
  }
  for (int64_t k = 0; k < n; ++k) {
    push(io.at("input_ids")[r][k].item<int64_t>(),
         io.at("token_type_ids")[r][k].item<int64_t>(), 1);
  }
  if (!left) {
    for (int64_t k = 0; k < pad; ++k)
      push(0, 0, 0);
  }
  return e;
}

}  // namespace

TEST_CASE(
    "Left-padded, right-padded and shuffled inputs give each row's own "
    "outputs in input order",
    "[models][runner]") {
  LoadedEncoder model = load_encoder(tiny("bert_seqcls"));
  const StateDict io = load_checkpoint(tiny("bert_seqcls") / "io.safetensors");
  // Rows 2, 0, 1: shortest first, so sorting really permutes.
  const std::vector<Encoding> encodings = {row(io, 2, 4, /*left=*/true),
                                           row(io, 0, 0, /*left=*/false),
                                           row(io, 1, 3, /*left=*/false)};
  for (int64_t batch_size : {1, 2, 3}) {
    INFO("batch size " << batch_size);
    RunEncoderOptions o;
    o.batch_size = batch_size;
    const EncoderRunOutputs out = run_encoder(model, encodings, o);
    const at::Tensor expected =
        io.at("logits").index_select(0, torch::tensor({2, 0, 1}));
    CHECK(max_abs_diff(out.logits, expected) <= 1e-5);
    CHECK(out.tokens == io.at("attention_mask").sum().item<int64_t>());
  }
}

TEST_CASE("Predictions run in eval mode and leave the caller's mode as it was",
          "[models][runner]") {
  LoadedEncoder model = load_encoder(tiny("bert_seqcls"));
  const StateDict io = load_checkpoint(tiny("bert_seqcls") / "io.safetensors");
  model.module().train();
  const EncoderRunOutputs out = run_encoder(model, {row(io, 0, 0, false)});
  // Dropout (p = 0.1) would move the logits; eval mode reproduces them.
  CHECK(max_abs_diff(out.logits, io.at("logits").slice(0, 0, 1)) <= 1e-5);
  CHECK(model.module().is_training());
}

TEST_CASE(
    "Token and type ids outside the model's tables are refused by input "
    "and position",
    "[models][runner][errors]") {
  LoadedEncoder model = load_encoder(tiny("bert_seqcls"));
  Encoding ok;
  ok.ids = {1, 2, 3};
  Encoding bad_type = ok;
  bad_type.type_ids = {0, 0, 5};
  Encoding negative = ok;
  negative.ids = {1, -1, 3};
  CHECK_THROWS_WITH(run_encoder(model, {ok, bad_type}),
                    Catch::Contains("expected token type ids in [0, 2)") &&
                        Catch::Contains("input 1 position 2 with 5"));
  CHECK_THROWS_WITH(run_encoder(model, {negative}),
                    Catch::Contains("expected token ids in [0, 99)") &&
                        Catch::Contains("input 0 position 1 with -1"));
  CHECK_THROWS_WITH(run_encoder(model, {}),
                    Catch::Contains("expected at least one input"));
}
