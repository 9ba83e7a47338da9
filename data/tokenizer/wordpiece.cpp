#include "data/tokenizer/wordpiece.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "common/error.h"
#include "data/tokenizer/unicode.h"

namespace peftcpp::data {

namespace {

bool is_continuation_byte(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

// Rust's str::trim_end: drops trailing White_Space code points.
std::string_view trim_end(std::string_view s) {
  while (!s.empty()) {
    size_t start = s.size() - 1;
    while (start > 0 && is_continuation_byte(s[start]))
      --start;
    size_t i = start;
    if (!unicode::is_whitespace(unicode::next_code_point(s, i)))
      break;
    s.remove_suffix(s.size() - start);
  }
  return s;
}

}  // namespace

WordPiece::WordPiece(const std::vector<std::pair<std::string, int64_t>>& vocab,
                     WordPieceOptions options)
    : options_(std::move(options)) {
  size_t total = 0;
  for (const auto& entry : vocab)
    total += entry.first.size();
  arena_.reserve(total);  // no reallocation below: the views stay valid
  std::vector<std::string_view> views;
  views.reserve(vocab.size());
  for (const auto& entry : vocab) {
    const size_t at = arena_.size();
    arena_ += entry.first;
    views.push_back(std::string_view(arena_).substr(at, entry.first.size()));
  }
  vocab_.reserve(vocab.size());
  const std::string_view prefix = options_.continuing_subword_prefix;
  for (size_t i = 0; i < vocab.size(); ++i) {
    const std::string_view token = views[i];
    const int64_t id = vocab[i].second;
    vocab_[token] = Entry{id, token};  // later duplicates win, as in HF
    by_id_[id] = token;
    max_piece_bytes_ = std::max(max_piece_bytes_, token.size());
    if (!prefix.empty() && token.substr(0, prefix.size()) == prefix) {
      const std::string_view rest = token.substr(prefix.size());
      continuation_[rest] = Entry{id, token};
      max_continuation_bytes_ = std::max(max_continuation_bytes_, rest.size());
    }
  }
  const auto unk = vocab_.find(options_.unk_token);
  if (unk == vocab_.end()) {
    throw std::out_of_range(error_message(
        "WordPiece",
        "unk_token \"" + options_.unk_token + "\" in the vocabulary",
        "no such token among " + std::to_string(vocab_.size()) + " tokens",
        "set unk_token to a token of the vocabulary"));
  }
  unk_ = Token{unk->second.id, unk->second.token};
}

std::vector<std::pair<std::string, int64_t>> WordPiece::read_vocab_file(
    const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw std::runtime_error(
        error_message("WordPiece", "a readable vocabulary file", path.string(),
                      "check the path; vocab.txt has one token per line"));
  }
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string text = buf.str();
  std::vector<std::pair<std::string, int64_t>> vocab;
  size_t start = 0;
  int64_t index = 0;
  // BufRead::lines(): split on '\n'; a final newline does not start a line.
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos)
      end = text.size();
    const std::string_view line =
        std::string_view(text).substr(start, end - start);
    if (!unicode::is_valid_utf8(line)) {
      throw std::runtime_error(error_message("WordPiece", "UTF-8 text",
                                             path.string() + " line " +
                                                 std::to_string(index + 1) +
                                                 " with invalid bytes"));
    }
    vocab.emplace_back(std::string(trim_end(line)), index++);
    start = end + 1;
  }
  return vocab;
}

void WordPiece::tokenize(std::string_view word, std::vector<Token>& out) const {
  if (unicode::count_code_points(word) > options_.max_input_chars_per_word) {
    out.push_back(unk_);
    return;
  }
  const size_t first_new = out.size();
  const bool plain_continuation = options_.continuing_subword_prefix.empty();
  size_t start = 0;
  while (start < word.size()) {
    const Map& map =
        (start == 0 || plain_continuation) ? vocab_ : continuation_;
    const size_t longest = (start == 0 || plain_continuation)
                               ? max_piece_bytes_
                               : max_continuation_bytes_;
    // Greedy longest match first. Pieces longer than the longest key cannot
    // match, so the search starts there instead of at the word's end.
    size_t end = std::min(word.size(), start + longest);
    while (end < word.size() && end > start &&
           is_continuation_byte(word[end])) {
      --end;  // back to a character boundary
    }
    bool found = false;
    while (end > start) {
      const auto it = map.find(word.substr(start, end - start));
      if (it != map.end()) {
        // The token text is the vocabulary entry (with its "##" prefix).
        out.push_back(Token{it->second.id, it->second.token});
        found = true;
        break;
      }
      do {
        --end;  // drop the last character
      } while (end > start && is_continuation_byte(word[end]));
    }
    if (!found) {
      out.resize(first_new);  // one bad piece makes the whole word unknown
      out.push_back(unk_);
      return;
    }
    start = end;
  }
}

std::optional<int64_t> WordPiece::token_to_id(std::string_view token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end())
    return std::nullopt;
  return it->second.id;
}

std::optional<std::string_view> WordPiece::id_to_token(int64_t id) const {
  const auto it = by_id_.find(id);
  if (it == by_id_.end())
    return std::nullopt;
  return it->second;
}

}  // namespace peftcpp::data
