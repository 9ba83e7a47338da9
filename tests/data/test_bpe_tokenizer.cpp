// Parity with Hugging Face tokenizers for BPE tokenizers: the GPT-2,
// RoBERTa, LLaMA-3, Qwen2, SmolLM2 (real) and LLaMA-2 (converted
// SentencePiece) style tokenizers that tests/fixtures/make_bpe_tokenizer.py
// built, on every GLUE dev sentence, GLUE pairs and the hard strings: ids,
// type ids, tokens, special-token masks, ids without special tokens and
// decoded text (with and without special tokens), then batch padding on
// both sides. Unit cases pin HF's split behaviors and the loading errors.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/tokenizer/byte_level.h"
#include "data/tokenizer/regex_split.h"
#include "data/tokenizer/tokenizer.h"
#include "tests/test_paths.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace peftcpp::data;

namespace {

fs::path bpe_fixtures() {
  return peftcpp::testing::fixture_dir() / "bpe_tokenizer";
}

// Paths in the manifest are relative to the fixture folder.
fs::path tokenizer_path(const json& entry) {
  return bpe_fixtures() / entry.at("path").get<std::string>();
}

json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in)
    throw std::runtime_error("cannot read fixture " + path.string());
  return json::parse(in);
}

const json& manifest() {
  static const json m = read_json(bpe_fixtures() / "manifest.json");
  return m;
}

const Tokenizer& load(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto& slot = cache[name];
  if (!slot) {
    const json& t = manifest().at("tokenizers").at(name);
    const fs::path path = tokenizer_path(t);
    slot = std::make_unique<Tokenizer>(t.at("load") == "from_pretrained"
                                           ? Tokenizer::from_pretrained(path)
                                           : Tokenizer::from_file(path));
  }
  return *slot;
}

std::vector<json> read_cases(const std::string& name) {
  const fs::path path = bpe_fixtures() / name / "cases.jsonl";
  std::ifstream in(path);
  if (!in)
    throw std::runtime_error("cannot read fixture " + path.string());
  std::vector<json> out;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty())
      out.push_back(json::parse(line));
  }
  return out;
}

std::string show_case(const json& c, const std::string& what, const json& want,
                      const json& got) {
  std::string out = what + " differ for text " + c.at("text").dump();
  if (!c.at("pair").is_null())
    out += " / pair " + c.at("pair").dump();
  return out + "\n  HF:   " + want.dump() + "\n  ours: " + got.dump();
}

// Encodes every case (in parallel, as a batch) and compares each field;
// reports the first mismatches of each field and counts them all.
void check_parity(const std::string& name) {
  const Tokenizer& tok = load(name);
  const std::vector<json> cases = read_cases(name);
  std::map<std::string, size_t> expected_counts;
  for (const auto& [set, n] :
       manifest().at("tokenizers").at(name).at("counts").items()) {
    expected_counts[set] = n.get<size_t>();
  }
  std::map<std::string, size_t> counts;
  std::vector<TextInput> inputs;
  for (const json& c : cases) {
    ++counts[c.at("set").get<std::string>()];
    TextInput in{c.at("text").get<std::string>(), std::nullopt};
    if (!c.at("pair").is_null())
      in.pair = c.at("pair").get<std::string>();
    inputs.push_back(std::move(in));
  }
  CHECK(counts == expected_counts);
  REQUIRE(counts.at("glue") > 10000);

  const std::vector<Encoding> got = tok.encode_batch(inputs);
  EncodeOptions plain;
  plain.add_special_tokens = false;
  const std::vector<Encoding> got_plain = tok.encode_batch(inputs, plain);
  REQUIRE(got.size() == cases.size());

  std::map<std::string, size_t> mismatches;
  std::vector<std::string> examples;
  const auto record = [&](const json& c, const std::string& field,
                          const json& want, const json& ours) {
    if (want == ours)
      return;
    if (mismatches[field]++ < 3)
      examples.push_back(show_case(c, field, want, ours));
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const json& c = cases[i];
    const Encoding& e = got[i];
    record(c, "ids", c.at("ids"), json(e.ids));
    record(c, "tokens", c.at("tokens"), json(e.tokens));
    record(c, "type_ids", c.at("type_ids"), json(e.type_ids));
    record(c, "special_tokens_mask", c.at("special_tokens_mask"),
           json(e.special_tokens_mask));
    record(c, "ids without special tokens", c.at("ids_plain"),
           json(got_plain[i].ids));
    // Decode HF's ids, so a decode mismatch is never an encode one.
    const auto ids = c.at("ids").get<std::vector<int64_t>>();
    record(c, "decode", c.at("decoded"), json(tok.decode(ids, false)));
    record(c, "decode(skip_special_tokens)", c.at("decoded_skip"),
           json(tok.decode(ids, true)));
  }
  for (const std::string& example : examples)
    UNSCOPED_INFO(example);
  INFO(name << ": " << cases.size() << " cases");
  for (const char* field : {"ids", "tokens", "type_ids", "special_tokens_mask",
                            "ids without special tokens", "decode",
                            "decode(skip_special_tokens)"}) {
    INFO(field);
    CHECK(mismatches[field] == 0);
  }
}

void check_padding(const std::string& name) {
  const Tokenizer& base = load(name);
  const json ref = read_json(bpe_fixtures() / name / "padding.json");
  // A copy would share nothing; the padding token is set on a fresh load.
  const json& t = manifest().at("tokenizers").at(name);
  Tokenizer tok = t.at("load") == "from_pretrained"
                      ? Tokenizer::from_pretrained(tokenizer_path(t))
                      : Tokenizer::from_file(tokenizer_path(t));
  REQUIRE(base.token_to_id(ref.at("pad_token").get<std::string>()) ==
          ref.at("pad_id").get<int64_t>());
  tok.set_pad_token(PadToken{ref.at("pad_id").get<int64_t>(), 0,
                             ref.at("pad_token").get<std::string>()});
  std::vector<TextInput> inputs;
  for (const json& text : ref.at("texts"))
    inputs.push_back(TextInput{text.get<std::string>(), std::nullopt});
  for (const char* side : {"left", "right"}) {
    EncodeOptions o;
    o.padding = PaddingStrategy::kLongest;
    o.padding_side = std::string(side) == "left" ? Side::kLeft : Side::kRight;
    const std::vector<Encoding> got = tok.encode_batch(inputs, o);
    const json& want = ref.at(side);
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      INFO(name << " padding " << side << ", text " << ref.at("texts")[i]);
      CHECK(json(got[i].ids) == want[i].at("ids"));
      CHECK(json(got[i].attention_mask) == want[i].at("attention_mask"));
      CHECK(json(got[i].tokens) == want[i].at("tokens"));
    }
  }
}

}  // namespace

TEST_CASE("GPT-2 style byte-level BPE matches HF on GLUE dev and hard strings",
          "[tokenizer][bpe]") {
  check_parity("gpt2");
  check_padding("gpt2");
}

TEST_CASE("RoBERTa style BPE from a transformers folder matches HF",
          "[tokenizer][bpe]") {
  check_parity("roberta");
  check_padding("roberta");
  const Tokenizer& tok = load("roberta");
  CHECK(tok.model_max_length() == size_t{512});
  REQUIRE(tok.pad_token().has_value());
  CHECK(tok.pad_token()->token == "<pad>");
  CHECK(tok.num_special_tokens_to_add(false) == 2);
  CHECK(tok.num_special_tokens_to_add(true) == 4);
}

TEST_CASE("LLaMA-3 style BPE (Split regex, ignore_merges) matches HF",
          "[tokenizer][bpe]") {
  check_parity("llama3");
  check_padding("llama3");
}

TEST_CASE("Qwen2 style BPE (NFC, Split regex) matches HF", "[tokenizer][bpe]") {
  check_parity("qwen2");
  check_padding("qwen2");
}

TEST_CASE("The real SmolLM2 tokenizer written from its GGUF matches HF",
          "[tokenizer][bpe]") {
  check_parity("smollm2");
  check_padding("smollm2");
  CHECK(load("smollm2").vocab_size() == 49152);
}

TEST_CASE("LLaMA-2 style converted SentencePiece BPE matches HF",
          "[tokenizer][bpe]") {
  check_parity("llama2");
  check_padding("llama2");
}

TEST_CASE("Split behaviors cut text as HF documents them", "[tokenizer][bpe]") {
  // The example of tokenizers' SplitDelimiterBehavior documentation.
  const std::string text = "the-final--countdown";
  const auto split = [&](SplitBehavior b, bool invert = false) {
    std::vector<std::string_view> words;
    split_spans(text,
                cover_with_gaps(text.size(),
                                Pattern::literal("-").find_all(text), invert),
                b, words);
    return std::vector<std::string>(words.begin(), words.end());
  };
  using V = std::vector<std::string>;
  CHECK(split(SplitBehavior::kRemoved) == V{"the", "final", "countdown"});
  CHECK(split(SplitBehavior::kIsolated) ==
        V{"the", "-", "final", "-", "-", "countdown"});
  CHECK(split(SplitBehavior::kMergedWithPrevious) ==
        V{"the-", "final-", "-", "countdown"});
  CHECK(split(SplitBehavior::kMergedWithNext) ==
        V{"the", "-final", "-", "-countdown"});
  CHECK(split(SplitBehavior::kContiguous) ==
        V{"the", "-", "final", "--", "countdown"});
  CHECK(split(SplitBehavior::kRemoved, /*invert=*/true) == V{"-", "-", "-"});
}

TEST_CASE("Byte-level decoding repairs invalid UTF-8 as Rust's lossy decoding",
          "[tokenizer][bpe]") {
  // One U+FFFD per maximal invalid subsequence, not per byte.
  CHECK(utf8_lossy("a\xE2\x82") == "a\xEF\xBF\xBD");
  CHECK(utf8_lossy("\xF0\x9F\x98\x80") == "\xF0\x9F\x98\x80");
  CHECK(utf8_lossy("\xC0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD");
  CHECK(utf8_lossy("\xED\xA0\x80x") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDx");
  CHECK(to_byte_level(" \n") == "\xC4\xA0\xC4\x8A");  // "Ġ", "Ċ"
}

TEST_CASE("BPE loading errors name the file, the value and the choices",
          "[tokenizer][bpe][errors]") {
  const json base =
      read_json(tokenizer_path(manifest().at("tokenizers").at("gpt2")));
  const auto message = [](const json& j) {
    try {
      Tokenizer::from_json(j, "mem.json");
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  json unknown = base;
  unknown["model"]["type"] = "Unigram";
  const std::string m = message(unknown);
  CHECK_THAT(m, Catch::Contains("mem.json: model"));
  CHECK_THAT(m, Catch::Contains("type \"Unigram\""));
  CHECK_THAT(m, Catch::Contains("supported type (WordPiece, BPE)"));

  json dropout = base;
  dropout["model"]["dropout"] = 0.1;
  CHECK_THAT(message(dropout), Catch::Contains("mem.json: model.dropout") &&
                                   Catch::Contains("set it to null"));

  json bad_merge = base;
  bad_merge["model"]["merges"][0] = "a b c";
  CHECK_THAT(message(bad_merge),
             Catch::Contains("mem.json: model.merges[0]") &&
                 Catch::Contains("two tokens separated by one space"));

  json missing = base;
  missing["model"]["merges"][0] = json::array({"no-such-token", "x"});
  CHECK_THAT(message(missing), Catch::Contains("no-such-token"));

  json regex = base;
  regex["pre_tokenizer"] = {{"type", "Split"},
                            {"pattern", {{"Regex", "(unclosed"}}},
                            {"behavior", "Isolated"},
                            {"invert", false}};
  CHECK_THAT(message(regex),
             Catch::Contains("mem.json: pre_tokenizer.pattern") &&
                 Catch::Contains("(unclosed"));

  json behavior = regex;
  behavior["pre_tokenizer"]["pattern"] = {{"String", "-"}};
  behavior["pre_tokenizer"]["behavior"] = "Sideways";
  CHECK_THAT(message(behavior), Catch::Contains("\"Sideways\"") &&
                                    Catch::Contains("MergedWithNext"));
}

TEST_CASE("Tokenizer::from_json builds the same tokenizer as from_file",
          "[tokenizer][bpe]") {
  const fs::path path =
      tokenizer_path(manifest().at("tokenizers").at("llama3"));
  const Tokenizer a = Tokenizer::from_json(read_json(path), path.string());
  const Tokenizer& b = load("llama3");
  const std::string text = "Hello world, it's 12345 tokens!\n\n  ok";
  CHECK(a.encode(text).ids == b.encode(text).ids);
  CHECK(a.vocab_size() == b.vocab_size());
}
