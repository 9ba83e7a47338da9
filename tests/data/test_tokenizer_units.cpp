// Unit cases for the tokenizer: the Unicode data against HF on every code
// point, the pieces on tiny hand-made vocabularies, and the error messages.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

#include "data/tokenizer/tokenizer.h"
#include "data/tokenizer/unicode.h"
#include "data/tokenizer/wordpiece.h"
#include "tests/test_paths.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace peftcpp::data;

namespace {

std::string utf8(char32_t cp) {
  std::string s;
  unicode::append_utf8(s, cp);
  return s;
}

std::string hex(const std::string& s) {
  std::string out;
  for (char32_t cp : unicode::decode_utf8(s)) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "U+%04X ", static_cast<unsigned>(cp));
    out += buf;
  }
  return out.empty() ? "(empty)" : out;
}

const json& unicode_fixture() {
  static const json j = [] {
    std::ifstream in(peftcpp::testing::fixture_dir() / "tokenizer" / "unicode" /
                     "bert_normalizer.json");
    if (!in)
      throw std::runtime_error("missing unicode fixture");
    return json::parse(in);
  }();
  return j;
}

BertNormalizerOptions options_of(const json& config) {
  BertNormalizerOptions o;
  o.clean_text = config.at("clean_text");
  o.handle_chinese_chars = config.at("handle_chinese_chars");
  if (!config.at("strip_accents").is_null()) {
    o.strip_accents = config.at("strip_accents").get<bool>();
  }
  o.lowercase = config.at("lowercase");
  return o;
}

// Writes `text` to dir/name and returns that path.
fs::path write_to(const peftcpp::testing::ScratchDir& dir,
                  const std::string& name, const std::string& text) {
  std::ofstream(dir / name, std::ios::binary) << text;
  return dir / name;
}

// A tiny tokenizer.json: BERT pipeline over a handful of tokens.
json tiny_json() {
  return json::parse(R"({
    "version": "1.0", "truncation": null, "padding": null,
    "added_tokens": [
      {"id": 0, "content": "[PAD]", "special": true, "normalized": false,
       "single_word": false, "lstrip": false, "rstrip": false},
      {"id": 1, "content": "[UNK]", "special": true, "normalized": false,
       "single_word": false, "lstrip": false, "rstrip": false}],
    "normalizer": {"type": "BertNormalizer", "clean_text": true,
                   "handle_chinese_chars": true, "strip_accents": false,
                   "lowercase": true},
    "pre_tokenizer": {"type": "BertPreTokenizer"},
    "post_processor": null,
    "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
    "model": {"type": "WordPiece", "unk_token": "[UNK]",
              "continuing_subword_prefix": "##", "max_input_chars_per_word": 9,
              "vocab": {"[PAD]": 0, "[UNK]": 1, "un": 2, "##aff": 3,
                        "##able": 4, "a": 5, "##b": 6, "é": 7, ".": 8,
                        "##é": 9, "don": 10, "'": 11, "t": 12}}
  })");
}

template <typename Fn>
std::string message_of(Fn fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no exception)";
}

}  // namespace

TEST_CASE("BertNormalizer matches HF on every code point for each option",
          "[tokenizer][unicode]") {
  for (const auto& [name, entry] : unicode_fixture().items()) {
    if (!entry.contains("changes"))
      continue;
    const BertNormalizer normalizer(options_of(entry.at("config")));
    // changes: [first, last, output] runs; every other code point maps to
    // itself.
    std::vector<std::pair<char32_t, std::string>> expected;
    for (const json& run : entry.at("changes")) {
      for (char32_t cp = run[0]; cp <= run[1].get<char32_t>(); ++cp) {
        expected.emplace_back(cp, run[2].get<std::string>());
      }
    }
    size_t next = 0, failures = 0, checked = 0;
    std::ostringstream report;
    for (char32_t cp = 0; cp < 0x110000; ++cp) {
      if (cp >= 0xD800 && cp <= 0xDFFF)
        continue;  // not scalar values
      std::string want = utf8(cp);
      if (next < expected.size() && expected[next].first == cp) {
        want = expected[next++].second;
      }
      std::string got = utf8(cp);
      normalizer.normalize(got);
      ++checked;
      if (got != want && ++failures <= 10) {
        report << "\n  " << hex(utf8(cp)) << ": HF " << hex(want) << ", ours "
               << hex(got);
      }
    }
    INFO(name << ": " << failures << " of " << checked << " code points differ"
              << report.str());
    CHECK(checked == 0x110000 - 0x800);
    CHECK(failures == 0);
  }
}

TEST_CASE("BertNormalizer matches HF on strings of combining marks",
          "[tokenizer][unicode]") {
  const json& all = unicode_fixture().at("strings");
  for (const auto& [name, pairs] : all.items()) {
    const BertNormalizer normalizer(
        options_of(unicode_fixture().at(name).at("config")));
    size_t failures = 0;
    std::ostringstream report;
    for (const json& p : pairs) {
      std::string got = p[0];
      normalizer.normalize(got);
      if (got != p[1] && ++failures <= 5) {
        report << "\n  " << hex(p[0]) << ": HF " << hex(p[1]) << ", ours "
               << hex(got);
      }
    }
    INFO(name << ": " << failures << " of " << pairs.size() << " differ"
              << report.str());
    CHECK(pairs.size() >= 1000);
    CHECK(failures == 0);
  }
}

TEST_CASE(
    "BertPreTokenizer splits on HF's whitespace and isolates HF's "
    "punctuation",
    "[tokenizer][unicode]") {
  const json& pre = unicode_fixture().at("pre_tokenizer");
  const auto punct = pre.at("punctuation").get<std::vector<char32_t>>();
  const auto space = pre.at("whitespace").get<std::vector<char32_t>>();
  REQUIRE(punct.size() > 500);
  REQUIRE(space.size() == 25);
  const BertPreTokenizer pt;
  size_t ip = 0, is = 0, failures = 0;
  std::ostringstream report;
  for (char32_t cp = 0; cp < 0x110000; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF)
      continue;
    size_t want = 1;
    if (ip < punct.size() && punct[ip] == cp)
      want = 3, ++ip;
    if (is < space.size() && space[is] == cp)
      want = 2, ++is;
    const std::string text = "a" + utf8(cp) + "a";
    PreTokenized out;
    pt.pre_tokenize(text, out);
    if (out.words.size() != want && ++failures <= 10) {
      report << "\n  " << hex(utf8(cp)) << ": HF " << want << " words, ours "
             << out.words.size();
    }
  }
  INFO(failures << " code points differ" << report.str());
  CHECK(failures == 0);
}

TEST_CASE("WordPiece decoder applies HF's cleanup token by token",
          "[tokenizer][decoder]") {
  std::ifstream in(peftcpp::testing::fixture_dir() / "tokenizer" /
                   "decoder.json");
  REQUIRE(in);
  const json cases = json::parse(in);
  REQUIRE(cases.size() >= 30);
  for (const json& c : cases) {
    const WordPieceDecoder decoder(c.at("prefix"), c.at("cleanup"));
    INFO(c.dump());
    CHECK(decoder.decode(c.at("tokens")) == c.at("decoded"));
  }
}

TEST_CASE("WordPiece takes the longest vocabulary match first",
          "[tokenizer][wordpiece]") {
  const Tokenizer tok = [] {
    const peftcpp::testing::ScratchDir dir("tok-wp");
    return Tokenizer::from_file(write_to(dir, "t.json", tiny_json().dump()));
  }();
  const EncodeOptions o;
  CHECK(tok.encode("unaffable", std::nullopt, o).tokens ==
        std::vector<std::string>{"un", "##aff", "##able"});
  // One piece without a match makes the whole word unknown.
  CHECK(tok.encode("unaffabx", std::nullopt, o).tokens ==
        std::vector<std::string>{"[UNK]"});
  // max_input_chars_per_word (9) counts characters, not bytes.
  CHECK(tok.encode("ééééééééé", std::nullopt, o).tokens.size() == 9);
  CHECK(tok.encode("éééééééééé", std::nullopt, o).tokens ==
        std::vector<std::string>{"[UNK]"});
  // No post-processor: a pair is concatenated with type ids 0 and 1.
  const Encoding pair = tok.encode("a", "ab", o);
  CHECK(pair.tokens == std::vector<std::string>{"a", "a", "##b"});
  CHECK(pair.type_ids == std::vector<int64_t>{0, 1, 1});
  CHECK(tok.decode(tok.encode("don't a b.", std::nullopt, o).ids) ==
        "don ' t a [UNK].");  // HF cleans token by token: " ' " never forms
  CHECK(tok.vocab_size() == 13u);
  CHECK(tok.token_to_id("##aff") == 3);
  CHECK(tok.id_to_token(4) == "##able");
  CHECK_FALSE(tok.id_to_token(99).has_value());
}

TEST_CASE("Invalid UTF-8 input is repaired instead of crashing",
          "[tokenizer][wordpiece]") {
  const peftcpp::testing::ScratchDir dir("tok-utf8");
  const Tokenizer tok =
      Tokenizer::from_file(write_to(dir, "t.json", tiny_json().dump()));
  // The bad byte becomes U+FFFD, which clean_text removes.
  CHECK(tok.encode("a\xff"
                   "b")
            .tokens == tok.encode("ab").tokens);
  CHECK(unicode::is_valid_utf8("caf\xc3\xa9"));
  CHECK_FALSE(unicode::is_valid_utf8("\xed\xa0\x80"));  // a surrogate
}

TEST_CASE("encode_batch reports the error of the first failing input",
          "[tokenizer][batch]") {
  const peftcpp::testing::ScratchDir dir("tok-batch");
  json j = tiny_json();
  j["post_processor"] = json::parse(R"({"type": "BertProcessing",
      "sep": ["[UNK]", 1], "cls": ["[PAD]", 0]})");
  const Tokenizer tok = Tokenizer::from_file(write_to(dir, "t.json", j.dump()));
  EncodeOptions o;
  o.max_length = 5;  // 2 text tokens in a pair, 3 in a single sequence
  o.truncation = TruncationStrategy::kOnlySecond;
  std::vector<TextInput> inputs(200, TextInput{"a", std::string("a")});
  inputs[150] = TextInput{"a a a a", std::nullopt};
  inputs[170] = TextInput{"a a a a a", std::string("a")};
  CHECK_THROWS_WITH(tok.encode_batch(inputs, o),
                    Catch::Contains("a pair of sequences"));
}

TEST_CASE("Loading errors name the file and the problem",
          "[tokenizer][errors]") {
  const peftcpp::testing::ScratchDir dir("tok-errors");
  CHECK_THROWS_WITH(Tokenizer::from_file(dir.path() / "nope.json"),
                    Catch::Contains("nope.json (no such file)"));
  const fs::path bad = write_to(dir, "bad.json", "{\"model\": ");
  CHECK_THROWS_AS(Tokenizer::from_file(bad), std::runtime_error);
  CHECK_THROWS_WITH(Tokenizer::from_file(bad),
                    Catch::Contains("valid JSON in " + bad.string()));

  struct Case {
    const char* part;
    const char* value;
    const char* expected;
  };
  for (const Case& c :
       {Case{"normalizer", R"({"type": "NoSuchNormalizer"})",
             "supported type (BertNormalizer, NFC,"},
        Case{"pre_tokenizer", R"({"type": "NoSuchPreTokenizer"})",
             "supported type (BertPreTokenizer, ByteLevel,"},
        Case{"model", R"({"type": "Unigram", "vocab": []})",
             "supported type (WordPiece, BPE)"},
        Case{"post_processor", R"({"type": "NoSuchProcessor"})",
             "TemplateProcessing, BertProcessing, RobertaProcessing"},
        Case{"decoder", R"({"type": "CTC"})",
             "supported type (WordPiece, ByteLevel,"}}) {
    json j = tiny_json();
    j[c.part] = json::parse(c.value);
    const fs::path p = write_to(dir, std::string(c.part) + ".json", j.dump());
    const std::string msg = message_of([&] { Tokenizer::from_file(p); });
    INFO(msg);
    CHECK(msg.find(c.expected) != std::string::npos);
    CHECK(msg.find(p.string() + ": " + c.part) != std::string::npos);
    CHECK(msg.find(json::parse(c.value).at("type").get<std::string>()) !=
          std::string::npos);
  }

  json j = tiny_json();
  j["model"]["unk_token"] = "<unk>";
  const fs::path unk = write_to(dir, "unk.json", j.dump());
  CHECK_THROWS_AS(Tokenizer::from_file(unk), std::out_of_range);
  CHECK_THROWS_WITH(Tokenizer::from_file(unk),
                    Catch::Contains("unk_token \"<unk>\" in the vocabulary"));

  j = tiny_json();
  j["post_processor"] = json::parse(R"({"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                 {"Sequence": {"id": "A", "type_id": 0}}],
      "pair": [], "special_tokens": {}})");
  CHECK_THROWS_WITH(Tokenizer::from_file(write_to(dir, "tpl.json", j.dump())),
                    Catch::Contains("no entry for [CLS]"));

  const fs::path vocab = write_to(dir, "vocab.txt", "[PAD]\nhello\n");
  CHECK_THROWS_WITH(Tokenizer::from_vocab_file(vocab),
                    Catch::Contains("unk_token \"[UNK]\" as a line of"));
  CHECK_THROWS_WITH(Tokenizer::from_vocab_file(dir.path() / "missing.txt"),
                    Catch::Contains("missing.txt"));
  fs::create_directories(dir.path() / "empty");
  CHECK_THROWS_WITH(Tokenizer::from_pretrained(dir.path() / "empty"),
                    Catch::Contains("tokenizer.json or vocab.txt"));
  CHECK_THROWS_WITH(Tokenizer::from_pretrained(dir.path() / "absent"),
                    Catch::Contains("(no such folder)"));
}

TEST_CASE("Bad encode options are rejected with a reason",
          "[tokenizer][errors]") {
  const peftcpp::testing::ScratchDir dir("tok-options");
  json j = tiny_json();
  j["added_tokens"].erase(0);  // no [PAD]: padding is impossible
  j["model"]["vocab"].erase("[PAD]");
  const Tokenizer no_pad =
      Tokenizer::from_file(write_to(dir, "t.json", j.dump()));
  EncodeOptions o;
  o.padding = PaddingStrategy::kLongest;
  CHECK_THROWS_WITH(no_pad.encode("a", std::nullopt, o),
                    Catch::Contains("a pad token for padding"));

  const Tokenizer tok =
      Tokenizer::from_file(write_to(dir, "t2.json", tiny_json().dump()));
  o = EncodeOptions{};
  o.padding = PaddingStrategy::kMaxLength;
  CHECK_THROWS_WITH(tok.encode("a", std::nullopt, o),
                    Catch::Contains("max_length for kMaxLength padding"));
  o = EncodeOptions{};
  o.pad_to_multiple_of = 0;
  CHECK_THROWS_AS(tok.encode("a", std::nullopt, o), std::invalid_argument);
  o = EncodeOptions{};
  o.max_length = 0;
  CHECK(tok.encode("a a", std::nullopt, o).ids.empty());
}

TEST_CASE("vocab.txt is read like HF: ids by line, trailing space trimmed",
          "[tokenizer][vocab]") {
  const peftcpp::testing::ScratchDir dir("tok-vocab");
  const fs::path p =
      write_to(dir, "vocab.txt",
               "[PAD]\r\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhi \nyo\u00a0\nhi");
  const auto vocab = WordPiece::read_vocab_file(p);
  REQUIRE(vocab.size() == 8u);
  CHECK(vocab[0].first == "[PAD]");
  CHECK(vocab[5].first == "hi");
  CHECK(vocab[6].first == "yo");  // NBSP is White_Space: trimmed
  BertOptions o;
  o.model_max_length = 7;
  const Tokenizer tok = Tokenizer::from_vocab_file(p, o);
  // The later duplicate wins: "hi" is id 7, as in HF's map insertion.
  CHECK(tok.encode("hi yo").ids == std::vector<int64_t>{2, 7, 6, 3});
  CHECK(tok.model_max_length() == 7u);
  CHECK(tok.pad_token()->id == 0);
}
