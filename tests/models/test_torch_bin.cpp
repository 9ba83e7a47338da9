// pytorch_model.bin as torch.save and transformers write it, read by our own
// pickle reader (tests/fixtures/make_checkpoint.py writes the files):
// OrderedDict state dicts, shards, shared storages, legacy and damaged files.

#include <torch/torch.h>
#include <catch2/catch.hpp>

#include <fstream>

#include "models/checkpoint/state_dict.h"
#include "models/checkpoint/torch_bin.h"
#include "tests/models/checkpoint_test_helpers.h"

using namespace peftcpp::models;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using peftcpp::testing::checkpoint_fixture;
using peftcpp::testing::read_bytes;
using peftcpp::testing::runtime_error_of;

namespace {
void check_same(const StateDict& a, const StateDict& b) {
  REQUIRE(a.size() == b.size());
  for (const auto& [name, t] : a) {
    INFO(name);
    REQUIRE(b.count(name));
    CHECK(t.scalar_type() == b.at(name).scalar_type());
    CHECK(torch::equal(t, b.at(name)));
  }
}
}  // namespace

TEST_CASE("A torch.save'd OrderedDict state dict equals model.safetensors",
          "[checkpoint]") {
  // torch::pickle_load fails on this file (OrderedDict -> None); ours must
  // not.
  const StateDict safe =
      load_checkpoint(checkpoint_fixture("bert/safetensors"));
  const StateDict bin = load_checkpoint(checkpoint_fixture("bert/bin"));
  CHECK(safe.size() > 30);
  CHECK(safe.count("embeddings.LayerNorm.weight"));
  check_same(safe, bin);
  check_same(bin,
             load_torch_bin(checkpoint_fixture("bert/bin/pytorch_model.bin")));
}

TEST_CASE("Sharded pytorch_model.bin checkpoints load through their index",
          "[checkpoint]") {
  check_same(load_checkpoint(checkpoint_fixture("bert/safetensors")),
             load_checkpoint(checkpoint_fixture("bert/bin_sharded")));
}

TEST_CASE("Tensors sharing a storage keep their values and their sharing",
          "[checkpoint]") {
  const auto sd = load_torch_bin(checkpoint_fixture("shared_storage.bin"));
  const at::Tensor base = torch::arange(12, torch::kFloat).reshape({3, 4});
  CHECK(torch::equal(sd.at("tied_a"), base));
  CHECK(torch::equal(sd.at("tied_b"), base));
  CHECK(torch::equal(sd.at("row1"), base[1]));
  CHECK(torch::equal(sd.at("transposed"), base.t()));
  CHECK(sd.at("transposed").strides().vec() == std::vector<int64_t>{1, 4});
  // One storage, as in Python: the row is a view at offset 4.
  CHECK(sd.at("tied_a").data_ptr() == sd.at("tied_b").data_ptr());
  CHECK(sd.at("row1").data_ptr<float>() ==
        sd.at("tied_a").data_ptr<float>() + 4);
}

TEST_CASE(
    "A torch.save file whose tensor reaches past its storage is refused, "
    "not read from uninitialised memory",
    "[checkpoint]") {
  const fs::path bad = checkpoint_fixture("corrupt/view_outside_storage.bin");
  const std::string msg = runtime_error_of([&] { load_torch_bin(bad); });
  CHECK_THAT(msg, Contains(bad.string()));
  CHECK_THAT(msg,
             Contains("expected a tensor view inside its storage of 8 bytes"));
  CHECK_THAT(msg, Contains("sizes (4, 4)"));
}

TEST_CASE("Legacy and damaged torch.save files fail with the file and a hint",
          "[checkpoint]") {
  const fs::path legacy = checkpoint_fixture("legacy_format.bin");
  std::string msg = runtime_error_of([&] { load_torch_bin(legacy); });
  CHECK_THAT(msg, Contains(legacy.string()));
  CHECK_THAT(msg, Contains("legacy pre-1.6"));
  CHECK_THAT(msg, Contains("re-save it with torch >= 1.6"));
  CHECK_THAT(msg, Contains("safetensors"));

  const peftcpp::testing::ScratchDir tmp("ckpt");
  const std::string whole =
      read_bytes(checkpoint_fixture("bert/bin/pytorch_model.bin"));
  const fs::path cut = tmp.path() / "pytorch_model.bin";
  std::ofstream(cut, std::ios::binary) << whole.substr(0, whole.size() / 2);
  msg = runtime_error_of([&] { load_checkpoint(tmp.path()); });
  CHECK_THAT(msg, Contains(cut.string()));
  CHECK_THAT(msg, Contains("expected a readable torch.save archive"));
}
