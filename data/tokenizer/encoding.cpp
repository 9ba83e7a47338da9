#include "data/tokenizer/encoding.h"

#include <utility>

namespace peftcpp::data {

namespace {

template <typename T>
void keep(std::vector<T>& v, size_t n, Side side) {
  if (v.size() <= n)
    return;
  if (side == Side::kRight) {
    v.resize(n);
  } else {
    v.erase(v.begin(), v.end() - static_cast<std::ptrdiff_t>(n));
  }
}

template <typename T>
void grow(std::vector<T>& v, size_t n, const T& value, Side side) {
  if (side == Side::kRight) {
    v.insert(v.end(), n, value);
  } else {
    v.insert(v.begin(), n, value);
  }
}

template <typename T>
void concat(std::vector<T>& a, const std::vector<T>& b) {
  a.insert(a.end(), b.begin(), b.end());
}

}  // namespace

void Encoding::push_back(int64_t id, std::string token, int64_t type_id,
                         int64_t special) {
  ids.push_back(id);
  type_ids.push_back(type_id);
  attention_mask.push_back(1);
  special_tokens_mask.push_back(special);
  tokens.push_back(std::move(token));
}

void Encoding::append(const Encoding& other) {
  concat(ids, other.ids);
  concat(type_ids, other.type_ids);
  concat(attention_mask, other.attention_mask);
  concat(special_tokens_mask, other.special_tokens_mask);
  concat(tokens, other.tokens);
}

void Encoding::truncate(size_t max_length, Side side) {
  keep(ids, max_length, side);
  keep(type_ids, max_length, side);
  keep(attention_mask, max_length, side);
  keep(special_tokens_mask, max_length, side);
  keep(tokens, max_length, side);
}

void Encoding::pad(size_t length, int64_t pad_id, int64_t pad_type_id,
                   const std::string& pad_token, Side side) {
  if (ids.size() >= length)
    return;
  const size_t n = length - ids.size();
  grow(ids, n, pad_id, side);
  grow(type_ids, n, pad_type_id, side);
  grow(attention_mask, n, int64_t{0}, side);
  // HF marks padding as special (tokenizers' Encoding::pad).
  grow(special_tokens_mask, n, int64_t{1}, side);
  grow(tokens, n, pad_token, side);
}

}  // namespace peftcpp::data
