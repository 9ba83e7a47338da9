// GGUF files against the gguf Python package (tests/fixtures/make_gguf.py):
// the metadata and tensor table of the real SmolLM2 file as GGUFReader reads
// them, dequantization bit for bit equal to gguf.quants.dequantize (synthetic
// tensors of every supported type, every tensor of SmolLM2), and broken or
// unsupported files refused with messages that say what is wrong.

#include <c10/util/Half.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "models/gguf/dequantize.h"
#include "models/gguf/gguf_file.h"
#include "tests/models/checkpoint_test_helpers.h"
#include "tests/test_paths.h"

using namespace peftcpp::gguf;
namespace fs = std::filesystem;
using json = nlohmann::json;
using Catch::Matchers::Contains;
using peftcpp::testing::read_bytes;
using peftcpp::testing::runtime_error_of;

namespace peftcpp::testing {
std::string sha256_hex(const void* data, size_t size);
}

namespace {

fs::path gguf_fixture(const std::string& name) {
  return peftcpp::testing::fixture_dir() / "gguf" / name;
}

json read_json(const fs::path& p) {
  std::ifstream in(p);
  REQUIRE(in.good());
  return json::parse(in);
}

fs::path smollm2_path() {
  std::ifstream in(gguf_fixture("smollm2/path.txt"));
  std::string line;
  std::getline(in, line);
  REQUIRE(!line.empty());
  return line;
}

std::vector<float> dequantized(const GgufFile& file, const TensorInfo& info) {
  std::vector<float> out(static_cast<size_t>(info.num_elements()));
  dequantize(info.type, file.tensor_data(info), info.num_elements(), out.data(),
             info.name);
  return out;
}

// Number of values whose bits differ (NaN payloads included).
size_t bit_mismatches(const std::vector<float>& a, const std::string& b) {
  REQUIRE(a.size() * 4 == b.size());
  size_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    n += std::memcmp(&a[i], b.data() + 4 * i, 4) != 0;
  }
  return n;
}

// A copy of `src` in a scratch folder with `bytes` written at `offset`.
fs::path patched_copy(const peftcpp::testing::ScratchDir& dir,
                      const fs::path& src, size_t offset,
                      const std::string& bytes) {
  std::string blob = read_bytes(src);
  blob.replace(offset, bytes.size(), bytes);
  const fs::path out = dir / src.filename().string();
  std::ofstream(out, std::ios::binary) << blob;
  return out;
}

}  // namespace

TEST_CASE(
    "every supported type dequantizes bit for bit like "
    "gguf.quants.dequantize",
    "[gguf][dequantize]") {
  const GgufFile file = GgufFile::open(gguf_fixture("dequant.gguf"));
  const json meta = read_json(gguf_fixture("dequant.json"));
  REQUIRE(meta.size() == 6);
  for (const auto& [name, entry] : meta.items()) {
    INFO(name);
    const TensorInfo* info = file.find_tensor(name);
    REQUIRE(info != nullptr);
    CHECK(ggml_type_name(info->type) == name);
    CHECK(info->shape == entry["shape"].get<std::vector<int64_t>>());
    CHECK(info->nbytes == entry["nbytes"].get<uint64_t>());
    CHECK(can_dequantize(info->type));
    const std::string ref =
        read_bytes(gguf_fixture("dequant/" + name + ".f32"));
    CHECK(bit_mismatches(dequantized(file, *info), ref) == 0);
  }
}

TEST_CASE("half_to_float widens every float16 bit pattern exactly",
          "[gguf][dequantize]") {
  size_t mismatches = 0;
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    const float ours = half_to_float(static_cast<uint16_t>(bits));
    const float ref = static_cast<float>(
        c10::Half(static_cast<uint16_t>(bits), c10::Half::from_bits()));
    // c10 does not keep NaN payloads; numpy (and we) do: NaN stays NaN.
    const bool same =
        std::isnan(ref) ? std::isnan(ours) : std::memcmp(&ours, &ref, 4) == 0;
    mismatches += !same;
  }
  CHECK(mismatches == 0);
  CHECK(half_to_float(0x7E01) != half_to_float(0x7E01));  // NaN
  uint32_t payload;
  const float nan = half_to_float(0x7E01);
  std::memcpy(&payload, &nan, 4);
  CHECK(payload == 0x7FC02000u);  // numpy's half -> float keeps the payload
}

TEST_CASE("the real SmolLM2 file reads like GGUFReader reads it",
          "[gguf][file][slow]") {
  const auto t0 = std::chrono::steady_clock::now();
  const GgufFile file = GgufFile::open(smollm2_path());
  const double open_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count();
  WARN("SmolLM2 GGUF open + parse: " << open_s * 1000 << " ms");
  // 49,152 tokens and 48,900 merges must not make opening slow.
  CHECK(open_s < 1.0);
  CHECK(file.version() == 3);

  const json meta = read_json(gguf_fixture("smollm2/metadata.json"));
  CHECK(file.metadata().size() == meta.size());
  for (const auto& [key, ref] : meta.items()) {
    INFO(key);
    REQUIRE(file.has(key));
    const json& ours = file.get(key);
    if (ref.is_object()) {  // an array: its length, head and tail
      REQUIRE(ours.is_array());
      const size_t n = ref["length"].get<size_t>();
      REQUIRE(ours.size() == n);
      const size_t head = ref["head"].size(), tail = ref["tail"].size();
      for (size_t i = 0; i < head; ++i) {
        CHECK(ours[i] == ref["head"][i]);
      }
      for (size_t i = 0; i < tail; ++i) {
        CHECK(ours[n - tail + i] == ref["tail"][i]);
      }
    } else {
      CHECK(ours == ref);
    }
  }
  CHECK(file.get_string("general.architecture") == "llama");
  CHECK(file.get_int("llama.block_count") == 30);
  CHECK(file.get_float("llama.rope.freq_base") == 100000.0);
  CHECK(file.get_bool("tokenizer.ggml.add_bos_token") == false);
  CHECK(file.get_string_array("tokenizer.ggml.tokens").size() == 49152);
  CHECK(file.get_string_array("tokenizer.ggml.merges").size() == 48900);
  CHECK(file.get_int_array("tokenizer.ggml.token_type").size() == 49152);
  CHECK(file.find_int("llama.expert_count") == std::nullopt);
  CHECK(file.find_string("tokenizer.ggml.model") == "gpt2");

  const json tensors = read_json(gguf_fixture("smollm2/tensors.json"));
  REQUIRE(file.tensors().size() == tensors.size());
  for (const auto& [name, ref] : tensors.items()) {
    INFO(name);
    const TensorInfo* info = file.find_tensor(name);
    REQUIRE(info != nullptr);
    CHECK(info == &file.tensors()[ref["index"].get<size_t>()]);
    CHECK(ggml_type_name(info->type) == ref["type"].get<std::string>());
    CHECK(info->shape == ref["shape"].get<std::vector<int64_t>>());
    CHECK(info->offset == ref["offset"].get<uint64_t>());
    CHECK(info->nbytes == ref["nbytes"].get<uint64_t>());
  }
  CHECK(file.find_tensor("blk.30.attn_q.weight") == nullptr);
}

TEST_CASE("every SmolLM2 tensor dequantizes to the gguf package's values",
          "[gguf][dequantize][slow]") {
  const json tensors = read_json(gguf_fixture("smollm2/tensors.json"));
  const auto t0 = std::chrono::steady_clock::now();
  const GgufFile file = GgufFile::open(smollm2_path());
  std::map<std::string, std::vector<float>> values;
  for (const TensorInfo& info : file.tensors()) {
    values[info.name] = dequantized(file, info);
  }
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count();
  WARN("SmolLM2 GGUF open + dequantize all " << file.tensors().size()
                                             << " tensors: " << load_s << " s");
  size_t compared = 0;
  for (const auto& [name, ref] : tensors.items()) {
    INFO(name);
    REQUIRE(ref.contains("sha256"));  // every type of this file is supported
    const std::vector<float>& v = values.at(name);
    CHECK(peftcpp::testing::sha256_hex(v.data(), v.size() * 4) ==
          ref["sha256"].get<std::string>());
    ++compared;
  }
  CHECK(compared == 272);
}

TEST_CASE("a type we cannot dequantize is refused by name",
          "[gguf][dequantize][errors]") {
  const GgufFile file = GgufFile::open(gguf_fixture("errors/q6_k.gguf"));
  const TensorInfo* info = file.find_tensor("blk.0.attn_q.weight");
  REQUIRE(info != nullptr);
  CHECK(ggml_type_name(info->type) == "Q6_K");
  CHECK(info->shape == std::vector<int64_t>{256, 2});
  CHECK(info->nbytes == 420);
  CHECK_FALSE(can_dequantize(info->type));
  std::vector<float> out(512);  // ggml [256, 2]: two Q6_K blocks
  const std::string msg = runtime_error_of([&] {
    dequantize(info->type, file.tensor_data(*info), 512, out.data(),
               "blk.0.attn_q.weight");
  });
  CHECK_THAT(msg, Contains("[blk.0.attn_q.weight] expected one of F32, F16, "
                           "BF16, Q8_0, Q4_0, Q4_1, got Q6_K (hint: "));
  CHECK(ggml_type_name(static_cast<GgmlType>(123)) == "type 123");
  CHECK_THROWS_AS(dequantize(GgmlType::kQ8_0, file.tensor_data(*info), 33,
                             out.data(), "odd"),
                  std::invalid_argument);
}

TEST_CASE("broken GGUF files are refused at open with what is wrong",
          "[gguf][file][errors]") {
  const json cuts = read_json(gguf_fixture("errors/cuts.json"));
  SECTION("cut inside the tensor table") {
    const std::string msg = runtime_error_of(
        [] { GgufFile::open(gguf_fixture("errors/truncated_table.gguf")); });
    CHECK_THAT(msg, Contains("truncated_table.gguf'] expected"));
    CHECK_THAT(msg, Contains("tensor table entry 2 of 6"));
    CHECK_THAT(msg, Contains("(hint: the file is truncated)"));
  }
  SECTION("cut inside the last tensor's data") {
    const std::string msg = runtime_error_of(
        [] { GgufFile::open(gguf_fixture("errors/truncated_data.gguf")); });
    CHECK_THAT(msg, Contains("the data of tensor '" +
                             cuts["last_tensor"].get<std::string>() + "'"));
    CHECK_THAT(msg, Contains("got it ends 10 bytes past the end of the file"));
  }
  SECTION("wrong magic") {
    const std::string msg = runtime_error_of(
        [] { GgufFile::open(gguf_fixture("errors/bad_magic.gguf")); });
    CHECK_THAT(msg, Contains("expected the magic \"GGUF\", got \"GGML\""));
  }
  SECTION("unsupported versions") {
    peftcpp::testing::ScratchDir dir("gguf_version");
    for (const auto& [version, hint] :
         {std::pair<char, std::string>{1, "re-converted"},
          {4, "newer GGUF version"}}) {
      const fs::path p = patched_copy(dir, gguf_fixture("dequant.gguf"), 4,
                                      std::string(1, version));
      const std::string msg = runtime_error_of([&] { GgufFile::open(p); });
      CHECK_THAT(msg, Contains("expected GGUF version 2 or 3, got version " +
                               std::to_string(int{version})));
      CHECK_THAT(msg, Contains(hint));
    }
  }
  SECTION("an unknown metadata value type") {
    // The first key of a GGUFWriter file is general.architecture: its type
    // follows the 24-byte header and the key (u64 length + 20 bytes).
    peftcpp::testing::ScratchDir dir("gguf_value_type");
    const fs::path p = patched_copy(dir, gguf_fixture("dequant.gguf"),
                                    24 + 8 + 20, std::string(1, '\x0d'));
    const std::string msg = runtime_error_of([&] { GgufFile::open(p); });
    CHECK_THAT(msg, Contains("expected a metadata value type 0-12 for "
                             "metadata entry 0 of"));
    CHECK_THAT(msg, Contains("('general.architecture'), got type 13"));
  }
  SECTION("a missing file and a file of another format") {
    CHECK_THAT(runtime_error_of([] { GgufFile::open("/nonexistent.gguf"); }),
               Contains("[gguf '/nonexistent.gguf'] expected a readable file"));
    CHECK_THAT(
        runtime_error_of([] { GgufFile::open(gguf_fixture("dequant.json")); }),
        Contains("expected the magic \"GGUF\""));
  }
}

TEST_CASE("metadata lookups name the key, the file and a close key",
          "[gguf][file][errors]") {
  GgufFile file = GgufFile::open(gguf_fixture("dequant.gguf"));
  CHECK(file.get_string("general.architecture") == "llama");
  try {
    file.get_string("general.architectur");
    FAIL("expected std::out_of_range");
  } catch (const std::out_of_range& e) {
    CHECK_THAT(e.what(), Contains("expected a metadata key "
                                  "'general.architectur', got none (hint: did "
                                  "you mean 'general.architecture'?)"));
  }
  CHECK_THAT(runtime_error_of([&] { file.get_int("general.architecture"); }),
             Contains("expected an integer for metadata key "
                      "'general.architecture', got a string \"llama\""));
  CHECK(file.find_float("general.alignment") == std::nullopt);

  // Moving keeps the mapping: tensor data read through the new owner.
  const TensorInfo info = *file.find_tensor("F32");
  const std::vector<float> before = dequantized(file, info);
  GgufFile moved = std::move(file);
  const std::vector<float> after =
      dequantized(moved, *moved.find_tensor("F32"));
  REQUIRE(after.size() == before.size());
  CHECK(std::memcmp(after.data(), before.data(), 4 * after.size()) == 0);
  CHECK(moved.path().filename() == "dequant.gguf");
}
