// Instruction data -> tokens and targets, against the rows TRL's SFT
// tokenization builds with transformers' tokenizer and chat template on real
// SST-2 text (tests/fixtures/make_causal_lm_train.py): plain prompt/
// completion and chat lines, truncation, packing, collation to labels, the
// GLUE converter, and the errors for bad files.

#include <ATen/ATen.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/text_file.h"
#include "data/dataset/collate.h"
#include "data/dataset/instruction_dataset.h"
#include "tests/test_paths.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace peftcpp::data;

namespace {

fs::path fixture(const std::string& name) {
  return peftcpp::testing::fixture_dir() / "causal_lm_train" / name;
}

const json& refs() {
  static const json r = [] {
    std::ifstream in(fixture("refs/rows.json"));
    if (!in)
      throw std::runtime_error(
          "no fixture refs/rows.json (run make_causal_lm_train.py)");
    return json::parse(in);
  }();
  return r;
}

const Tokenizer& tokenizer() {
  static const Tokenizer t =
      Tokenizer::from_pretrained(fixture("models/llama"));
  return t;
}

const ChatTemplate& smollm2_template() {
  static const ChatTemplate t(peftcpp::read_text_file(
      fixture("models/llama/chat_template.jinja"), "chat template"));
  return t;
}

InstructionFormat smollm2_format() {
  InstructionFormat f;
  f.chat_template = &smollm2_template();
  f.bos_token = "<|im_start|>";
  f.eos_token = "<|im_end|>";
  f.eos_token_id = refs().at("eos_token_id").get<int64_t>();
  return f;
}

InstructionDataset first_rows(const std::string& file, size_t n) {
  InstructionDataset d = read_instruction_jsonl(fixture("data/" + file));
  d.examples.resize(n);
  return d;
}

// Row r as (input_ids, labels) with labels = -100 off the targets.
std::pair<std::vector<int64_t>, std::vector<int64_t>> row(
    const TokenizedDataset& d, size_t r) {
  std::vector<int64_t> ids, labels;
  for (int64_t t = d.offsets[r]; t < d.offsets[r + 1]; ++t) {
    ids.push_back(d.input_ids[static_cast<size_t>(t)]);
    labels.push_back(d.token_type_ids[static_cast<size_t>(t)] == 1 ? ids.back()
                                                                   : -100);
  }
  return {ids, labels};
}

void check_rows(const TokenizedDataset& d, const json& expected) {
  REQUIRE(d.kind == TaskKind::kCausalLM);
  REQUIRE(d.size() == expected.size());
  for (size_t r = 0; r < d.size(); ++r) {
    INFO("row " << r);
    const auto [ids, labels] = row(d, r);
    CHECK(ids == expected[r].at("input_ids").get<std::vector<int64_t>>());
    CHECK(labels == expected[r].at("labels").get<std::vector<int64_t>>());
  }
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE(
    "plain prompt/completion lines tokenize as TRL does: the prompt "
    "masked, the completion and EOS the targets",
    "[data][instruction]") {
  const auto kind = GENERATE(as<std::string>{}, "plain", "chat");
  INFO(kind);
  const InstructionDataset d = first_rows(kind + "_train.jsonl", 6);
  InstructionTokenizeOptions o;
  o.max_length = 1000;
  check_rows(tokenize_instructions(d, tokenizer(), smollm2_format(), o),
             refs().at(kind).at("full"));
}

TEST_CASE("real text: the targets are the answer word and the end token",
          "[data][instruction]") {
  const InstructionDataset d = first_rows("plain_train.jsonl", 2);
  const TokenizedDataset t =
      tokenize_instructions(d, tokenizer(), smollm2_format(), {});
  for (size_t r = 0; r < t.size(); ++r) {
    const auto [ids, labels] = row(t, r);
    std::vector<int64_t> targets, prompt;
    for (size_t k = 0; k < ids.size(); ++k)
      (labels[k] == -100 ? prompt : targets).push_back(ids[k]);
    CHECK(tokenizer().decode(prompt, false) == d.examples[r].prompt);
    CHECK(tokenizer().decode(targets, false) ==
          d.examples[r].completion + "<|im_end|>");
    // Every prompt token comes before every target.
    CHECK(labels[prompt.size() - 1] == -100);
    CHECK(labels[prompt.size()] != -100);
  }
}

TEST_CASE(
    "max_length drops prompt tokens from the left and keeps the "
    "completion; packing cuts the concatenation every max_length tokens",
    "[data][instruction]") {
  const auto kind = GENERATE(as<std::string>{}, "plain", "chat");
  INFO(kind);
  const InstructionDataset d = first_rows(kind + "_train.jsonl", 6);
  InstructionTokenizeOptions o;
  o.max_length = 12;
  check_rows(tokenize_instructions(d, tokenizer(), smollm2_format(), o),
             refs().at(kind).at("max_length_12"));
  o.max_length = 32;
  o.packing = true;
  const TokenizedDataset packed =
      tokenize_instructions(d, tokenizer(), smollm2_format(), o);
  check_rows(packed, refs().at(kind).at("packed_32"));
  for (size_t r = 0; r + 1 < packed.size(); ++r)
    CHECK(packed.length(r) == 32);
}

TEST_CASE("a completion longer than max_length is cut on its right",
          "[data][instruction]") {
  InstructionDataset d = parse_instruction_jsonl(
      R"({"prompt": "Q:", "completion": " one two three four five six"})",
      "inline");
  InstructionTokenizeOptions o;
  o.max_length = 3;
  const TokenizedDataset t =
      tokenize_instructions(d, tokenizer(), smollm2_format(), o);
  const auto [ids, labels] = row(t, 0);
  const auto whole = tokenizer().encode(" one two three four five six").ids;
  CHECK(ids == std::vector<int64_t>(whole.begin(), whole.begin() + 3));
  CHECK(labels == ids);
}

TEST_CASE(
    "collation gives labels = input ids on targets, -100 on prompt and "
    "padding (pad id = EOS stays a target)",
    "[data][instruction]") {
  const InstructionDataset d = first_rows("plain_train.jsonl", 3);
  const TokenizedDataset t =
      tokenize_instructions(d, tokenizer(), smollm2_format(), {});
  const int64_t pad = refs().at("pad_token_id").get<int64_t>();
  const Batch b = collate(t, {0, 1, 2}, pad);
  const int64_t longest = b.input_ids.size(1);
  REQUIRE(b.labels.sizes() == b.input_ids.sizes());
  CHECK(b.token_type_ids.eq(0).all().item<bool>());
  for (int64_t r = 0; r < 3; ++r) {
    auto [ids, labels] = row(t, static_cast<size_t>(r));
    const auto n = static_cast<int64_t>(ids.size());
    std::vector<int64_t> got(longest);
    at::Tensor lab = b.labels[r].contiguous();
    std::copy(lab.data_ptr<int64_t>(), lab.data_ptr<int64_t>() + longest,
              got.begin());
    labels.resize(static_cast<size_t>(longest), -100);
    CHECK(got == labels);
    CHECK(b.attention_mask[r].sum().item<int64_t>() == n);
    CHECK(b.labels[r][n - 1].item<int64_t>() == pad);  // EOS, a target
  }
}

TEST_CASE("SST-2 rows phrased as instructions", "[data][instruction]") {
  LabeledDataset sst2;
  sst2.label_names = {"0", "1"};
  sst2.examples = {{"a gem", std::nullopt, 1.0f},
                   {"a dud", std::nullopt, 0.0f}};
  InstructionTemplate f;
  f.prompt = "Review: {text}\nSentiment:";
  f.completions = {" negative", " positive"};
  InstructionDataset d = instructions_from_labeled(sst2, f);
  REQUIRE(d.size() == 2);
  CHECK(d.examples[0].prompt == "Review: a gem\nSentiment:");
  CHECK(d.examples[0].completion == " positive");
  CHECK(d.examples[1].completion == " negative");
  CHECK_FALSE(d.examples[0].is_chat());
  f.as_chat = true;
  d = instructions_from_labeled(sst2, f);
  REQUIRE(d.examples[1].messages.size() == 2);
  CHECK(d.examples[1].messages[0].role == "user");
  CHECK(d.examples[1].messages[1].content == " negative");

  f.completions = {" negative"};
  CHECK_THAT(error_of([&] { instructions_from_labeled(sst2, f); }),
             Catch::Contains("expected 2 completions (one per class: 0, 1)"));
  f.completions = {" negative", " positive"};
  f.prompt = "{sentence}";
  CHECK_THAT(error_of([&] { instructions_from_labeled(sst2, f); }),
             Catch::Contains("got \"{sentence}\""));
}

TEST_CASE("bad instruction files fail with the line and what is missing",
          "[data][instruction][errors]") {
  const auto parse = [](const std::string& text) {
    return error_of([&] { parse_instruction_jsonl(text, "f.jsonl"); });
  };
  CHECK_THAT(parse("{\"prompt\": \"a\", \"completion\": \"b\"}\n"
                   "{\"prompt\": \"a\"}\n"),
             Catch::Contains("[f.jsonl:2] expected an example with a "
                             "\"completion\" string, got no \"completion\""));
  CHECK_THAT(parse(R"({"messages": [{"role": "user", "content": "hi"}]})"),
             Catch::Contains("ends with an \"assistant\" turn") &&
                 Catch::Contains("got a last turn of role \"user\""));
  CHECK_THAT(parse(""), Catch::Contains("[f.jsonl] expected at least one "
                                        "instruction example, got none"));
  CHECK_THAT(parse("\n  \n"), Catch::Contains("got none"));
  CHECK_THAT(parse("{\"prompt\": 1, \"completion\": \"b\"}"),
             Catch::Contains("\"prompt\" to be a string, got number"));
  CHECK_THAT(parse("{\"prompt\": \"a\""),
             Catch::Contains("[f.jsonl:1] expected a JSON object, got "
                             "invalid JSON"));
  CHECK_THAT(parse(R"({"messages": []})"),
             Catch::Contains("got an empty list"));
  CHECK_THAT(parse(R"({"messages": [{"role": "assistant"}]})"),
             Catch::Contains("[f.jsonl:1 message 0] expected a turn with a "
                             "\"content\" string"));
  CHECK_THAT(error_of([] {
               read_instruction_jsonl(fixture("data/no_such_file.jsonl"));
             }),
             Catch::Contains("no_such_file.jsonl"));
}

TEST_CASE(
    "tokenizing fails clearly when the prompt is not a prefix of the whole",
    "[data][instruction][errors]") {
  // A prompt that ends inside a word: its last token is not one of the
  // whole's.
  InstructionDataset split = parse_instruction_jsonl(
      R"({"prompt": "Review: grea", "completion": "t movie"})", "inline");
  CHECK_THAT(error_of([&] {
               tokenize_instructions(split, tokenizer(), smollm2_format(), {});
             }),
             Catch::Contains("a token that spans the boundary") &&
                 Catch::Contains("start the completion at a word boundary"));
  // A template that renders earlier turns differently once an answer
  // follows.
  const ChatTemplate odd(
      "{% for m in messages %}{{ m.content }}{% endfor %}"
      "{% if add_generation_prompt %}<ask>{% endif %}");
  InstructionFormat f = smollm2_format();
  f.chat_template = &odd;
  InstructionDataset chat = parse_instruction_jsonl(
      R"({"messages": [{"role": "user", "content": "hi"},)"
      R"( {"role": "assistant", "content": "yo"}]})",
      "inline");
  CHECK_THAT(error_of([&] { tokenize_instructions(chat, tokenizer(), f, {}); }),
             Catch::Contains("to be a prefix of its rendering of the whole"));
  f.chat_template = nullptr;
  CHECK_THAT(error_of([&] { tokenize_instructions(chat, tokenizer(), f, {}); }),
             Catch::Contains("expected a chat template for chat examples"));
  f = smollm2_format();
  f.eos_token_id.reset();
  CHECK_THAT(
      error_of([&] { tokenize_instructions(split, tokenizer(), f, {}); }),
      Catch::Contains("an EOS token id"));
}
