// Tokenizers built from GGUF metadata against transformers'
// AutoTokenizer.from_pretrained(dir, gguf_file=...): the real SmolLM2 GGUF
// (byte-level BPE) on every GLUE dev text and the hard strings, a
// SentencePiece ("llama") vocabulary written by the fixture, and the errors
// for what is not supported (tests/fixtures/make_gguf_tokenizer.py).

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/tokenizer/gguf_tokenizer.h"
#include "data/tokenizer/tokenizer.h"
#include "models/gguf/gguf_file.h"
#include "tests/test_paths.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace peftcpp::data;
using peftcpp::gguf::GgufFile;

namespace {

fs::path fixtures() {
  return peftcpp::testing::fixture_dir() / "gguf_tokenizer";
}

const json& manifest() {
  static const json m = [] {
    std::ifstream in(fixtures() / "manifest.json");
    if (!in)
      throw std::runtime_error("cannot read fixture manifest.json");
    return json::parse(in);
  }();
  return m;
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

// The first field of `c` that `tok` gets wrong, or "".
std::string compare(const Tokenizer& tok, const json& c) {
  const std::string text = c.at("text");
  const Encoding e = tok.encode(text);
  if (e.tokens != c.at("tokens").get<std::vector<std::string>>() ||
      e.ids != c.at("ids").get<std::vector<int64_t>>()) {
    return "tokens differ\n  HF:   " + c.at("tokens").dump() + "\n        " +
           c.at("ids").dump() + "\n  ours: " + json(e.tokens).dump() +
           "\n        " + json(e.ids).dump();
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

void check_cases(const Tokenizer& tok, const std::string& name,
                 size_t expected_cases) {
  const std::vector<json> cases = read_cases(name);
  REQUIRE(cases.size() == expected_cases);
  size_t failures = 0;
  std::ostringstream report;
  for (const json& c : cases) {
    const std::string diff = compare(tok, c);
    if (!diff.empty() && ++failures <= 5)
      report << "\ntext " << c.at("text").dump() << "\n  " << diff << "\n";
  }
  INFO(name << ": " << failures << " of " << cases.size() << " cases differ"
            << report.str());
  CHECK(failures == 0);
}

std::string error_of(const fs::path& gguf) {
  const GgufFile file = GgufFile::open(gguf);
  try {
    tokenizer_from_gguf(file);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE(
    "SmolLM2's tokenizer from its GGUF matches transformers on all GLUE dev "
    "sentences and the hard strings",
    "[tokenizer][gguf][glue][slow]") {
  const json& m = manifest().at("smollm2");
  const GgufFile file = GgufFile::open(m.at("path").get<std::string>());
  const Tokenizer tok = tokenizer_from_gguf(file);
  check_cases(tok, "smollm2", manifest().at("inputs").get<size_t>());
  CHECK(manifest().at("glue_dev_texts").get<size_t>() > 17000);
  CHECK(tok.vocab_size() == m.at("vocab_size").get<size_t>());

  // transformers adds no BOS for SmolLM2 (tokenizer.ggml.add_bos_token is
  // false), and neither do we.
  CHECK(m.at("add_bos_token") == false);
  const GgufTokenizerInfo info =
      gguf_tokenizer_info(file.metadata(), file.path().string());
  CHECK(info.model == "gpt2");
  CHECK(info.pre == "smollm");
  CHECK_FALSE(info.add_bos_token);
  CHECK_FALSE(info.add_eos_token);
  CHECK(info.bos_id == m.at("bos_token_id").get<int64_t>());
  CHECK(info.eos_id == m.at("eos_token_id").get<int64_t>());
  CHECK(info.pad_id == m.at("pad_token_id").get<int64_t>());
  CHECK(info.unk_id == m.at("unk_token_id").get<int64_t>());
  REQUIRE(info.chat_template.has_value());
  CHECK(*info.chat_template == m.at("chat_template").get<std::string>());
  CHECK(tok.num_special_tokens_to_add(false) == 0);
  REQUIRE(tok.pad_token().has_value());
  CHECK(tok.pad_token()->id == m.at("pad_token_id").get<int64_t>());
  CHECK(tok.pad_token()->token == "<|im_end|>");
}

TEST_CASE(
    "A SentencePiece vocabulary in GGUF metadata matches transformers "
    "(merges ranked by score, BOS by default)",
    "[tokenizer][gguf]") {
  const json& m = manifest().at("llama_vocab");
  const GgufFile file = GgufFile::open(m.at("path").get<std::string>());
  const Tokenizer tok = tokenizer_from_gguf(file);
  check_cases(tok, "llama_vocab", m.at("cases").get<size_t>());
  CHECK(m.at("add_bos_token") == true);
  CHECK(tok.encode("hi").ids.front() == m.at("bos_token_id").get<int64_t>());
  const GgufTokenizerInfo info =
      gguf_tokenizer_info(file.metadata(), file.path().string());
  CHECK(info.model == "llama");
  CHECK(info.chat_template == std::optional<std::string>("{{ messages }}"));
}

TEST_CASE(
    "Byte-level GGUF vocabularies with the llama-bpe and qwen2 pre types "
    "split as transformers splits them",
    "[tokenizer][gguf]") {
  for (const auto& [pre, m] : manifest().at("split_pres").items()) {
    INFO(pre);
    const GgufFile file = GgufFile::open(m.at("path").get<std::string>());
    const Tokenizer tok = tokenizer_from_gguf(file);
    check_cases(tok, m.at("cases_name"), m.at("cases").get<size_t>());
    CHECK(tok.encode("hi").ids.front() == 1);  // add_bos_token true
  }
}

TEST_CASE("GGUF tokenizers that are not supported are refused by name",
          "[tokenizer][gguf]") {
  const std::string model = error_of(fixtures() / "files/unknown_model.gguf");
  CHECK_THAT(model, Catch::Contains("unknown_model.gguf: tokenizer.ggml.model] "
                                    "expected gpt2 (byte-level BPE) or llama "
                                    "(SentencePiece), got \"wordpiece-x\""));
  const std::string pre = error_of(fixtures() / "files/unknown_pre.gguf");
  CHECK_THAT(pre, Catch::Contains("unknown_pre.gguf: tokenizer.ggml.pre] "
                                  "expected a pre-tokenizer type this library "
                                  "knows (") &&
                      Catch::Contains("llama-bpe") &&
                      Catch::Contains("got \"mystery-pre\""));

  // Metadata edited in memory: no tokenizer at all, an id past the
  // vocabulary, a non-boolean flag.
  const GgufFile file = GgufFile::open(fixtures() / "files/unknown_pre.gguf");
  json meta = file.metadata();
  meta.erase("tokenizer.ggml.model");
  CHECK_THROWS_WITH(Tokenizer::from_gguf_metadata(meta, "m.gguf"),
                    Catch::Contains("[m.gguf: tokenizer.ggml.model] expected "
                                    "a string, got none"));
  meta = file.metadata();
  meta["tokenizer.ggml.pre"] = "gpt-2";
  meta["tokenizer.ggml.bos_token_id"] = 7;
  CHECK_THROWS_WITH(Tokenizer::from_gguf_metadata(meta, "m.gguf"),
                    Catch::Contains("[m.gguf: tokenizer.ggml.bos_token_id] "
                                    "expected an id below the 3 tokens, got "
                                    "7"));
  meta.erase("tokenizer.ggml.bos_token_id");
  meta["tokenizer.ggml.add_bos_token"] = 1;
  CHECK_THROWS_WITH(Tokenizer::from_gguf_metadata(meta, "m.gguf"),
                    Catch::Contains("add_bos_token] expected a boolean"));
  meta.erase("tokenizer.ggml.add_bos_token");
  // With a known pre type the tiny vocabulary works: "ab" is one merge.
  const Tokenizer tok = Tokenizer::from_gguf_metadata(meta, "m.gguf");
  CHECK(tok.encode("ab").tokens == std::vector<std::string>{"ab"});
  meta["general.architecture"] = "gemma";
  meta["tokenizer.ggml.model"] = "llama";
  CHECK_THROWS_WITH(Tokenizer::from_gguf_metadata(meta, "m.gguf"),
                    Catch::Contains("got \"gemma\""));
}
