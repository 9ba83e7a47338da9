#pragma once
// A Hugging Face-compatible tokenizer: tokenizer.json (or a BERT vocab.txt)
// in, the same ids, type ids and tokens as HF `tokenizers` out.
//
// The pipeline is HF's: added tokens are cut out of the raw text, the rest
// is normalized, pre-tokenized into words, each word is tokenized by the
// model, the sequences are truncated, wrapped in special tokens by the
// post-processor and padded. Each stage is a small polymorphic class, so new
// normalizers, pre-tokenizers or models plug in without touching the others.
//
//   auto tok = Tokenizer::from_pretrained(dir);
//   EncodeOptions o;
//   o.max_length = 128;
//   o.padding = PaddingStrategy::kLongest;
//   std::vector<Encoding> batch = tok.encode_batch({{"a sentence"}}, o);
//   Encoding pair = tok.encode("premise", "hypothesis", o);

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "data/tokenizer/added_vocabulary.h"
#include "data/tokenizer/decoder.h"
#include "data/tokenizer/encoding.h"
#include "data/tokenizer/model.h"
#include "data/tokenizer/normalizer.h"
#include "data/tokenizer/post_processor.h"
#include "data/tokenizer/pre_tokenizer.h"
#include "data/tokenizer/truncation.h"

namespace peftcpp::data {

/// How encodings are padded.
enum class PaddingStrategy {
  /// No padding.
  kDoNotPad,
  /// To the longest encoding of the batch (a lone encode() pads nothing
  /// but pad_to_multiple_of).
  kLongest,
  /// To max_length.
  kMaxLength,
};

/// Per-call options, with the meaning of transformers' tokenizer(...) call.
struct EncodeOptions {
  /// Wrap the sequences in the post-processor's special tokens.
  bool add_special_tokens = true;
  /// Token budget, special tokens included. Truncation happens only when it
  /// is set; kMaxLength padding needs it.
  std::optional<size_t> max_length;
  /// How to truncate to max_length.
  TruncationStrategy truncation = TruncationStrategy::kLongestFirst;
  /// How to pad.
  PaddingStrategy padding = PaddingStrategy::kDoNotPad;
  /// Round the padded length up to a multiple of this (> 0).
  std::optional<size_t> pad_to_multiple_of;
  /// Which end truncation cuts.
  Side truncation_side = Side::kRight;
  /// Which end padding fills.
  Side padding_side = Side::kRight;
};

/// One input of encode_batch: a sequence ({"text"}) or a pair
/// ({"text", "pair"}).
struct TextInput {
  /// The (first) sequence.
  std::string text;
  /// The second sequence of a pair.
  std::optional<std::string> pair;
};

/// How to build a BERT tokenizer from vocab.txt, named as in
/// tokenizer_config.json (the arguments of transformers' BertTokenizer).
struct BertOptions {
  /// Lowercase the input.
  bool do_lower_case = true;
  /// Strip accents; unset means "same as do_lower_case".
  std::optional<bool> strip_accents;
  /// Put spaces around CJK ideographs.
  bool tokenize_chinese_chars = true;
  /// Unknown-word token.
  std::string unk_token = "[UNK]";
  /// Separator token.
  std::string sep_token = "[SEP]";
  /// Padding token.
  std::string pad_token = "[PAD]";
  /// Classifier token.
  std::string cls_token = "[CLS]";
  /// Mask token.
  std::string mask_token = "[MASK]";
  /// The model's maximum input length, when known.
  std::optional<size_t> model_max_length;
};

/// How to build a LLaMA tokenizer from a SentencePiece tokenizer.model,
/// named as in tokenizer_config.json (the arguments of transformers'
/// LlamaTokenizer; defaults are transformers 5's for a config that does not
/// set them).
struct SentencePieceOptions {
  /// Start every sequence with bos_token (LLaMA-2's config says true;
  /// transformers 5 defaults to false).
  bool add_bos_token = false;
  /// End every sequence with eos_token.
  bool add_eos_token = false;
  /// Prepend '▁' after added tokens too (Metaspace prepend_scheme "always"
  /// instead of "first").
  bool legacy = false;
  /// Prepend '▁' to the text at all (prepend_scheme "never" otherwise); the
  /// decoder then strips one leading space.
  bool add_prefix_space = true;
  /// Beginning-of-sequence token; unset: none.
  std::optional<std::string> bos_token = "<s>";
  /// End-of-sequence token; unset: none.
  std::optional<std::string> eos_token = "</s>";
  /// Unknown token (an added special token; the BPE model has none).
  std::optional<std::string> unk_token = "<unk>";
  /// Padding token; LLaMA has none.
  std::optional<std::string> pad_token;
  /// The model's maximum input length, when known.
  std::optional<size_t> model_max_length;
};

/// The padding token: id, type id and string.
struct PadToken {
  /// Vocabulary id.
  int64_t id = 0;
  /// Type id given to padding.
  int64_t type_id = 0;
  /// Token string.
  std::string token;
};

/// A complete tokenization pipeline. Thread-safe for concurrent encodes.
class Tokenizer {
 public:
  /// Loads tokenizer.json. Throws std::runtime_error naming the file when
  /// it is missing or malformed or uses an unsupported component type.
  static Tokenizer from_file(const std::filesystem::path& tokenizer_json);

  /// Builds the pipeline from an in-memory tokenizer.json value (as from
  /// GGUF metadata); `where` names its origin in error messages.
  static Tokenizer from_json(const nlohmann::json& tokenizer_json,
                             std::string_view where);

  /// Builds a BERT tokenizer from vocab.txt as transformers' BertTokenizer
  /// does (BertNormalizer, BertPreTokenizer, WordPiece, [CLS] A [SEP] B
  /// [SEP], the five special tokens as added tokens).
  static Tokenizer from_vocab_file(const std::filesystem::path& vocab_txt,
                                   const BertOptions& options = {});

  /// Builds a LLaMA tokenizer from a SentencePiece tokenizer.model as
  /// transformers 5's LlamaTokenizer converts it (see
  /// data/tokenizer/sentencepiece_model.h): BPE with merges generated from
  /// the pieces, Metaspace, byte fallback, BOS/EOS per the options, control
  /// pieces as special added tokens. Throws std::runtime_error naming the
  /// file when it cannot be read.
  static Tokenizer from_sentencepiece(const std::filesystem::path& model_file,
                                      const SentencePieceOptions& options = {});

  /// Builds the tokenizer that GGUF tokenizer.* metadata describes (the
  /// metadata object of gguf::GgufFile, as transformers' GGUF converter
  /// builds it; see data/tokenizer/gguf_tokenizer.h); `where` names the
  /// file in errors.
  static Tokenizer from_gguf_metadata(const nlohmann::json& metadata,
                                      std::string_view where);

  /// Loads a model folder: tokenizer.json when present (plus
  /// model_max_length and pad_token from tokenizer_config.json), else
  /// tokenizer.model (SentencePiece, with tokenizer_config.json's
  /// add_bos_token, add_eos_token, legacy, add_prefix_space, special and
  /// added tokens), else vocab.txt with tokenizer_config.json's
  /// do_lower_case, strip_accents, tokenize_chinese_chars and special
  /// tokens.
  static Tokenizer from_pretrained(const std::filesystem::path& dir);

  /// Assembles a pipeline; only `model` is required.
  Tokenizer(std::unique_ptr<Normalizer> normalizer,
            std::unique_ptr<PreTokenizer> pre_tokenizer,
            std::unique_ptr<Model> model,
            std::unique_ptr<PostProcessor> post_processor,
            std::unique_ptr<Decoder> decoder);

  /// Adds tokens to the added vocabulary (HF add_tokens semantics).
  void add_tokens(const std::vector<AddedToken>& tokens);

  /// Encodes a sequence or a pair. Throws std::invalid_argument for options
  /// HF rejects: a max_length smaller than the special tokens, only_second
  /// without a pair, a sequence too short for only_first/only_second, a
  /// max_length that is not a multiple of pad_to_multiple_of, padding
  /// without a pad token or kMaxLength padding without max_length.
  Encoding encode(std::string_view text,
                  std::optional<std::string_view> pair = std::nullopt,
                  const EncodeOptions& options = {}) const;

  /// Encodes inputs in parallel on all cores, then pads them together.
  std::vector<Encoding> encode_batch(const std::vector<TextInput>& inputs,
                                     const EncodeOptions& options = {}) const;

  /// Decodes ids to text (unknown ids are skipped, as in HF).
  std::string decode(const std::vector<int64_t>& ids,
                     bool skip_special_tokens = false) const;

  /// The id of a token (added tokens first, then the model vocabulary).
  std::optional<int64_t> token_to_id(std::string_view token) const;
  /// The token of an id.
  std::optional<std::string> id_to_token(int64_t id) const;
  /// Vocabulary size, with or without the added tokens not in the model.
  size_t vocab_size(bool with_added_tokens = true) const;
  /// model_max_length from tokenizer_config.json or BertOptions.
  std::optional<size_t> model_max_length() const { return model_max_length_; }
  /// Sets model_max_length.
  void set_model_max_length(std::optional<size_t> n) { model_max_length_ = n; }
  /// The padding token, when the tokenizer has one.
  const std::optional<PadToken>& pad_token() const { return pad_; }
  /// Sets the padding token.
  void set_pad_token(std::optional<PadToken> pad) { pad_ = std::move(pad); }
  /// Special tokens the post-processor adds around one sequence or a pair.
  size_t num_special_tokens_to_add(bool is_pair) const;

 private:
  Encoding encode_sequence(std::string_view text) const;
  Encoding post_process(Encoding first, std::optional<Encoding> second,
                        const EncodeOptions& options) const;
  void check_options(const EncodeOptions& options, bool is_pair) const;
  void pad(std::vector<Encoding>& encodings,
           const EncodeOptions& options) const;

  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<PostProcessor> post_processor_;
  std::unique_ptr<Decoder> decoder_;
  AddedVocabulary added_;
  std::optional<PadToken> pad_;
  std::optional<size_t> model_max_length_;
};

}  // namespace peftcpp::data
