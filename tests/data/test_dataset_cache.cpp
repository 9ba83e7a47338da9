// Tokenization of labelled datasets with the real MiniLM tokenizer, and
// the HDF5 cache: hits give identical arrays; other data, tokenizer or
// options never reuse a file; truncated, flipped or foreign files are
// rebuilt, never trusted.

#include <catch2/catch.hpp>

#include <hdf5.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <iostream>

#include "data/dataset/glue.h"
#include "data/dataset/tokenized_dataset.h"
#include "tests/data/dataset_test_util.h"

namespace data = peftcpp::data;
namespace fs = std::filesystem;
using Catch::Contains;
using peftcpp::testing::glue_root;
using peftcpp::testing::message_of;
using peftcpp::testing::minilm_dir;
using peftcpp::testing::minilm_tokenizer;
using peftcpp::testing::read_bytes;
using peftcpp::testing::ScratchDir;
using peftcpp::testing::write_bytes;

namespace {

const data::LabeledDataset& rte_dev() {
  static const data::LabeledDataset d =
      data::load_glue_split(data::glue_task("rte"), glue_root() / "RTE", "dev");
  return d;
}

bool same(const data::TokenizedDataset& a, const data::TokenizedDataset& b) {
  auto same_labels = [&] {
    if (a.labels.size() != b.labels.size())
      return false;
    for (size_t i = 0; i < a.labels.size(); ++i) {
      const bool both_nan = std::isnan(a.labels[i]) && std::isnan(b.labels[i]);
      if (!both_nan && a.labels[i] != b.labels[i])
        return false;
    }
    return true;
  };
  return a.input_ids == b.input_ids && a.token_type_ids == b.token_type_ids &&
         a.offsets == b.offsets && same_labels() && a.kind == b.kind &&
         a.label_names == b.label_names;
}

/// Position of the first bytes of `ids` (as stored: int32 little-endian)
/// in `file`: where the input_ids array lies.
size_t find_ids(const std::string& file, const std::vector<int32_t>& ids) {
  std::string needle(32, '\0');
  std::memcpy(needle.data(), ids.data(), 32);
  return file.find(needle);
}

struct Run {
  data::TokenizedDataset tokens;
  data::CacheOutcome outcome;
  std::string detail;
};

Run cached(const data::LabeledDataset& d, const std::string& fingerprint,
           size_t max_length, const fs::path& dir) {
  data::TokenizeDatasetOptions o;
  o.max_length = max_length;
  Run r;
  r.tokens = data::tokenize_cached(d, minilm_tokenizer(), fingerprint, o, dir,
                                   &r.outcome, &r.detail);
  return r;
}

}  // namespace

TEST_CASE(
    "tokenized rows equal tokenizer.encode with longest_first "
    "truncation, row by row",
    "[data][tokenize]") {
  const auto& d = rte_dev();
  const auto& tok = minilm_tokenizer();
  data::TokenizeDatasetOptions o;
  o.max_length = 64;
  const auto t = data::tokenize_dataset(d, tok, o);
  REQUIRE(t.size() == d.size());
  CHECK(t.offsets.size() == d.size() + 1);
  CHECK(t.label_names == d.label_names);
  CHECK(t.num_labels() == 2);
  data::EncodeOptions e;
  e.max_length = 64;
  e.truncation = data::TruncationStrategy::kLongestFirst;
  size_t truncated = 0;
  for (size_t i = 0; i < d.size(); ++i) {
    const auto& ex = d.examples[i];
    const auto enc = tok.encode(ex.text, *ex.text_pair, e);
    const auto begin = static_cast<size_t>(t.offsets[i]);
    const std::vector<int64_t> ids(t.input_ids.begin() + begin,
                                   t.input_ids.begin() + t.offsets[i + 1]);
    const std::vector<int64_t> types(
        t.token_type_ids.begin() + begin,
        t.token_type_ids.begin() + t.offsets[i + 1]);
    INFO("row " << i);
    CHECK(ids == enc.ids);
    CHECK(types == enc.type_ids);
    CHECK(t.labels[i] == ex.label);
    if (tok.encode(ex.text, *ex.text_pair).size() > 64)
      ++truncated;
  }
  CHECK(truncated > 20);  // RTE's premises are long: truncation is exercised
  CHECK(data::dataset_encode_options(o).add_special_tokens);

  SECTION("options and mixed datasets are checked") {
    o.max_length = 0;
    CHECK_THAT(message_of<std::invalid_argument>(
                   [&] { data::tokenize_dataset(d, tok, o); }),
               Contains("[tokenize_dataset] expected max_length > 0, got 0"));
    auto mixed = d;
    mixed.examples[3].text_pair.reset();
    o.max_length = 64;
    CHECK_THAT(message_of<std::invalid_argument>(
                   [&] { data::tokenize_dataset(mixed, tok, o); }),
               Contains("expected every example a pair, got example 3 is "
                        "single"));
  }
  SECTION("the progress bar does not change the result") {
    o.show_progress = true;
    const auto shown = data::tokenize_dataset(d, tok, o);
    CHECK(same(shown, t));
  }
}

TEST_CASE(
    "the cache: a second call is a hit with the same arrays; other "
    "inputs never reuse a file",
    "[data][cache]") {
  ScratchDir dir("cache");
  const fs::path cache = dir / "nested" / "cache";  // created on demand
  const auto& d = rte_dev();
  const std::string fp = data::tokenizer_fingerprint(minilm_dir());
  data::TokenizeDatasetOptions o64;
  o64.max_length = 64;
  const auto fresh = data::tokenize_dataset(d, minilm_tokenizer(), o64);

  const auto first = cached(d, fp, 64, cache);
  CHECK(first.outcome == data::CacheOutcome::kCreated);
  CHECK(same(first.tokens, fresh));
  const fs::path file = data::tokenized_cache_path(d, fp, o64, cache);
  CHECK(fs::is_regular_file(file));
  CHECK(std::distance(fs::directory_iterator(cache), {}) == 1);  // no temp

  const auto second = cached(d, fp, 64, cache);
  CHECK(second.outcome == data::CacheOutcome::kHit);
  CHECK_THAT(second.detail, Contains(file.filename().string()));
  CHECK(same(second.tokens, fresh));

  SECTION("another max_length") {
    const auto r = cached(d, fp, 32, cache);
    CHECK(r.outcome == data::CacheOutcome::kCreated);
    for (size_t i = 0; i < r.tokens.size(); ++i)
      CHECK(r.tokens.length(i) <= 32);
    CHECK(cached(d, fp, 32, cache).outcome == data::CacheOutcome::kHit);
  }
  SECTION("other data: a text, a label, the label names") {
    auto text = d;
    text.examples[10].text += " And more.";
    auto r = cached(text, fp, 64, cache);
    CHECK(r.outcome == data::CacheOutcome::kCreated);
    CHECK(
        same(r.tokens, data::tokenize_dataset(text, minilm_tokenizer(), o64)));
    auto label = d;
    label.examples[0].label = 1.0f - label.examples[0].label;
    CHECK(cached(label, fp, 64, cache).outcome == data::CacheOutcome::kCreated);
    auto names = d;
    names.label_names = {"yes", "no"};
    r = cached(names, fp, 64, cache);
    CHECK(r.outcome == data::CacheOutcome::kCreated);
    CHECK(r.tokens.label_names == names.label_names);
  }
  SECTION("another tokenizer: its files' bytes change the fingerprint") {
    ScratchDir tok("tokenizer-copy");
    for (const char* f : {"tokenizer.json", "tokenizer_config.json",
                          "special_tokens_map.json", "vocab.txt"})
      fs::copy_file(minilm_dir() / f, tok / f);
    CHECK(data::tokenizer_fingerprint(tok.path()) == fp);
    write_bytes(tok / "vocab.txt", read_bytes(tok / "vocab.txt") + "extra\n");
    const std::string other = data::tokenizer_fingerprint(tok.path());
    CHECK(other != fp);
    CHECK(cached(d, other, 64, cache).outcome == data::CacheOutcome::kCreated);
    CHECK(data::tokenizer_fingerprint(tok / "tokenizer.json") !=
          data::tokenizer_fingerprint(tok / "vocab.txt"));
    CHECK_THAT(message_of<std::runtime_error>(
                   [&] { data::tokenizer_fingerprint(dir.path()); }),
               Contains("[tokenizer_fingerprint] expected tokenizer files "
                        "(tokenizer.json or vocab.txt)"));
  }
  SECTION("a file made for other inputs under this name is stale") {
    data::TokenizeDatasetOptions o32;
    o32.max_length = 32;
    cached(d, fp, 32, cache);
    const fs::path file32 = data::tokenized_cache_path(d, fp, o32, cache);
    fs::copy_file(file, file32, fs::copy_options::overwrite_existing);
    const auto r = cached(d, fp, 32, cache);
    CHECK(r.outcome == data::CacheOutcome::kRebuiltStale);
    CHECK_THAT(r.detail, Contains("stored key differs"));
    CHECK(same(r.tokens, data::tokenize_dataset(d, minilm_tokenizer(), o32)));
    CHECK(cached(d, fp, 32, cache).outcome == data::CacheOutcome::kHit);
  }
}

TEST_CASE("a damaged cache file is rebuilt and the result is correct",
          "[data][cache]") {
  ScratchDir dir("cache-corrupt");
  const auto& d = rte_dev();
  const std::string fp = data::tokenizer_fingerprint(minilm_dir());
  data::TokenizeDatasetOptions o;
  o.max_length = 64;
  const auto fresh = data::tokenize_dataset(d, minilm_tokenizer(), o);
  REQUIRE(cached(d, fp, 64, dir.path()).outcome ==
          data::CacheOutcome::kCreated);
  const fs::path file = data::tokenized_cache_path(d, fp, o, dir.path());
  const std::string good = read_bytes(file);

  auto expect_rebuilt = [&](const std::string& why) {
    const auto r = cached(d, fp, 64, dir.path());
    CHECK(r.outcome == data::CacheOutcome::kRebuiltCorrupt);
    CHECK_THAT(r.detail, Contains(why));
    CHECK(same(r.tokens, fresh));
    // The rebuilt file is good again.
    CHECK(cached(d, fp, 64, dir.path()).outcome == data::CacheOutcome::kHit);
  };
  SECTION("truncated") {
    write_bytes(file, good.substr(0, good.size() / 2));
    expect_rebuilt("HDF5 cannot open it");
  }
  SECTION("a flipped byte in the token ids") {
    const size_t at = find_ids(good, fresh.input_ids);
    REQUIRE(at != std::string::npos);
    std::string bad = good;
    bad[at + 13] = static_cast<char>(bad[at + 13] ^ 0x01);
    write_bytes(file, bad);
    expect_rebuilt("do not match their checksum");
  }
  SECTION("a flipped byte in HDF5's own metadata") {
    std::string bad = good;
    bad[20] = static_cast<char>(bad[20] ^ 0x40);  // in the superblock
    write_bytes(file, bad);
    expect_rebuilt("HDF5 cannot open it");
  }
  SECTION("not an HDF5 file at all") {
    write_bytes(file, "input_ids: 101 2023 102\n");
    expect_rebuilt("not an HDF5 file");
  }
  SECTION("an array missing, an attribute missing") {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    hid_t h = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    REQUIRE(h >= 0);
    REQUIRE(H5Ldelete(h, "labels", H5P_DEFAULT) >= 0);
    REQUIRE(H5Fclose(h) >= 0);
    expect_rebuilt("no readable dataset 'labels'");
    h = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    REQUIRE(h >= 0);
    REQUIRE(H5Adelete(h, "checksum") >= 0);
    REQUIRE(H5Fclose(h) >= 0);
    expect_rebuilt("no readable key or checksum attribute");
  }
}

TEST_CASE(
    "the cache refuses an empty folder name and reports unwritable "
    "folders",
    "[data][cache][errors]") {
  const auto& d = rte_dev();
  data::TokenizeDatasetOptions o;
  CHECK_THAT(message_of<std::invalid_argument>([&] {
               data::tokenize_cached(d, minilm_tokenizer(), "x", o, "");
             }),
             Contains("[tokenize_cached] expected a cache folder, got an "
                      "empty path"));
  ScratchDir dir("cache-unwritable");
  write_bytes(dir / "file", "a file, not a folder");
  CHECK_THAT(message_of<std::runtime_error>([&] {
               data::tokenize_cached(d, minilm_tokenizer(), "x", o,
                                     dir / "file" / "sub");
             }),
             Contains("[tokenize_cached] expected to write the cache file") &&
                 Contains("(hint: is the cache folder writable"));
}

// Timing for the docs, not a check: ./test_datasets "[bench]" -s
TEST_CASE("SST-2 train tokenization with MiniLM, cold and cached",
          "[.][bench][slow]") {
  const auto d = data::load_glue_split(data::glue_task("sst2"),
                                       glue_root() / "SST-2", "train");
  ScratchDir dir("cache-bench");
  const std::string fp = data::tokenizer_fingerprint(minilm_dir());
  auto timed = [&](data::CacheOutcome expected) {
    const auto start = std::chrono::steady_clock::now();
    const auto r = cached(d, fp, 128, dir.path());
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    CHECK(r.outcome == expected);
    return std::make_pair(s, r.tokens.input_ids.size());
  };
  const auto cold = timed(data::CacheOutcome::kCreated);
  const auto warm = timed(data::CacheOutcome::kHit);
  std::cout << "SST-2 train: " << d.size() << " rows, " << cold.second
            << " tokens; cold " << cold.first << " s, cached " << warm.first
            << " s, file "
            << fs::file_size(data::tokenized_cache_path(
                   d, fp, data::TokenizeDatasetOptions{}, dir.path()))
            << " bytes\n";
}
