#pragma once
// Tokenizers from GGUF metadata (llama.cpp's tokenizer.ggml.* keys), built
// as transformers' GGUF converter builds them
// (AutoTokenizer.from_pretrained(dir, gguf_file=...)), as a tokenizer.json
// value that Tokenizer::from_json runs.
//
//   "gpt2"  byte-level BPE: vocabulary (tokens outside the byte alphabet
//           respelled in it), the file's merges, ByteLevel pre-tokenizer
//           (GPT-2's pattern) or, for the pre types transformers knows a
//           pattern for (llama-bpe, qwen2, ...), Split(pattern) + ByteLevel.
//   "llama" SentencePiece vocabulary with scores: LlamaTokenizer's pipeline
//           (sentencepiece_model.h) with merges ranked by score.
// Control tokens become special added tokens, user-defined ones plain added
// tokens; BOS/EOS follow tokenizer.ggml.add_bos_token / add_eos_token.
//
// transformers keeps GPT-2's pattern for pre types it has no entry for
// ("smollm", "gpt-2"); so do we, though llama.cpp (and SmolLM2's own
// tokenizer.json) split digits one by one for "smollm". Other pre types
// and models are refused by name.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "data/tokenizer/tokenizer.h"
#include "models/gguf/gguf_file.h"

namespace peftcpp::data {

/// What generation needs from a GGUF tokenizer besides the Tokenizer.
struct GgufTokenizerInfo {
  /// tokenizer.ggml.model ("gpt2", "llama").
  std::string model;
  /// tokenizer.ggml.pre; empty when absent.
  std::string pre;
  /// Special token ids, when the file names them.
  std::optional<int64_t> bos_id, eos_id, unk_id, pad_id;
  /// Whether encode() adds BOS / EOS (transformers' reading of the file:
  /// add_bos_token defaults to true for "llama" vocabularies only).
  bool add_bos_token = false;
  /// Whether encode() adds EOS.
  bool add_eos_token = false;
  /// tokenizer.chat_template, the Jinja template of the chat format.
  std::optional<std::string> chat_template;
};

/// Reads the tokenizer facts of GGUF metadata (the object of
/// gguf::GgufFile::metadata()); `where` names the file in errors.
GgufTokenizerInfo gguf_tokenizer_info(const nlohmann::json& metadata,
                                      std::string_view where);

/// The tokenizer.json value transformers builds from GGUF metadata. Throws
/// std::runtime_error naming `where` for an unsupported tokenizer.ggml.model
/// or tokenizer.ggml.pre and for missing or malformed keys.
nlohmann::json gguf_tokenizer_json(const nlohmann::json& metadata,
                                   std::string_view where);

/// The tokenizer of a GGUF file (Tokenizer::from_gguf_metadata on its
/// metadata).
Tokenizer tokenizer_from_gguf(const gguf::GgufFile& file);

}  // namespace peftcpp::data
