#include "data/dataset/instruction_dataset.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "common/error.h"
#include "common/text_file.h"

namespace peftcpp::data {

namespace {

using nlohmann::json;

const char* kJsonlHint =
    "one JSON object per line: {\"prompt\": ..., \"completion\": ...} or "
    "{\"messages\": [{\"role\": ..., \"content\": ...}, ...]}";

std::string line_where(const std::string& where, size_t line) {
  return where + ":" + std::to_string(line);
}

// A string field of `object`, or an error naming it.
std::string string_field(const json& object, const std::string& key,
                         const std::string& where, const std::string& what) {
  const auto it = object.find(key);
  if (it == object.end()) {
    throw std::runtime_error(
        error_message(where, what + " with a \"" + key + "\" string",
                      "no \"" + key + "\"", kJsonlHint));
  }
  if (!it->is_string()) {
    throw std::runtime_error(error_message(
        where, "\"" + key + "\" to be a string", std::string(it->type_name())));
  }
  return it->get<std::string>();
}

InstructionExample parse_chat(const json& messages, const std::string& where) {
  if (!messages.is_array() || messages.empty()) {
    throw std::runtime_error(
        error_message(where, "\"messages\" to be a non-empty list of turns",
                      messages.is_array() ? "an empty list"
                                          : std::string(messages.type_name())));
  }
  InstructionExample e;
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    const std::string turn = where + " message " + std::to_string(i);
    if (!m.is_object()) {
      throw std::runtime_error(error_message(
          turn, "an object {\"role\", \"content\"}", m.type_name()));
    }
    e.messages.push_back({string_field(m, "role", turn, "a turn"),
                          string_field(m, "content", turn, "a turn")});
  }
  if (e.messages.back().role != "assistant") {
    throw std::runtime_error(error_message(
        where, "a chat that ends with an \"assistant\" turn (the completion)",
        "a last turn of role \"" + e.messages.back().role + "\"",
        "the model learns the last assistant message; add it, or drop the "
        "turns after it"));
  }
  return e;
}

// "{text}" / "{text_pair}" -> the example's texts; other placeholders are
// refused so a typo cannot pass into every prompt.
std::string fill_prompt(const std::string& pattern, const Example& e) {
  std::string out;
  for (size_t i = 0; i < pattern.size();) {
    if (pattern[i] != '{') {
      out += pattern[i++];
      continue;
    }
    const size_t close = pattern.find('}', i);
    const std::string name = close == std::string::npos
                                 ? pattern.substr(i)
                                 : pattern.substr(i, close - i + 1);
    if (name == "{text}") {
      out += e.text;
    } else if (name == "{text_pair}" && e.text_pair) {
      out += *e.text_pair;
    } else {
      throw std::invalid_argument(error_message(
          "instructions_from_labeled",
          e.text_pair ? "placeholders {text} and {text_pair}"
                      : "the placeholder {text} (single sentences)",
          "\"" + name + "\" in the prompt \"" + pattern + "\""));
    }
    i += name.size();
  }
  return out;
}

// One example's tokens and target marks before truncation.
struct Sequence {
  std::vector<int64_t> ids;
  size_t prompt_length = 0;
};

std::string describe(const InstructionDataset& d, size_t i) {
  return "example " + std::to_string(i) + " of " + d.source.string();
}

// The prompt and prompt + completion texts of one example (the chat form
// rendered through the template).
std::pair<std::string, std::string> texts_of(const InstructionDataset& d,
                                             size_t i,
                                             const InstructionFormat& format) {
  const InstructionExample& e = d.examples[i];
  if (!e.is_chat())
    return {e.prompt, e.prompt + e.completion};
  const std::vector<ChatMessage> earlier(e.messages.begin(),
                                         e.messages.end() - 1);
  std::string prompt =
      format.chat_template->render(earlier, /*add_generation_prompt=*/true,
                                   format.bos_token, format.eos_token);
  std::string whole =
      format.chat_template->render(e.messages, /*add_generation_prompt=*/false,
                                   format.bos_token, format.eos_token);
  if (whole.compare(0, prompt.size(), prompt) != 0) {
    throw std::runtime_error(error_message(
        "tokenize_instructions " + describe(d, i),
        "the chat template's rendering with add_generation_prompt over the "
        "earlier turns to be a prefix of its rendering of the whole chat",
        "prompt \"" + prompt + "\" and whole \"" + whole + "\"",
        "the template changes earlier turns when an assistant turn follows "
        "(e.g. it drops reasoning); use the plain prompt/completion form"));
  }
  return {std::move(prompt), std::move(whole)};
}

// The prompt gives up tokens from its left; a completion longer than
// max_length alone is cut on its right.
void truncate(Sequence& s, size_t max_length) {
  if (s.ids.size() <= max_length)
    return;
  const size_t drop = std::min(s.ids.size() - max_length, s.prompt_length);
  s.ids.erase(s.ids.begin(), s.ids.begin() + static_cast<ptrdiff_t>(drop));
  s.prompt_length -= drop;
  s.ids.resize(std::min(s.ids.size(), max_length));
}

}  // namespace

InstructionDataset parse_instruction_jsonl(std::string_view text,
                                           const std::string& where) {
  InstructionDataset d;
  size_t line_no = 0;
  for (size_t begin = 0; begin < text.size();) {
    size_t end = text.find('\n', begin);
    if (end == std::string_view::npos)
      end = text.size();
    const std::string_view line = text.substr(begin, end - begin);
    begin = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos)
      continue;
    const std::string at = line_where(where, line_no);
    json j;
    try {
      j = json::parse(line);
    } catch (const json::parse_error& e) {
      throw std::runtime_error(error_message(
          at, "a JSON object", "invalid JSON (" + std::string(e.what()) + ")",
          kJsonlHint));
    }
    if (!j.is_object()) {
      throw std::runtime_error(
          error_message(at, "a JSON object", j.type_name(), kJsonlHint));
    }
    if (j.contains("messages")) {
      d.examples.push_back(parse_chat(j["messages"], at));
    } else {
      InstructionExample e;
      e.prompt = string_field(j, "prompt", at, "an example");
      e.completion = string_field(j, "completion", at, "an example");
      d.examples.push_back(std::move(e));
    }
  }
  if (d.examples.empty()) {
    throw std::runtime_error(error_message(
        where, "at least one instruction example", "none", kJsonlHint));
  }
  return d;
}

InstructionDataset read_instruction_jsonl(const std::filesystem::path& path) {
  InstructionDataset d = parse_instruction_jsonl(
      read_text_file(path, "instruction data"), path.string());
  d.source = path;
  return d;
}

InstructionDataset instructions_from_labeled(
    const LabeledDataset& dataset, const InstructionTemplate& format) {
  const char* where = "instructions_from_labeled";
  if (dataset.kind != TaskKind::kClassification) {
    throw std::invalid_argument(
        error_message(where, "a classification dataset", "a regression one",
                      "a completion per class phrases classes only"));
  }
  if (format.completions.size() != dataset.label_names.size()) {
    throw std::invalid_argument(error_message(
        where,
        std::to_string(dataset.label_names.size()) +
            " completions (one per class: " + join_names(dataset.label_names) +
            ")",
        std::to_string(format.completions.size())));
  }
  InstructionDataset out;
  out.source = dataset.source;
  for (size_t i = 0; i < dataset.size(); ++i) {
    const Example& e = dataset.examples[i];
    if (std::isnan(e.label)) {
      throw std::invalid_argument(
          error_message(where, "labelled examples",
                        "an unlabelled one (example " + std::to_string(i) +
                            " of " + dataset.source.string() + ")",
                        "GLUE test files have no labels; use train or dev"));
    }
    InstructionExample x;
    x.prompt = fill_prompt(format.prompt, e);
    x.completion = format.completions.at(static_cast<size_t>(e.label));
    if (format.as_chat)
      x.messages = {{"user", x.prompt}, {"assistant", x.completion}};
    out.examples.push_back(std::move(x));
  }
  return out;
}

TokenizedDataset tokenize_instructions(
    const InstructionDataset& dataset, const Tokenizer& tokenizer,
    const InstructionFormat& format,
    const InstructionTokenizeOptions& options) {
  const char* where = "tokenize_instructions";
  if (options.max_length == 0)
    throw std::invalid_argument(error_message(where, "max_length > 0", "0"));
  for (size_t i = 0; i < dataset.size(); ++i) {
    const bool chat = dataset.examples[i].is_chat();
    if (chat && format.chat_template == nullptr) {
      throw std::invalid_argument(error_message(
          where, "a chat template for chat examples",
          "none (" + describe(dataset, i) + ")",
          "the model ships no chat template; use prompt/completion lines"));
    }
    if (!chat && !format.eos_token_id) {
      throw std::invalid_argument(
          error_message(where, "an EOS token id to end plain completions",
                        "none", "the tokenizer names no eos_token"));
    }
  }
  // Prompt and whole are tokenized apart (as TRL does) and in parallel;
  // the prompt's tokens must then start the whole's.
  std::vector<TextInput> prompts, wholes;
  std::vector<bool> chat(dataset.size());
  for (size_t i = 0; i < dataset.size(); ++i) {
    auto [prompt, whole] = texts_of(dataset, i, format);
    prompts.push_back({std::move(prompt), std::nullopt});
    wholes.push_back({std::move(whole), std::nullopt});
    chat[i] = dataset.examples[i].is_chat();
  }
  EncodeOptions with_special, without_special;
  without_special.add_special_tokens = false;
  const auto encode_all = [&](const std::vector<TextInput>& texts) {
    // Chat renderings carry their special tokens as text.
    std::vector<TextInput> plain_in, chat_in;
    for (size_t i = 0; i < texts.size(); ++i)
      (chat[i] ? chat_in : plain_in).push_back(texts[i]);
    const auto plain_out = tokenizer.encode_batch(plain_in, with_special);
    const auto chat_out = tokenizer.encode_batch(chat_in, without_special);
    std::vector<std::vector<int64_t>> ids(texts.size());
    for (size_t i = 0, p = 0, c = 0; i < texts.size(); ++i)
      ids[i] = chat[i] ? chat_out[c++].ids : plain_out[p++].ids;
    return ids;
  };
  const auto prompt_ids = encode_all(prompts);
  const auto whole_ids = encode_all(wholes);

  TokenizedDataset out;
  out.kind = TaskKind::kCausalLM;
  std::vector<Sequence> sequences(dataset.size());
  for (size_t i = 0; i < dataset.size(); ++i) {
    Sequence& s = sequences[i];
    s.ids = whole_ids[i];
    s.prompt_length = prompt_ids[i].size();
    if (s.prompt_length > s.ids.size() ||
        !std::equal(prompt_ids[i].begin(), prompt_ids[i].end(),
                    s.ids.begin())) {
      throw std::runtime_error(error_message(
          std::string(where) + " " + describe(dataset, i),
          "the prompt's tokens to start the tokens of prompt + completion",
          "a token that spans the boundary (prompt \"" + prompts[i].text +
              "\")",
          "start the completion at a word boundary, e.g. with a space"));
    }
    if (!chat[i])
      s.ids.push_back(*format.eos_token_id);
    truncate(s, options.max_length);
  }
  // Rows: one per example, or the concatenation cut every max_length.
  const auto append_row_end = [&] {
    out.offsets.push_back(static_cast<int64_t>(out.input_ids.size()));
    out.labels.push_back(0.0f);  // per-token targets; the row label unused
  };
  for (const Sequence& s : sequences) {
    for (size_t t = 0; t < s.ids.size(); ++t) {
      if (s.ids[t] < 0 || s.ids[t] > std::numeric_limits<int32_t>::max()) {
        throw std::runtime_error(error_message(where, "token ids in int32",
                                               std::to_string(s.ids[t])));
      }
      out.input_ids.push_back(static_cast<int32_t>(s.ids[t]));
      out.token_type_ids.push_back(t < s.prompt_length ? 0 : 1);
      if (options.packing &&
          out.input_ids.size() - static_cast<size_t>(out.offsets.back()) ==
              options.max_length)
        append_row_end();
    }
    if (!options.packing)
      append_row_end();
  }
  if (options.packing &&
      static_cast<int64_t>(out.input_ids.size()) > out.offsets.back())
    append_row_end();
  return out;
}

int64_t count_target_tokens(const TokenizedDataset& dataset) {
  return std::count(dataset.token_type_ids.begin(),
                    dataset.token_type_ids.end(), int8_t{1});
}

}  // namespace peftcpp::data
