#include "data/tokenizer/added_vocabulary.h"

#include <algorithm>
#include <map>

#include "data/tokenizer/model.h"
#include "data/tokenizer/normalizer.h"
#include "data/tokenizer/unicode.h"

namespace peftcpp::data {

namespace {

bool is_continuation_byte(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

// The last code point of text[0, end), or 0 when empty.
char32_t last_code_point(std::string_view text, size_t end) {
  if (end == 0)
    return 0;
  size_t start = end - 1;
  while (start > 0 && is_continuation_byte(text[start]))
    --start;
  return unicode::next_code_point(text, start);
}

// HF's regexes: \w$ on the text before a match, ^\w on the text after it.
bool ends_with_word(std::string_view text, size_t end) {
  return end > 0 && unicode::is_word_char(last_code_point(text, end));
}

bool starts_with_word(std::string_view text, size_t begin) {
  if (begin >= text.size())
    return false;
  return unicode::is_word_char(unicode::next_code_point(text, begin));
}

// \s*$ on text[0, end): where the trailing whitespace starts.
size_t trailing_space_start(std::string_view text, size_t end) {
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && is_continuation_byte(text[start]))
      --start;
    size_t i = start;
    if (!unicode::is_whitespace(unicode::next_code_point(text, i)))
      break;
    end = start;
  }
  return end;
}

// ^\s* on text[begin, ...): where the leading whitespace ends.
size_t leading_space_end(std::string_view text, size_t begin) {
  while (begin < text.size()) {
    size_t i = begin;
    if (!unicode::is_whitespace(unicode::next_code_point(text, i)))
      break;
    begin = i;
  }
  return begin;
}

}  // namespace

bool AddedToken::operator==(const AddedToken& o) const {
  return content == o.content && single_word == o.single_word &&
         lstrip == o.lstrip && rstrip == o.rstrip &&
         normalized == o.normalized && special == o.special;
}

void AddedVocabulary::Trie::insert(std::string_view pattern, int64_t id) {
  if (nodes.empty())
    nodes.emplace_back();
  if (pattern.empty())
    return;  // an empty pattern would match everywhere
  first_byte[static_cast<unsigned char>(pattern[0])] = true;
  int32_t node = 0;
  for (char ch : pattern) {
    const auto b = static_cast<unsigned char>(ch);
    auto& next = nodes[node].next;
    auto it = std::find_if(next.begin(), next.end(),
                           [b](const auto& e) { return e.first == b; });
    if (it == next.end()) {
      const auto child = static_cast<int32_t>(nodes.size());
      nodes[node].next.emplace_back(b, child);
      nodes.emplace_back();
      node = child;
    } else {
      node = it->second;
    }
  }
  nodes[node].id = id;
}

size_t AddedVocabulary::Trie::longest_at(std::string_view text, size_t at,
                                         int64_t& id) const {
  size_t best = 0;
  int32_t node = 0;
  for (size_t i = at; i < text.size(); ++i) {
    const auto b = static_cast<unsigned char>(text[i]);
    const auto& next = nodes[node].next;
    auto it = std::find_if(next.begin(), next.end(),
                           [b](const auto& e) { return e.first == b; });
    if (it == next.end())
      break;
    node = it->second;
    if (nodes[node].id >= 0) {
      best = i + 1;
      id = nodes[node].id;
    }
  }
  return best;
}

void AddedVocabulary::add(const std::vector<AddedToken>& tokens,
                          const Model& model, const Normalizer* normalizer) {
  // New ids continue after the model vocabulary, or after the highest
  // added id when that is already past it (tokenizers' add_tokens).
  const auto vocab_size = static_cast<int64_t>(model.vocab_size());
  int64_t next_id = vocab_size;
  if (!by_id_.empty()) {
    int64_t max_id = -1;
    for (const auto& entry : by_id_)
      max_id = std::max(max_id, entry.first);
    if (max_id >= vocab_size || vocab_size == 0)
      next_id = max_id + 1;
  }
  for (const AddedToken& token : tokens) {
    if (token.content.empty())
      continue;
    const auto known = by_content_.find(token.content);
    if (known != by_content_.end() && by_id_.at(known->second) == token) {
      continue;
    }
    int64_t id;
    if (known != by_content_.end()) {
      id = known->second;
    } else if (auto model_id = model.token_to_id(token.content)) {
      id = *model_id;
    } else {
      id = next_id++;
    }
    if (token.normalized && normalizer != nullptr) {
      std::string normalized = token.content;
      normalizer->normalize(normalized);
      if (normalized != token.content)
        normalized_content_[id] = normalized;
    }
    by_content_[token.content] = id;
    if (token.special)
      special_.insert(token.content);
    by_id_[id] = token;
  }
  rebuild_tries();
}

void AddedVocabulary::rebuild_tries() {
  raw_trie_ = Trie{};
  normalized_trie_ = Trie{};
  raw_trie_.nodes.emplace_back();
  normalized_trie_.nodes.emplace_back();
  // Insert in id order so that the outcome never depends on hash order.
  const std::map<int64_t, AddedToken> ordered(by_id_.begin(), by_id_.end());
  for (const auto& [id, token] : ordered) {
    if (token.normalized) {
      const auto cached = normalized_content_.find(id);
      normalized_trie_.insert(cached != normalized_content_.end()
                                  ? std::string_view(cached->second)
                                  : std::string_view(token.content),
                              id);
    } else {
      raw_trie_.insert(token.content, id);
    }
  }
}

std::optional<int64_t> AddedVocabulary::token_to_id(
    std::string_view content) const {
  const auto it = by_content_.find(std::string(content));
  if (it == by_content_.end())
    return std::nullopt;
  return it->second;
}

std::optional<std::string> AddedVocabulary::id_to_token(int64_t id) const {
  const auto it = by_id_.find(id);
  if (it == by_id_.end())
    return std::nullopt;
  const auto cached = normalized_content_.find(id);
  if (cached != normalized_content_.end())
    return cached->second;
  return it->second.content;
}

bool AddedVocabulary::is_special(std::string_view content) const {
  return special_.count(std::string(content)) > 0;
}

std::vector<AddedSplit> AddedVocabulary::split(std::string_view text,
                                               bool normalized) const {
  if (text.empty())
    return {AddedSplit{0, 0, std::nullopt}};
  const Trie& trie = normalized ? normalized_trie_ : raw_trie_;
  if (trie.empty())
    return {AddedSplit{0, text.size(), std::nullopt}};
  std::vector<AddedSplit> out;
  size_t done = 0;  // end of the last accepted split
  size_t pos = 0;   // where the next match may start
  while (pos < text.size()) {
    // Leftmost start first, then the longest match there.
    size_t start = pos, stop = 0;
    int64_t id = -1;
    for (; start < text.size(); ++start) {
      if (!trie.first_byte[static_cast<unsigned char>(text[start])])
        continue;
      stop = trie.longest_at(text, start, id);
      if (stop != 0)
        break;
    }
    if (stop == 0)
      break;
    pos = stop;  // the matcher resumes after the raw match, whatever follows
    const AddedToken& token = by_id_.at(id);
    if (token.single_word && ((start > 0 && ends_with_word(text, start)) ||
                              starts_with_word(text, stop))) {
      continue;  // inside a word: not this token
    }
    if (token.lstrip)
      start = std::max(trailing_space_start(text, start), done);
    if (token.rstrip)
      stop = leading_space_end(text, stop);
    if (done < start)
      out.push_back(AddedSplit{done, start, std::nullopt});
    out.push_back(AddedSplit{start, stop, id});
    done = stop;
  }
  if (done != text.size()) {
    out.push_back(AddedSplit{done, text.size(), std::nullopt});
  }
  return out;
}

}  // namespace peftcpp::data
