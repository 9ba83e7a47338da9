#pragma once
// Models: the third stage of the Hugging Face tokenizers pipeline, turning
// one pre-tokenized word into vocabulary tokens (WordPiece, BPE; Unigram
// would plug in beside them).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace peftcpp::data {

/// One vocabulary token produced by a model.
struct Token {
  /// Vocabulary id.
  int64_t id;
  /// Token text, owned by the model (valid while the model lives).
  std::string_view value;
};

/// Tokenizes words into vocabulary tokens (HF `Model`).
class Model {
 public:
  virtual ~Model() = default;
  /// Appends the tokens of one word (never empty) to `out`.
  virtual void tokenize(std::string_view word,
                        std::vector<Token>& out) const = 0;
  /// The id of `token`, if it is in the vocabulary.
  virtual std::optional<int64_t> token_to_id(std::string_view token) const = 0;
  /// The token with `id`, if there is one; owned by the model.
  virtual std::optional<std::string_view> id_to_token(int64_t id) const = 0;
  /// Number of distinct tokens in the vocabulary.
  virtual size_t vocab_size() const = 0;
};

/// Builds the model that a tokenizer.json "model" value describes. Throws
/// std::runtime_error naming `where` and the supported types otherwise.
std::unique_ptr<Model> model_from_json(const nlohmann::json& j,
                                       std::string_view where);

}  // namespace peftcpp::data
