// Parity with Hugging Face tokenizers: every case that
// tests/fixtures/make_tokenizer.py wrote (GLUE dev sets, hard strings,
// truncation and padding grids, every Unicode code point) is encoded here
// and compared field by field: ids, type ids, tokens, masks, decoded text,
// or the error HF raises.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/tokenizer/tokenizer.h"
#include "data/tokenizer/unicode.h"
#include "tests/test_paths.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace peftcpp::data;

namespace {

fs::path tokenizer_fixtures() {
  return peftcpp::testing::fixture_dir() / "tokenizer";
}

json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in)
    throw std::runtime_error("cannot read fixture " + path.string());
  return json::parse(in);
}

const json& manifest() {
  static const json m = read_json(tokenizer_fixtures() / "manifest.json");
  return m;
}

// Loading a 30k vocabulary costs tens of milliseconds: once per variant.
const Tokenizer& load(const std::string& variant) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto& slot = cache[variant];
  if (!slot) {
    const json& v = manifest().at("variants").at(variant);
    const fs::path path = v.at("path").get<std::string>();
    slot = std::make_unique<Tokenizer>(v.at("load") == "from_file"
                                           ? Tokenizer::from_file(path)
                                           : Tokenizer::from_pretrained(path));
  }
  return *slot;
}

std::vector<json> read_cases(const std::string& variant,
                             const std::string& set) {
  const fs::path path =
      tokenizer_fixtures() / "cases" / variant / (set + ".jsonl");
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

Side side_of(const json& s) {
  return s == "left" ? Side::kLeft : Side::kRight;
}

EncodeOptions options_of(const json& o) {
  EncodeOptions out;
  if (o.is_null())
    return out;
  out.add_special_tokens = o.at("add_special_tokens");
  if (!o.at("max_length").is_null())
    out.max_length = o.at("max_length");
  const std::string t = o.at("truncation");
  out.truncation = t == "only_first"        ? TruncationStrategy::kOnlyFirst
                   : t == "only_second"     ? TruncationStrategy::kOnlySecond
                   : t == "do_not_truncate" ? TruncationStrategy::kDoNotTruncate
                                            : TruncationStrategy::kLongestFirst;
  const std::string p = o.at("padding");
  out.padding = p == "longest"      ? PaddingStrategy::kLongest
                : p == "max_length" ? PaddingStrategy::kMaxLength
                                    : PaddingStrategy::kDoNotPad;
  if (!o.at("pad_to_multiple_of").is_null()) {
    out.pad_to_multiple_of = o.at("pad_to_multiple_of");
  }
  out.truncation_side = side_of(o.at("truncation_side"));
  out.padding_side = side_of(o.at("padding_side"));
  return out;
}

// The words our error messages use for each error HF (or transformers)
// raises; the fixture names the kind.
std::string error_text(const std::string& kind) {
  if (kind == "sequence_too_short")
    return "tokens to remove";
  if (kind == "second_sequence_not_provided") {
    return "a pair of sequences for truncation only_second";
  }
  if (kind == "max_length_below_special_tokens") {
    return "special tokens added to a";
  }
  if (kind == "pad_multiple_mismatch")
    return "multiple of pad_to_multiple_of";
  throw std::runtime_error("unknown error kind in fixture: " + kind);
}

std::string show(const std::vector<std::string>& tokens) {
  std::string out = "[";
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (i)
      out += ", ";
    out += json(tokens[i]).dump();
  }
  return out + "]";
}

std::string show_input(const json& c) {
  std::string out = "text " + c.at("text").dump();
  if (!c.at("pair").is_null())
    out += "\n  pair " + c.at("pair").dump();
  if (c.contains("options"))
    out += "\n  options " + c.at("options").dump();
  return out;
}

// First field that differs, or "" when `got` is what HF produced.
std::string compare(const Tokenizer& tok, const Encoding& got,
                    const json& want) {
  std::string field;
  if (got.tokens != want.at("tokens").get<std::vector<std::string>>()) {
    field = "tokens";
  } else if (got.ids != want.at("ids").get<std::vector<int64_t>>()) {
    field = "ids";
  } else if (got.type_ids != want.at("type_ids").get<std::vector<int64_t>>()) {
    field = "type_ids";
  } else if (got.attention_mask !=
             want.at("attention_mask").get<std::vector<int64_t>>()) {
    field = "attention_mask";
  } else if (got.special_tokens_mask !=
             want.at("special_tokens_mask").get<std::vector<int64_t>>()) {
    field = "special_tokens_mask";
  } else if (tok.decode(got.ids, false) != want.at("decoded")) {
    return "decode: expected " + want.at("decoded").dump() + ", got " +
           json(tok.decode(got.ids, false)).dump();
  } else if (tok.decode(got.ids, true) != want.at("decoded_skip")) {
    return "decode(skip_special_tokens): expected " +
           want.at("decoded_skip").dump() + ", got " +
           json(tok.decode(got.ids, true)).dump();
  } else {
    return "";
  }
  return field + " differ\n  HF:  " +
         show(want.at("tokens").get<std::vector<std::string>>()) + "\n       " +
         want.at("ids").dump() + " / " + want.at("type_ids").dump() +
         "\n  ours: " + show(got.tokens) + "\n       " + json(got.ids).dump() +
         " / " + json(got.type_ids).dump();
}

// Runs `encode` and checks it against an expected encoding list or error.
template <typename Encode>
std::string check_one(const Tokenizer& tok, const json& c, Encode encode) {
  std::vector<Encoding> got;
  try {
    got = encode();
  } catch (const std::invalid_argument& e) {
    if (!c.contains("error"))
      return std::string("unexpected error: ") + e.what();
    const std::string want = error_text(c.at("error"));
    if (std::string(e.what()).find(want) == std::string::npos) {
      return "error text: expected \"" + want + "\" in \"" + e.what() + "\"";
    }
    return "";
  }
  if (c.contains("error")) {
    return "expected error " + c.at("error").dump() + ", got " +
           show(got.front().tokens);
  }
  const json& want =
      c.contains("expected") ? c.at("expected") : json::array({c});
  if (got.size() != want.size())
    return "batch size differs";
  for (size_t i = 0; i < got.size(); ++i) {
    const std::string d = compare(tok, got[i], want[i]);
    if (!d.empty())
      return "item " + std::to_string(i) + ": " + d;
  }
  return "";
}

// Every case of cases/<variant>/<set>.jsonl; reports the first mismatches.
void check_cases(const std::string& variant, const std::string& set,
                 size_t min_cases) {
  const std::vector<json> cases = read_cases(variant, set);
  const std::string key = variant + "/" + set;
  REQUIRE(cases.size() == manifest().at("counts").at(key).get<size_t>());
  REQUIRE(cases.size() >= min_cases);
  const Tokenizer& tok = load(variant);
  size_t failures = 0;
  std::ostringstream report;
  for (const json& c : cases) {
    std::string diff;
    if (c.contains("inputs")) {
      std::vector<TextInput> inputs;
      for (const json& in : c.at("inputs")) {
        inputs.push_back(TextInput{in.at("text"), std::nullopt});
        if (!in.at("pair").is_null())
          inputs.back().pair = in.at("pair");
      }
      diff = check_one(tok, c, [&] {
        return tok.encode_batch(inputs, options_of(c.at("options")));
      });
      if (!diff.empty())
        diff =
            "batch of " + c.at("inputs").dump().substr(0, 200) + "\n  " + diff;
    } else {
      const std::string text = c.at("text");
      std::optional<std::string> pair;
      if (!c.at("pair").is_null())
        pair = c.at("pair").get<std::string>();
      diff = check_one(tok, c, [&] {
        return std::vector<Encoding>{tok.encode(
            text, pair ? std::optional<std::string_view>(*pair) : std::nullopt,
            options_of(c.value("options", json())))};
      });
      if (!diff.empty())
        diff = show_input(c) + "\n  " + diff;
    }
    if (!diff.empty() && ++failures <= 5)
      report << "\n" << diff << "\n";
  }
  INFO(key << ": " << failures << " of " << cases.size() << " cases differ"
           << report.str());
  CHECK(failures == 0);
}

// The same inputs through encode_batch (threads) must give what encode
// gave one by one.
void check_batch_matches_singles(const std::string& variant,
                                 const std::string& set) {
  const std::vector<json> cases = read_cases(variant, set);
  const Tokenizer& tok = load(variant);
  std::vector<TextInput> inputs;
  for (const json& c : cases) {
    inputs.push_back(TextInput{c.at("text"), std::nullopt});
    if (!c.at("pair").is_null())
      inputs.back().pair = c.at("pair");
  }
  const auto batch = tok.encode_batch(inputs);
  REQUIRE(batch.size() == cases.size());
  size_t failures = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    if (!compare(tok, batch[i], cases[i]).empty())
      ++failures;
  }
  CHECK(failures == 0);
}

}  // namespace

TEST_CASE("MiniLM tokenizer matches HF on SST-2 dev", "[tokenizer][glue]") {
  check_cases("minilm", "sst2", 872);
  check_batch_matches_singles("minilm", "sst2");
}

TEST_CASE("MiniLM tokenizer matches HF on CoLA dev", "[tokenizer][glue]") {
  check_cases("minilm", "cola", 1043);
}

TEST_CASE("MiniLM tokenizer matches HF on MRPC dev pairs",
          "[tokenizer][glue]") {
  check_cases("minilm", "mrpc", 408);
  check_batch_matches_singles("minilm", "mrpc");
}

TEST_CASE("MiniLM tokenizer matches HF on STS-B dev pairs",
          "[tokenizer][glue]") {
  check_cases("minilm", "stsb", 1500);
}

TEST_CASE("MiniLM tokenizer matches HF on RTE dev pairs", "[tokenizer][glue]") {
  check_cases("minilm", "rte", 277);
}

TEST_CASE("MiniLM tokenizer matches HF without special tokens",
          "[tokenizer][glue]") {
  check_cases("minilm", "cola_no_special", 1043);
  check_cases("minilm", "mrpc_no_special", 408);
  check_cases("minilm", "hard_no_special", 90);
}

TEST_CASE("MiniLM tokenizer matches HF on hard strings", "[tokenizer][hard]") {
  check_cases("minilm", "hard", 90);
}

TEST_CASE("tokenizer.json loaded with from_file matches HF",
          "[tokenizer][glue]") {
  check_cases("minilm_file", "sst2", 872);
  check_cases("minilm_file", "hard", 90);
}

TEST_CASE("Cased tokenizer matches HF on all GLUE dev sets and hard strings",
          "[tokenizer][glue]") {
  for (const char* set : {"sst2", "cola", "mrpc", "stsb", "rte", "hard"}) {
    check_cases("cased", set, 90);
  }
}

TEST_CASE("Cased tokenizer with strip_accents matches HF",
          "[tokenizer][hard]") {
  check_cases("cased_strip", "cola", 1043);
  check_cases("cased_strip", "hard", 90);
}

TEST_CASE("Lowercasing without accent stripping matches HF",
          "[tokenizer][hard]") {
  check_cases("lower_keep_accents", "sst2", 872);
  check_cases("lower_keep_accents", "hard", 90);
}

TEST_CASE("handle_chinese_chars false matches HF", "[tokenizer][hard]") {
  check_cases("no_chinese", "stsb", 1500);
  check_cases("no_chinese", "hard", 90);
}

TEST_CASE("clean_text false matches HF", "[tokenizer][hard]") {
  check_cases("no_clean", "sst2", 872);
  check_cases("no_clean", "hard", 90);
}

TEST_CASE("BertProcessing and RobertaProcessing match HF",
          "[tokenizer][post_processor]") {
  for (const char* variant : {"bert_processing", "roberta_processing"}) {
    for (const char* set : {"mrpc", "rte", "hard", "truncation"}) {
      check_cases(variant, set, 90);
    }
  }
}

TEST_CASE(
    "Added tokens with lstrip, rstrip, single_word and normalized "
    "flags match HF",
    "[tokenizer][added_tokens]") {
  check_cases("added", "sst2", 872);
  check_cases("added", "mrpc", 408);
  check_cases("added", "hard", 90);
}

TEST_CASE("vocab.txt folders load like transformers' BertTokenizerFast",
          "[tokenizer][vocab]") {
  check_cases("vocab_uncased", "sst2", 872);
  check_cases("vocab_uncased", "rte", 277);
  check_cases("vocab_uncased", "hard", 90);
  check_cases("vocab_uncased", "truncation", 500);
  check_cases("vocab_cased", "mrpc", 408);
  check_cases("vocab_cased", "hard", 90);
  check_cases("vocab_cased", "padding", 30);
  check_cases("vocab_cased_strip", "cola", 1043);
  check_cases("vocab_cased_strip", "hard", 90);
  CHECK(load("vocab_uncased").model_max_length() == 512u);
}

TEST_CASE("Truncation matches HF for every strategy and many max_lengths",
          "[tokenizer][truncation]") {
  check_cases("minilm", "truncation", 5000);
}

TEST_CASE("Left truncation matches HF", "[tokenizer][truncation]") {
  check_cases("minilm", "truncation_left", 500);
}

TEST_CASE("Truncation without special tokens matches HF",
          "[tokenizer][truncation]") {
  check_cases("minilm", "truncation_no_special", 500);
}

TEST_CASE("Padding of batches matches HF", "[tokenizer][padding]") {
  check_cases("minilm", "padding", 100);
}

TEST_CASE("Vocabulary size and token/id lookups match HF for every variant",
          "[tokenizer][vocab]") {
  for (const auto& [name, v] : manifest().at("variants").items()) {
    INFO(name);
    const Tokenizer& tok = load(name);
    CHECK(tok.vocab_size(true) == v.at("vocab_size").get<size_t>());
    CHECK(tok.vocab_size(false) == v.at("vocab_size_base").get<size_t>());
    for (const auto& [token, id] : v.at("token_to_id").items()) {
      INFO(token);
      if (id.is_null()) {
        CHECK_FALSE(tok.token_to_id(token).has_value());
      } else {
        CHECK(tok.token_to_id(token) == id.get<int64_t>());
      }
    }
    for (const auto& [id, token] : v.at("id_to_token").items()) {
      INFO(id);
      if (token.is_null()) {
        CHECK_FALSE(tok.id_to_token(std::stoll(id)).has_value());
      } else {
        CHECK(tok.id_to_token(std::stoll(id)) == token.get<std::string>());
      }
    }
  }
}
