#pragma once
// Instruction (supervised fine-tuning) data for causal LMs, as TRL's
// SFTTrainer prepares prompt-completion data: the model sees prompt and
// completion as one sequence and learns only the completion.
//
//   {"prompt": "Review: a gem\nSentiment:", "completion": " positive"}
//   {"messages": [{"role": "user", "content": "..."},
//                 {"role": "assistant", "content": "positive"}]}
//
// Plain examples are tokenized as tokenizer(prompt + completion) (special
// tokens as the tokenizer adds them) followed by the EOS id, as TRL appends
// eos_token to completions. Chat examples are rendered with the model's
// chat template: the prompt is the template over the earlier turns with
// add_generation_prompt, the whole is the template over every turn, and
// the prompt rendering must be a prefix of the whole; both are tokenized
// without added special tokens (the template writes them), and the
// completion ends with the template's end-of-turn text (no extra EOS).
// In both forms the prompt's tokens must be a prefix of the whole's tokens
// (else the boundary between them is not a token boundary: an error).
//
// The result is a TokenizedDataset of kind kCausalLM whose token_type_ids
// mark the targets: 1 on completion tokens (and EOS), 0 on the prompt.
// Collation turns that into labels = input_ids with -100 where the mark is
// 0 or the position is padding (transformers' convention: labels equal the
// inputs, the model shifts them by one).
//
// Truncation to max_length: the prompt gives up tokens from its left (its
// start, BOS included), so the completion and the end of the prompt (the
// question right before the answer) survive; a completion longer than
// max_length on its own is cut on its right and the prompt is dropped.
//
// Packing (optional) concatenates the truncated examples in file order and
// cuts the stream every max_length tokens (the last row may be shorter), as
// TRL's "wrapped" packing: attention is not masked between examples that
// share a row, positions run on across them, and the target marks travel
// with their tokens. No LibTorch here.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "data/chat_template.h"
#include "data/dataset/labeled_dataset.h"
#include "data/dataset/tokenized_dataset.h"
#include "data/tokenizer/tokenizer.h"

namespace peftcpp::data {

/// One example: plain (prompt + completion) or a chat (messages).
struct InstructionExample {
  std::string prompt;      ///< plain form
  std::string completion;  ///< plain form: what the model learns to write
  /// Chat form: the turns in order, the last one the assistant's (the
  /// completion). Empty for the plain form.
  std::vector<ChatMessage> messages;

  bool is_chat() const { return !messages.empty(); }
};

/// Examples as read from a file.
struct InstructionDataset {
  std::vector<InstructionExample> examples;
  /// The file the examples came from (messages).
  std::filesystem::path source;

  size_t size() const { return examples.size(); }
};

/// Parses JSONL text: one object per non-blank line, {"prompt",
/// "completion"} (strings; other keys ignored) or {"messages": [{"role",
/// "content"}, ...]} whose last message is the assistant's. Throws
/// std::runtime_error naming `where` and the line for malformed JSON, a
/// missing or non-string field, a chat without a final assistant turn or
/// no examples at all.
InstructionDataset parse_instruction_jsonl(std::string_view text,
                                           const std::string& where);

/// Reads a JSONL file (see parse_instruction_jsonl).
InstructionDataset read_instruction_jsonl(const std::filesystem::path& path);

/// How a labelled classification example is phrased as an instruction.
struct InstructionTemplate {
  /// The prompt; "{text}" and "{text_pair}" stand for the example's texts.
  std::string prompt = "{text}";
  /// The completion of each class, in label index order.
  std::vector<std::string> completions;
  /// Make each example a chat (user: prompt, assistant: completion) for
  /// the model's chat template.
  bool as_chat = false;
};

/// GLUE-style classification as instructions: e.g. SST-2 with prompt
/// "Review: {text}\nSentiment:" and completions {" negative",
/// " positive"}. Throws std::invalid_argument for a regression set, a
/// completion count other than the class count, an unlabelled example or
/// a "{...}" placeholder other than {text} and {text_pair} (or
/// {text_pair} on single sentences).
InstructionDataset instructions_from_labeled(const LabeledDataset& dataset,
                                             const InstructionTemplate& format);

/// What tokenization needs from the model besides its tokenizer.
struct InstructionFormat {
  /// The model's chat template; required when there are chat examples.
  const ChatTemplate* chat_template = nullptr;
  /// The template's bos_token and eos_token variables.
  std::string bos_token;
  std::string eos_token;
  /// Appended to plain completions; required when there are plain ones.
  std::optional<int64_t> eos_token_id;
};

/// Lengths and packing.
struct InstructionTokenizeOptions {
  /// Longest row in tokens (see the truncation rule above).
  size_t max_length = 512;
  /// Concatenate examples into rows of max_length tokens.
  bool packing = false;
};

/// Tokenizes every example (in parallel) into a kCausalLM dataset (see the
/// top of this file). Throws std::invalid_argument for max_length 0, a
/// chat example without a template or a plain one without an EOS id, and
/// std::runtime_error naming the example for a rendered prompt that is not
/// a prefix of the whole conversation or a prompt/completion boundary that
/// falls inside a token.
TokenizedDataset tokenize_instructions(
    const InstructionDataset& dataset, const Tokenizer& tokenizer,
    const InstructionFormat& format, const InstructionTokenizeOptions& options);

/// Target tokens of a kCausalLM dataset (token_type_ids 1): the number of
/// tokens the loss averages over.
int64_t count_target_tokens(const TokenizedDataset& dataset);

}  // namespace peftcpp::data
