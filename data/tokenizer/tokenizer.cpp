#include "data/tokenizer/tokenizer.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>

#include "common/error.h"
#include "data/tokenizer/unicode.h"

namespace peftcpp::data {

namespace {

// A word to tokenize, or an added token already matched in the text.
struct Piece {
  std::string_view text;
  int64_t added_id;  // -1 for a word the model tokenizes
};

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<Normalizer> normalizer,
                     std::unique_ptr<PreTokenizer> pre_tokenizer,
                     std::unique_ptr<Model> model,
                     std::unique_ptr<PostProcessor> post_processor,
                     std::unique_ptr<Decoder> decoder)
    : normalizer_(std::move(normalizer)),
      pre_tokenizer_(std::move(pre_tokenizer)),
      model_(std::move(model)),
      post_processor_(std::move(post_processor)),
      decoder_(std::move(decoder)) {
  if (!model_) {
    throw std::invalid_argument(
        error_message("Tokenizer", "a model", "nullptr"));
  }
}

void Tokenizer::add_tokens(const std::vector<AddedToken>& tokens) {
  added_.add(tokens, *model_, normalizer_.get());
}

size_t Tokenizer::num_special_tokens_to_add(bool is_pair) const {
  return post_processor_ ? post_processor_->added_tokens(is_pair) : 0;
}

Encoding Tokenizer::encode_sequence(std::string_view input) const {
  // HF only ever sees valid UTF-8 (Python str); repair anything else first.
  std::string repaired;
  if (!unicode::is_valid_utf8(input)) {
    repaired = unicode::sanitize_utf8(input);
    input = repaired;
  }

  // 1. Cut out non-normalized added tokens from the raw text, normalize the
  // text between them, cut out normalized added tokens from the result and
  // pre-tokenize what is left into words. Empty pieces are dropped, as
  // HF's PreTokenizedString::split drops them.
  std::deque<std::string> normalized;  // deque: views into it stay valid
  PreTokenized words;
  std::vector<Piece> pieces;
  for (const AddedSplit& raw : added_.split(input, /*normalized=*/false)) {
    const std::string_view raw_text =
        input.substr(raw.begin, raw.end - raw.begin);
    if (raw_text.empty())
      continue;
    if (raw.id) {
      pieces.push_back(Piece{raw_text, *raw.id});
      continue;
    }
    std::string& text = normalized.emplace_back(raw_text);
    if (normalizer_)
      normalizer_->normalize(text);
    for (const AddedSplit& part : added_.split(text, /*normalized=*/true)) {
      const std::string_view part_text =
          std::string_view(text).substr(part.begin, part.end - part.begin);
      if (part_text.empty())
        continue;
      if (part.id) {
        pieces.push_back(Piece{part_text, *part.id});
      } else if (pre_tokenizer_) {
        const size_t first = words.words.size();
        // Metaspace's "first" prepend scheme asks whether this piece
        // starts the input.
        words.at_input_start = raw.begin == 0 && part.begin == 0;
        pre_tokenizer_->pre_tokenize(part_text, words);
        for (size_t i = first; i < words.words.size(); ++i) {
          if (!words.words[i].empty())
            pieces.push_back({words.words[i], -1});
        }
      } else {
        pieces.push_back(Piece{part_text, -1});
      }
    }
  }

  // 2. Tokenize every word. (The tokenizers sources of v0.23.1 and main
  // stop once max_length tokens exist, which changes how longest_first
  // splits a pair; the 0.23.3 wheel tokenizes everything, as the "swap"
  // pairs of the truncation fixtures check, and so do we.)
  std::vector<Token> tokens;
  for (const Piece& p : pieces) {
    if (p.added_id >= 0) {
      tokens.push_back(Token{p.added_id, p.text});
    } else {
      model_->tokenize(p.text, tokens);
    }
  }
  Encoding out;
  out.ids.reserve(tokens.size() + 2);
  out.tokens.reserve(tokens.size() + 2);
  for (const Token& t : tokens) {
    out.push_back(t.id, std::string(t.value), /*type_id=*/0, /*special=*/0);
  }
  return out;
}

void Tokenizer::check_options(const EncodeOptions& o, bool is_pair) const {
  const char* where = "Tokenizer::encode";
  if (o.pad_to_multiple_of && *o.pad_to_multiple_of == 0) {
    throw std::invalid_argument(
        error_message(where, "pad_to_multiple_of > 0", "0"));
  }
  const bool truncating =
      o.truncation != TruncationStrategy::kDoNotTruncate && o.max_length;
  const size_t added = num_special_tokens_to_add(is_pair);
  if (truncating && o.add_special_tokens && *o.max_length < added) {
    // HF computes max_length - added in unsigned arithmetic; it wraps and
    // the input silently comes back untruncated. Refuse instead.
    throw std::invalid_argument(error_message(
        where,
        "max_length of at least the " + std::to_string(added) +
            " special tokens added to a " + (is_pair ? "pair" : "sequence"),
        "max_length " + std::to_string(*o.max_length),
        "raise max_length or set add_special_tokens to false"));
  }
  if (o.padding == PaddingStrategy::kDoNotPad)
    return;
  if (!pad_) {
    throw std::invalid_argument(error_message(
        where, "a pad token for padding", "a tokenizer without one",
        "call set_pad_token or use a tokenizer.json with a padding section"));
  }
  if (o.padding == PaddingStrategy::kMaxLength && !o.max_length) {
    throw std::invalid_argument(
        error_message(where, "max_length for kMaxLength padding", "none"));
  }
  if (o.truncation != TruncationStrategy::kDoNotTruncate && o.max_length &&
      o.pad_to_multiple_of && *o.max_length % *o.pad_to_multiple_of != 0) {
    throw std::invalid_argument(error_message(
        where,
        "a truncation max_length that is a multiple of pad_to_multiple_of " +
            std::to_string(*o.pad_to_multiple_of),
        "max_length " + std::to_string(*o.max_length),
        "as transformers, refuse padding past the truncation length"));
  }
}

Encoding Tokenizer::post_process(Encoding first, std::optional<Encoding> second,
                                 const EncodeOptions& o) const {
  if (o.truncation != TruncationStrategy::kDoNotTruncate && o.max_length) {
    size_t budget = *o.max_length;
    if (o.add_special_tokens)
      budget -= num_special_tokens_to_add(second.has_value());
    truncate_encodings(first, second, budget, o.truncation, o.truncation_side);
  }
  if (post_processor_) {
    return post_processor_->process(std::move(first), std::move(second),
                                    o.add_special_tokens);
  }
  // No post-processor: concatenate, type ids 0 and 1 (HF default_process).
  if (second) {
    second->type_ids.assign(second->size(), 1);
    first.append(*second);
  }
  return first;
}

void Tokenizer::pad(std::vector<Encoding>& encodings,
                    const EncodeOptions& o) const {
  if (o.padding == PaddingStrategy::kDoNotPad || encodings.empty())
    return;
  size_t length = 0;
  if (o.padding == PaddingStrategy::kMaxLength) {
    length = *o.max_length;
  } else {
    for (const auto& e : encodings)
      length = std::max(length, e.size());
  }
  if (o.pad_to_multiple_of && length % *o.pad_to_multiple_of != 0) {
    length += *o.pad_to_multiple_of - length % *o.pad_to_multiple_of;
  }
  for (auto& e : encodings) {
    e.pad(length, pad_->id, pad_->type_id, pad_->token, o.padding_side);
  }
}

Encoding Tokenizer::encode(std::string_view text,
                           std::optional<std::string_view> pair,
                           const EncodeOptions& options) const {
  check_options(options, pair.has_value());
  Encoding first = encode_sequence(text);
  std::optional<Encoding> second;
  if (pair)
    second = encode_sequence(*pair);
  std::vector<Encoding> one;
  one.push_back(post_process(std::move(first), std::move(second), options));
  pad(one, options);
  return std::move(one.front());
}

std::vector<Encoding> Tokenizer::encode_batch(
    const std::vector<TextInput>& inputs, const EncodeOptions& options) const {
  for (const auto& in : inputs)
    check_options(options, in.pair.has_value());
  EncodeOptions unpadded = options;
  unpadded.padding = PaddingStrategy::kDoNotPad;  // padded together below
  unpadded.pad_to_multiple_of.reset();

  std::vector<Encoding> out(inputs.size());
  std::atomic<size_t> next{0};
  std::mutex error_mutex;
  size_t error_index = inputs.size();
  std::exception_ptr error;
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < inputs.size();) {
      try {
        const auto& in = inputs[i];
        out[i] = encode(
            in.text,
            in.pair ? std::optional<std::string_view>(*in.pair) : std::nullopt,
            unpadded);
      } catch (...) {
        // Report the failing input with the lowest index, whatever the
        // thread timing, so errors are reproducible.
        std::lock_guard<std::mutex> lock(error_mutex);
        if (i < error_index) {
          error_index = i;
          error = std::current_exception();
        }
      }
    }
  };
  const size_t cores = std::max(1u, std::thread::hardware_concurrency());
  const size_t n_threads = std::min(cores, inputs.size());
  std::vector<std::thread> threads;
  for (size_t t = 1; t < n_threads; ++t)
    threads.emplace_back(work);
  work();
  for (auto& t : threads)
    t.join();
  if (error)
    std::rethrow_exception(error);
  pad(out, options);
  return out;
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids,
                              bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int64_t id : ids) {
    std::optional<std::string> token = id_to_token(id);
    if (!token)
      continue;  // unknown ids vanish, as in HF
    if (skip_special_tokens && added_.is_special(*token))
      continue;
    tokens.push_back(std::move(*token));
  }
  if (decoder_)
    return decoder_->decode(tokens);
  std::string out;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (i > 0)
      out += ' ';
    out += tokens[i];
  }
  return out;
}

std::optional<int64_t> Tokenizer::token_to_id(std::string_view token) const {
  if (auto id = added_.token_to_id(token))
    return id;
  return model_->token_to_id(token);
}

std::optional<std::string> Tokenizer::id_to_token(int64_t id) const {
  if (auto token = added_.id_to_token(id))
    return token;
  if (auto token = model_->id_to_token(id))
    return std::string(*token);
  return std::nullopt;
}

size_t Tokenizer::vocab_size(bool with_added_tokens) const {
  size_t n = model_->vocab_size();
  if (!with_added_tokens)
    return n;
  for (const auto& entry : added_.contents()) {
    if (!model_->token_to_id(entry.first))
      ++n;
  }
  return n;
}

}  // namespace peftcpp::data
