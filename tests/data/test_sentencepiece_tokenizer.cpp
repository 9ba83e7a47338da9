// Parity with transformers 5's LlamaTokenizer on folders holding only a
// SentencePiece tokenizer.model and tokenizer_config.json: every case that
// tests/fixtures/make_sentencepiece.py wrote (all GLUE dev text columns and
// the hard strings, for a BPE and a unigram model trained on GLUE and for
// the config options transformers reads) is encoded and decoded here and
// compared token for token.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/tokenizer/sentencepiece_model.h"
#include "data/tokenizer/tokenizer.h"
#include "tests/test_paths.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace peftcpp::data;

namespace {

fs::path fixtures() {
  return peftcpp::testing::fixture_dir() / "sentencepiece";
}

json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in)
    throw std::runtime_error("cannot read fixture " + path.string());
  return json::parse(in);
}

const json& manifest() {
  static const json m = read_json(fixtures() / "manifest.json");
  return m;
}

const json& variant(const std::string& name) {
  return manifest().at("variants").at(name);
}

const Tokenizer& load(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto& slot = cache[name];
  if (!slot) {
    slot = std::make_unique<Tokenizer>(Tokenizer::from_pretrained(
        variant(name).at("path").get<std::string>()));
  }
  return *slot;
}

std::vector<json> read_cases(const std::string& name) {
  std::ifstream in(fixtures() / "cases" / (name + ".jsonl"));
  if (!in)
    throw std::runtime_error("cannot read fixture cases of " + name);
  std::vector<json> out;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty())
      out.push_back(json::parse(line));
  }
  return out;
}

std::string show(const std::vector<std::string>& tokens) {
  return json(tokens).dump();
}

// The first field of `c` that `tok` gets wrong, or "".
std::string compare(const Tokenizer& tok, const json& c) {
  const std::string text = c.at("text");
  if (c.contains("pair")) {
    const std::string pair = c.at("pair");
    const Encoding e = tok.encode(text, std::string_view(pair));
    if (e.tokens != c.at("tokens").get<std::vector<std::string>>() ||
        e.ids != c.at("ids").get<std::vector<int64_t>>() ||
        e.type_ids != c.at("type_ids").get<std::vector<int64_t>>()) {
      return "pair encodings differ\n  HF:   " + c.at("tokens").dump() + " / " +
             c.at("type_ids").dump() + "\n  ours: " + show(e.tokens) + " / " +
             json(e.type_ids).dump();
    }
    return "";
  }
  const Encoding e = tok.encode(text);
  if (e.tokens != c.at("tokens").get<std::vector<std::string>>() ||
      e.ids != c.at("ids").get<std::vector<int64_t>>()) {
    return "tokens differ\n  HF:   " + c.at("tokens").dump() + "\n        " +
           c.at("ids").dump() + "\n  ours: " + show(e.tokens) + "\n        " +
           json(e.ids).dump();
  }
  EncodeOptions plain;
  plain.add_special_tokens = false;
  const Encoding p = tok.encode(text, std::nullopt, plain);
  if (p.ids != c.at("plain_ids").get<std::vector<int64_t>>()) {
    return "ids without special tokens differ\n  HF:   " +
           c.at("plain_ids").dump() + "\n  ours: " + json(p.ids).dump();
  }
  for (bool skip : {false, true}) {
    const std::string want = c.at(skip ? "decoded_skip" : "decoded");
    const std::string got = tok.decode(e.ids, skip);
    if (got != want) {
      return std::string("decode") + (skip ? "(skip_special_tokens)" : "") +
             ": expected " + json(want).dump() + ", got " + json(got).dump();
    }
  }
  return "";
}

// Every case of cases/<name>.jsonl; reports the first mismatches.
void check_cases(const std::string& name, size_t min_cases) {
  const std::vector<json> cases = read_cases(name);
  REQUIRE(cases.size() == variant(name).at("cases").get<size_t>());
  REQUIRE(cases.size() >= min_cases);
  const Tokenizer& tok = load(name);
  size_t failures = 0;
  std::ostringstream report;
  for (const json& c : cases) {
    const std::string diff = compare(tok, c);
    if (!diff.empty() && ++failures <= 5) {
      report << "\ntext " << c.at("text").dump()
             << (c.contains("pair") ? "\npair " + c.at("pair").dump() : "")
             << "\n  " << diff << "\n";
    }
  }
  INFO(name << ": " << failures << " of " << cases.size() << " cases differ"
            << report.str());
  CHECK(failures == 0);
}

}  // namespace

TEST_CASE(
    "A LLaMA-2 tokenizer.model folder matches transformers on all GLUE dev "
    "sentences and the hard strings",
    "[tokenizer][sentencepiece][glue]") {
  const size_t glue = manifest().at("glue_dev_texts");
  CHECK(glue > 17000);  // every text column of every GLUE dev set
  check_cases("bpe", glue);
  CHECK(variant("bpe").at("add_bos_token") == true);
  CHECK(variant("bpe").at("prepend_scheme") == "first");
}

TEST_CASE(
    "A unigram tokenizer.model matches transformers, which builds BPE from "
    "it and ignores its normalizer",
    "[tokenizer][sentencepiece][glue]") {
  check_cases("unigram", manifest().at("glue_dev_texts"));
  // No add_bos_token in tokenizer_config.json: transformers 5 adds none.
  CHECK(variant("unigram").at("add_bos_token") == false);
  EncodeOptions plain;
  plain.add_special_tokens = false;
  const Tokenizer& tok = load("unigram");
  CHECK(tok.encode("x").ids == tok.encode("x", std::nullopt, plain).ids);
}

TEST_CASE(
    "tokenizer_config.json's legacy, add_eos_token, add_prefix_space and "
    "pad_token change the pipeline as in transformers",
    "[tokenizer][sentencepiece]") {
  check_cases("bpe_legacy_eos", 2000);
  CHECK(variant("bpe_legacy_eos").at("prepend_scheme") == "always");
  check_cases("bpe_no_prefix_space", 2000);
  CHECK(variant("bpe_no_prefix_space").at("prepend_scheme") == "never");
  const Tokenizer& tok = load("bpe_no_prefix_space");
  REQUIRE(tok.pad_token().has_value());
  CHECK(tok.pad_token()->token == "</s>");
  CHECK(tok.pad_token()->id == 2);
  CHECK(load("bpe").model_max_length() == 4096u);
}

TEST_CASE(
    "Where libsentencepiece's own encoder differs from transformers, we "
    "follow transformers",
    "[tokenizer][sentencepiece]") {
  // A leading space (libsentencepiece prepends another '▁'), an added token
  // at the start, the unigram model's nmt_nfkc normalizer and its own
  // unigram segmentation: the fixture kept such inputs with both answers.
  for (const std::string name : {"bpe", "unigram"}) {
    const json& differs = variant(name).at("spm_differs");
    INFO(name);
    REQUIRE(differs.size() > 0);
    const Tokenizer& tok = load(name);
    EncodeOptions plain;
    plain.add_special_tokens = false;
    for (const json& d : differs) {
      INFO("text " << d.at("text").dump());
      const auto tokens =
          tok.encode(d.at("text").get<std::string>(), std::nullopt, plain)
              .tokens;
      CHECK(tokens == d.at("hf").get<std::vector<std::string>>());
      CHECK(tokens != d.at("spm").get<std::vector<std::string>>());
    }
  }
}

TEST_CASE("from_sentencepiece takes the options directly",
          "[tokenizer][sentencepiece]") {
  const fs::path model =
      fs::path(variant("bpe").at("path").get<std::string>()) /
      "tokenizer.model";
  SentencePieceOptions o;
  o.add_bos_token = true;
  o.add_eos_token = true;
  const Tokenizer tok = Tokenizer::from_sentencepiece(model, o);
  const Encoding e = tok.encode("Hello world", std::string_view("again"));
  REQUIRE(e.ids.size() >= 6);
  CHECK(e.ids.front() == 1);
  CHECK(e.ids.back() == 2);
  CHECK(e.tokens.front() == "<s>");
  // The pair template restarts with <s> and gives B type id 1.
  size_t second_bos = 0;
  for (size_t i = 1; i < e.ids.size(); ++i) {
    if (e.ids[i] == 1)
      second_bos = i;
  }
  REQUIRE(second_bos > 0);
  CHECK(e.type_ids[second_bos - 1] == 0);
  CHECK(e.type_ids[second_bos] == 1);
  CHECK(tok.num_special_tokens_to_add(false) == 2);
  CHECK(tok.num_special_tokens_to_add(true) == 4);
  // Each sequence starts its own input, so "again" gets its '▁' too.
  CHECK(tok.decode(e.ids, true) == "Hello world again");
  CHECK(tok.vocab_size() == 1000u);

  // The pieces as libsentencepiece reads them: LLaMA's reserved ids and the
  // 256 byte pieces of byte_fallback.
  const auto pieces = read_sentencepiece_model(model);
  REQUIRE(pieces.size() == 1000u);
  CHECK(pieces[0].piece == "<unk>");
  CHECK(pieces[0].type == PieceType::kUnknown);
  CHECK(pieces[1].type == PieceType::kControl);
  CHECK(pieces[3].piece == "<0x00>");
  CHECK(pieces[3].type == PieceType::kByte);
  CHECK(pieces[300].type == PieceType::kNormal);
}

TEST_CASE("Unigram user-defined and control pieces become added tokens",
          "[tokenizer][sentencepiece]") {
  const Tokenizer& tok = load("unigram");
  const auto ctrl = tok.token_to_id("<ctrl>");
  const auto ent = tok.token_to_id("<ent>");
  REQUIRE(ctrl.has_value());
  REQUIRE(ent.has_value());
  const Encoding e = tok.encode("a<ent>b<ctrl>");
  CHECK(std::count(e.ids.begin(), e.ids.end(), *ent) == 1);
  CHECK(std::count(e.ids.begin(), e.ids.end(), *ctrl) == 1);
  // Control pieces are special (skipped), user-defined ones are not.
  const std::string skipped = tok.decode(e.ids, true);
  CHECK(skipped.find("<ent>") != std::string::npos);
  CHECK(skipped.find("<ctrl>") == std::string::npos);
}

TEST_CASE("Broken SentencePiece folders fail with the file in the message",
          "[tokenizer][sentencepiece]") {
  peftcpp::testing::ScratchDir dir("spm_errors");
  { std::ofstream(dir / "tokenizer.model") << "not a protobuf"; }
  CHECK_THROWS_WITH(Tokenizer::from_pretrained(dir.path()),
                    Catch::Contains("[read_sentencepiece_model] expected a "
                                    "SentencePiece model file") &&
                        Catch::Contains("tokenizer.model"));
  CHECK_THROWS_WITH(Tokenizer::from_sentencepiece(dir / "absent.model"),
                    Catch::Contains("absent.model") &&
                        Catch::Contains("[read_sentencepiece_model]"));

  const fs::path model =
      fs::path(variant("bpe").at("path").get<std::string>()) /
      "tokenizer.model";
  fs::copy_file(model, dir / "tokenizer.model",
                fs::copy_options::overwrite_existing);
  {
    std::ofstream(dir / "tokenizer_config.json")
        << R"({"tokenizer_class": "T5Tokenizer"})";
  }
  CHECK_THROWS_WITH(
      Tokenizer::from_pretrained(dir.path()),
      Catch::Contains("expected tokenizer_class LlamaTokenizer beside "
                      "tokenizer.model, got T5Tokenizer"));
  {
    std::ofstream(dir / "tokenizer_config.json")
        << R"({"add_bos_token": "yes"})";
  }
  CHECK_THROWS_WITH(Tokenizer::from_pretrained(dir.path()),
                    Catch::Contains("add_bos_token"));
}
