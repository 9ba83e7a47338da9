// Checkpoint I/O against the reference implementations: safetensors files
// written by Python `safetensors` (tests/fixtures/make_checkpoint.py), files
// we write read back by Python (tests/fixtures/check_safetensors.py),
// corrupt files, folders and shards, and load_state_dict's reports and
// all-or-nothing behaviour. pytorch_model.bin: test_torch_bin.cpp.

#include <torch/torch.h>
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>
#include <cstdio>
#include <fstream>

#include "models/checkpoint/safetensors.h"
#include "models/checkpoint/state_dict.h"
#include "models/checkpoint/torch_bin.h"
#include "tests/models/checkpoint_test_helpers.h"
#include "tests/test_paths.h"

using namespace peftcpp::models;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;

using peftcpp::testing::checkpoint_fixture;
using peftcpp::testing::read_bytes;
using peftcpp::testing::runtime_error_of;

namespace {

// Mirrors SHAPES and pattern() of make_checkpoint.py: value i of each
// dtype's tensor (row-major index).
const std::vector<std::pair<std::string, std::vector<int64_t>>> kShapes = {
    {"F64", {3}},   {"F32", {2, 3}}, {"F16", {2, 2, 2}},  {"BF16", {1, 5}},
    {"I64", {4}},   {"I32", {2, 3}}, {"I16", {3, 2}},     {"I8", {6}},
    {"U8", {2, 4}}, {"BOOL", {7}},   {"F8_E4M3", {2, 3}}, {"F8_E5M2", {6}},
};

double expected_value(const std::string& dtype, int64_t i) {
  if (dtype == "F64") {
    return (double(i) - 3) / 3;
  }
  if (dtype == "F32") {
    return float(i - 3) / 3.0f;  // rounded in float
  }
  if (dtype == "F16" || dtype == "BF16" || dtype == "F8_E4M3" ||
      dtype == "F8_E5M2") {
    return (double(i) - 3) * 0.5;
  }
  if (dtype == "I64") {
    return double((i - 3) * 1000000007LL);
  }
  if (dtype == "I32") {
    return double((i - 3) * 100003);
  }
  if (dtype == "I16") {
    return double((i - 3) * 1001);
  }
  if (dtype == "I8") {
    return double(i - 3);
  }
  if (dtype == "U8") {
    return double((i * 37) % 256);
  }
  return i % 3 == 0 ? 1.0 : 0.0;  // BOOL
}

at::ScalarType scalar_type_of(const std::string& dtype) {
  static const std::map<std::string, at::ScalarType> m = {
      {"F64", at::kDouble},
      {"F32", at::kFloat},
      {"F16", at::kHalf},
      {"BF16", at::kBFloat16},
      {"I64", at::kLong},
      {"I32", at::kInt},
      {"I16", at::kShort},
      {"I8", at::kChar},
      {"U8", at::kByte},
      {"BOOL", at::kBool},
      {"F8_E4M3", at::kFloat8_e4m3fn},
      {"F8_E5M2", at::kFloat8_e5m2}};
  return m.at(dtype);
}

// The pattern tensor built in C++ (exact in every dtype, see above).
at::Tensor make_pattern(const std::string& dtype,
                        const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (auto s : shape) {
    n *= s;
  }
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) {
    v[i] = expected_value(dtype, i);
  }
  return torch::tensor(v, torch::kDouble)
      .to(scalar_type_of(dtype))
      .reshape(shape);
}

void check_pattern(const at::Tensor& t, const std::string& dtype,
                   const std::vector<int64_t>& shape) {
  INFO("tensor " << dtype);
  REQUIRE(t.scalar_type() == scalar_type_of(dtype));
  REQUIRE(t.sizes().vec() == shape);
  const at::Tensor flat = t.to(at::kDouble).reshape({-1}).contiguous();
  for (int64_t i = 0; i < flat.numel(); ++i) {
    INFO("element " << i);
    CHECK(flat[i].item<double>() == expected_value(dtype, i));
  }
}

// Runs the venv's Python on check_safetensors.py; returns (exit code, output).
std::pair<int, std::string> run_python_check(const std::string& args) {
  const std::string cmd =
      std::string("'") + PEFTCPP_PYTHON_PATH + "' '" + PEFTCPP_SOURCE_DIR +
      "/tests/fixtures/check_safetensors.py' " + args + " 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof(buf), pipe)) {
    out.append(buf, n);
  }
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace

// --- safetensors: reading ----------------------------------------------------

TEST_CASE("Every dtype written by Python safetensors reads back exactly",
          "[checkpoint]") {
  const auto file =
      SafetensorsFile::open(checkpoint_fixture("dtypes.safetensors"));
  REQUIRE(file->size() == kShapes.size());
  CHECK(file->metadata().empty());
  // File order: descending alignment, as the Python library lays data out.
  CHECK(file->keys().front() == "I64");
  CHECK(file->keys().back() == "BOOL");
  for (const auto& [dtype, shape] : kShapes) {
    REQUIRE(file->contains(dtype));
    const SafetensorsTensorInfo& info = file->info(dtype);
    CHECK(info.dtype == dtype);
    CHECK(info.shape == shape);
    CHECK(info.end - info.begin ==
          uint64_t(make_pattern(dtype, shape).nbytes()));
    check_pattern(file->tensor(dtype), dtype, shape);
  }
}

TEST_CASE("Zero-size and scalar tensors and metadata read back as written",
          "[checkpoint]") {
  const auto file =
      SafetensorsFile::open(checkpoint_fixture("special.safetensors"));
  CHECK(file->metadata() ==
        std::map<std::string, std::string>{
            {"format", "pt"}, {"note", "h\xc3\xa9llo \"quoted\""}});
  CHECK(file->tensor("empty").sizes().vec() == std::vector<int64_t>{0});
  const at::Tensor e2 = file->tensor("empty_2d");
  CHECK(e2.sizes().vec() == std::vector<int64_t>{2, 0, 3});
  CHECK(e2.scalar_type() == at::kHalf);
  const at::Tensor s = file->tensor("scalar_f32");
  CHECK(s.dim() == 0);
  CHECK(s.item<float>() == 3.5f);
  CHECK(file->tensor("scalar_i64").item<int64_t>() == -42);
}

TEST_CASE("Aligned tensors are zero-copy views that outlive the file handle",
          "[checkpoint]") {
  auto file = SafetensorsFile::open(checkpoint_fixture("dtypes.safetensors"));
  at::Tensor a = file->tensor("F32");
  CHECK(a.data_ptr() == file->tensor("F32").data_ptr());  // no copy
  file.reset();  // the tensor keeps the mapping alive
  check_pattern(a, "F32", {2, 3});
  // The mapping is private: writing works and never reaches the file.
  a.add_(1);
  check_pattern(SafetensorsFile::open(checkpoint_fixture("dtypes.safetensors"))
                    ->tensor("F32"),
                "F32", {2, 3});
}

TEST_CASE("Misaligned tensor data is copied and reads correctly",
          "[checkpoint]") {
  const auto file =
      SafetensorsFile::open(checkpoint_fixture("misaligned.safetensors"));
  const at::Tensor f = file->tensor("f");
  CHECK(reinterpret_cast<uintptr_t>(f.data_ptr()) % 4 == 0);
  CHECK(f.data_ptr() != file->tensor("f").data_ptr());  // a fresh copy
  CHECK(f[0].item<float>() == 1.25f);
  CHECK(f[1].item<float>() == -4.5f);
  CHECK(file->tensor("u").to(at::kLong).sum().item<int64_t>() == 7 + 8 + 9);
}

TEST_CASE("An unknown tensor name throws out_of_range listing names",
          "[checkpoint]") {
  const auto file =
      SafetensorsFile::open(checkpoint_fixture("dtypes.safetensors"));
  CHECK_FALSE(file->contains("nope"));
  try {
    file->tensor("nope");
    FAIL("expected std::out_of_range");
  } catch (const std::out_of_range& e) {
    const std::string msg = e.what();
    CHECK_THAT(msg, Contains("dtypes.safetensors"));
    CHECK_THAT(msg, Contains("'nope'"));
    CHECK_THAT(msg, Contains("I64"));
  }
}

TEST_CASE("Corrupt safetensors files fail at open naming file and problem",
          "[checkpoint]") {
  struct Case {
    const char* file;
    std::vector<std::string> expected_text;
  };
  const std::vector<Case> cases = {
      {"truncated", {"expected 64 bytes of tensor data, got 40", "'w'"}},
      {"tiny", {"expected at least 8 bytes", "got 3 bytes"}},
      {"header_past_eof",
       {"expected a header length of at most", "got 1048576"}},
      {"invalid_json", {"expected a JSON header", "got invalid JSON"}},
      {"not_object", {"expected a JSON object header", "got a JSON array"}},
      {"offsets_out_of_range",
       {"expected 32 bytes of tensor data, got 16", "'w'", "[16, 32]"}},
      {"size_mismatch",
       {"tensor 'w'", "expected 16 bytes of data", "got data_offsets [0, 12]"}},
      {"unknown_dtype",
       {"tensor 'w'", "expected a dtype among", "F8_E4M3", "got 'Q4'"}},
      {"overlap", {"expected non-overlapping tensor data", "'a'", "'b'"}},
      {"negative_shape", {"tensor 'w'", "non-negative", "got [-4]"}},
  };
  for (const auto& c : cases) {
    const fs::path path =
        checkpoint_fixture("corrupt") / (std::string(c.file) + ".safetensors");
    INFO(path.string());
    const std::string msg =
        runtime_error_of([&] { SafetensorsFile::open(path); });
    CHECK_THAT(msg, Contains(path.string()));
    for (const auto& text : c.expected_text) {
      CHECK_THAT(msg, Contains(text));
    }
  }
  const std::string missing = runtime_error_of([&] {
    SafetensorsFile::open(checkpoint_fixture("no_such.safetensors"));
  });
  CHECK_THAT(missing, Contains("no_such.safetensors"));
  CHECK_THAT(missing, Contains("No such file"));
}

// --- safetensors: writing ----------------------------------------------------

TEST_CASE("save_safetensors writes the same bytes as the Python library",
          "[checkpoint]") {
  const peftcpp::testing::ScratchDir tmp("ckpt");
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& [dtype, shape] : kShapes) {
    tensors.emplace_back(dtype, make_pattern(dtype, shape));
  }
  const fs::path out = tmp.path() / "dtypes.safetensors";
  save_safetensors(out, tensors, {{"format", "pt"}});
  const std::string ours = read_bytes(out);
  const std::string theirs =
      read_bytes(checkpoint_fixture("dtypes_format_pt.safetensors"));
  CHECK(ours.size() == theirs.size());
  CHECK(ours == theirs);
}

TEST_CASE("Python safetensors reads what save_safetensors wrote",
          "[checkpoint]") {
  const peftcpp::testing::ScratchDir tmp("ckpt");
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& [dtype, shape] : kShapes) {
    at::Tensor t = make_pattern(dtype, shape);
    // Non-contiguous inputs must be written in logical (row-major) order.
    if (t.dim() == 2) {
      t = t.t().contiguous().t();
    }
    tensors.emplace_back(dtype, t);
  }
  tensors.emplace_back("scalar", torch::tensor(3.5f));
  tensors.emplace_back("empty", torch::zeros({0, 3}, torch::kBFloat16));
  const fs::path out = tmp.path() / "ours.safetensors";
  save_safetensors(out, tensors,
                   {{"format", "pt"},
                    {"writer", "peftcpp"},
                    {"note", "h\xc3\xa9llo \"q\""}});
  const auto [rc, output] = run_python_check("pattern '" + out.string() + "'");
  INFO(output);
  CHECK(rc == 0);
  // And our reader agrees.
  const auto file = SafetensorsFile::open(out);
  for (const auto& [dtype, shape] : kShapes) {
    check_pattern(file->tensor(dtype), dtype, shape);
  }
}

TEST_CASE("save_safetensors rejects bad input and leaves no file behind",
          "[checkpoint]") {
  const peftcpp::testing::ScratchDir tmp("ckpt");
  const fs::path out = tmp.path() / "bad.safetensors";
  const auto a = torch::ones({2});
  const auto expect_invalid =
      [&](const std::vector<std::pair<std::string, at::Tensor>>& tensors,
          const std::string& text) {
        try {
          save_safetensors(out, tensors);
          FAIL("expected std::invalid_argument");
        } catch (const std::invalid_argument& e) {
          CHECK_THAT(std::string(e.what()), Contains(text));
        }
      };
  expect_invalid({{"w", a}, {"v", a}, {"w", a}}, "tensor 'w'");
  expect_invalid({{"w", a}, {"w", a}}, "duplicate");
  expect_invalid({{"__metadata__", a}}, "reserved");
  expect_invalid({{"u", at::Tensor()}}, "undefined");
  expect_invalid({{"c", torch::ones({2}, torch::kComplexFloat)}},
                 "ComplexFloat");
  CHECK(fs::is_empty(tmp.path()));  // neither the target nor a temporary
}

TEST_CASE("save_safetensors writes CUDA tensors", "[checkpoint][cuda]") {
  if (!torch::cuda::is_available()) {
    WARN("no CUDA device: skipped");
    return;
  }
  const peftcpp::testing::ScratchDir tmp("ckpt");
  const at::Tensor t = make_pattern("BF16", {1, 5}).cuda();
  save_safetensors(tmp.path() / "gpu.safetensors", {{"BF16", t}});
  check_pattern(
      SafetensorsFile::open(tmp.path() / "gpu.safetensors")->tensor("BF16"),
      "BF16", {1, 5});
}

// --- load_checkpoint ---------------------------------------------------------

TEST_CASE(
    "Sharded safetensors load through the index and a missing shard "
    "is named",
    "[checkpoint]") {
  const StateDict sd = load_checkpoint(checkpoint_fixture("sharded"));
  REQUIRE(sd.size() == 3);
  CHECK(torch::equal(sd.at("a.weight"),
                     torch::arange(6, torch::kFloat).reshape({2, 3})));
  CHECK(torch::equal(sd.at("b.weight"), torch::arange(4, torch::kLong)));
  // The index file itself works as the path too.
  CHECK(load_checkpoint(checkpoint_fixture("sharded") /
                        "model.safetensors.index.json")
            .size() == 3);

  const std::string msg = runtime_error_of(
      [&] { load_checkpoint(checkpoint_fixture("sharded_missing_shard")); });
  CHECK_THAT(msg, Contains("model.safetensors.index.json"));
  CHECK_THAT(msg, Contains("shard 'model-00002-of-00002.safetensors'"));
  CHECK_THAT(msg, Contains("'b.weight'"));
}

TEST_CASE("A folder without weights lists the files looked for",
          "[checkpoint]") {
  const peftcpp::testing::ScratchDir tmp("ckpt");
  std::ofstream(tmp.path() / "config.json") << "{}";
  const std::string msg =
      runtime_error_of([&] { load_checkpoint(tmp.path()); });
  CHECK_THAT(msg, Contains(tmp.path().string()));
  for (const char* f : {"model.safetensors", "model.safetensors.index.json",
                        "pytorch_model.bin", "pytorch_model.bin.index.json"}) {
    CHECK_THAT(msg, Contains(f));
  }
  CHECK_THAT(msg, Contains("config.json"));
}

// --- load_state_dict / save_state_dict ---------------------------------------

namespace {
// HF-style names: embeddings.LayerNorm.{weight,bias}, dense.{weight,bias},
// a buffer, and an output projection tied to dense.weight.
struct TinyImpl : torch::nn::Module {
  torch::nn::Linear dense{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  TinyImpl() {
    auto emb = register_module("embeddings", std::make_shared<Module>());
    norm = emb->register_module(
        "LayerNorm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({4})));
    dense = register_module("dense", torch::nn::Linear(4, 4));
    register_buffer("position_ids", torch::arange(4));
    register_parameter("tied_out", dense->weight);
  }
};
TORCH_MODULE(Tiny);

std::map<std::string, at::Tensor> snapshot(torch::nn::Module& m) {
  std::map<std::string, at::Tensor> s;
  for (const auto& p : m.named_parameters()) {
    s[p.key()] = p.value().clone();
  }
  for (const auto& b : m.named_buffers()) {
    s[b.key()] = b.value().clone();
  }
  return s;
}

void check_unchanged(torch::nn::Module& m,
                     const std::map<std::string, at::Tensor>& before) {
  for (const auto& [name, t] : snapshot(m)) {
    INFO(name);
    CHECK(torch::equal(t, before.at(name)));
  }
}
}  // namespace

TEST_CASE(
    "load_state_dict renames gamma/beta, converts dtypes and reports "
    "missing and unexpected names",
    "[checkpoint]") {
  Tiny model;
  // legacy_names.safetensors: embeddings.LayerNorm.gamma (2.0) / .beta
  // (-1.0), dense.weight (ones), written by Python.
  StateDict sd =
      load_checkpoint(checkpoint_fixture("legacy_names.safetensors"));
  sd["dense.weight"] = sd["dense.weight"].to(at::kDouble);  // converted
  sd["cls.predictions.bias"] = torch::zeros({3});           // unexpected
  const LoadReport report = load_state_dict(*model, sd);

  CHECK(torch::equal(model->norm->weight, torch::full({4}, 2.0f)));
  CHECK(torch::equal(model->norm->bias, torch::full({4}, -1.0f)));
  CHECK(model->dense->weight.scalar_type() == at::kFloat);
  CHECK(torch::equal(model->dense->weight, torch::ones({4, 4})));
  CHECK(model->dense->weight.requires_grad());  // still a parameter
  CHECK(report.loaded == 3);
  // tied_out shares dense.weight's memory: loaded through the tie.
  CHECK(report.missing ==
        std::vector<std::string>{"dense.bias", "position_ids"});
  CHECK(report.unexpected == std::vector<std::string>{"cls.predictions.bias"});
  CHECK_THAT(report.summary(), Contains("loaded 3 tensors"));
  CHECK_THAT(report.summary(), Contains("dense.bias"));
  CHECK_THAT(report.summary(), Contains("cls.predictions.bias"));

  LoadOptions ignore;
  ignore.ignore_missing = {"^position_ids$", R"(\.bias$)"};
  ignore.ignore_unexpected = {"^cls\\."};
  const LoadReport quiet = load_state_dict(*model, sd, ignore);
  CHECK(quiet.missing.empty());
  CHECK(quiet.unexpected.empty());
  ignore.ignore_missing = {"("};
  CHECK_THROWS_AS(load_state_dict(*model, sd, ignore), std::invalid_argument);
}

TEST_CASE("Shape mismatches are all listed and leave the module untouched",
          "[checkpoint]") {
  Tiny model;
  const auto before = snapshot(*model);
  StateDict sd;
  sd["embeddings.LayerNorm.weight"] = torch::full({4}, 7.0f);  // valid
  sd["dense.weight"] = torch::ones({3, 4});
  sd["dense.bias"] = torch::ones({5});
  const std::string msg =
      runtime_error_of([&] { load_state_dict(*model, sd); });
  CHECK_THAT(msg, Contains("2 mismatches"));
  CHECK_THAT(msg, Contains("'dense.weight': model [4, 4], checkpoint [3, 4]"));
  CHECK_THAT(msg, Contains("'dense.bias': model [4], checkpoint [5]"));
  CHECK_THAT(msg, Contains("is this checkpoint for this model/config?"));
  check_unchanged(*model, before);
}

TEST_CASE(
    "Strict loading throws on missing or unexpected names before "
    "changing anything",
    "[checkpoint]") {
  Tiny model;
  const auto before = snapshot(*model);
  StateDict sd;
  sd["embeddings.LayerNorm.weight"] = torch::full({4}, 7.0f);
  sd["extra"] = torch::ones({1});
  LoadOptions strict;
  strict.strict = true;
  const std::string msg =
      runtime_error_of([&] { load_state_dict(*model, sd, strict); });
  CHECK_THAT(msg, Contains("missing 5"));
  CHECK_THAT(msg, Contains("dense.weight"));
  CHECK_THAT(msg, Contains("unexpected 1 (extra)"));
  check_unchanged(*model, before);

  // A complete state dict passes strict loading.
  Tiny other;
  StateDict full;
  for (const auto& [name, t] : snapshot(*other)) {
    full[name] = t;
  }
  CHECK(load_state_dict(*model, full, strict).loaded == 6);
}

TEST_CASE("save_state_dict writes HF names and format pt that load back",
          "[checkpoint]") {
  const peftcpp::testing::ScratchDir tmp("ckpt");
  Tiny model;
  const fs::path out = tmp.path() / "tiny.safetensors";
  save_state_dict(*model, out, {{"note", "x"}});
  const auto file = SafetensorsFile::open(out);
  CHECK(file->metadata().at("format") == "pt");
  CHECK(file->metadata().at("note") == "x");
  CHECK(file->contains("tied_out"));  // tied tensors: one copy per name
  Tiny fresh;
  LoadOptions strict;
  strict.strict = true;
  load_state_dict(*fresh, load_checkpoint(out), strict);
  const auto a = snapshot(*model);
  for (const auto& [name, t] : snapshot(*fresh)) {
    INFO(name);
    CHECK(torch::equal(t, a.at(name)));
  }
}

TEST_CASE("transformers loads a BERT checkpoint re-written from C++",
          "[checkpoint]") {
  const peftcpp::testing::ScratchDir tmp("ckpt");
  const fs::path ref = checkpoint_fixture("bert/safetensors");
  const StateDict sd = load_checkpoint(checkpoint_fixture("bert/bin"));
  std::vector<std::pair<std::string, at::Tensor>> tensors(sd.begin(), sd.end());
  save_safetensors(tmp.path() / "model.safetensors", tensors,
                   {{"format", "pt"}});
  fs::copy_file(ref / "config.json", tmp.path() / "config.json");
  const auto [rc, output] = run_python_check("hf '" + tmp.path().string() +
                                             "' '" + ref.string() + "'");
  INFO(output);
  CHECK(rc == 0);
}
