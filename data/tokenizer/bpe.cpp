#include "data/tokenizer/bpe.h"

#include <nlohmann/json.hpp>

#include <functional>
#include <mutex>
#include <queue>
#include <stdexcept>

#include "common/error.h"
#include "data/tokenizer/json_util.h"

namespace peftcpp::data {

namespace {

uint64_t pair_key(int64_t a, int64_t b) {
  return (static_cast<uint64_t>(a) << 32) ^ static_cast<uint32_t>(b);
}

size_t char_length(unsigned char b) {
  if (b < 0xC0)
    return 1;
  if (b < 0xE0)
    return 2;
  if (b < 0xF0)
    return 3;
  return 4;
}

// "<0x0A>": the byte-fallback token of a byte (Rust's format "<{b:#04X}>").
std::string byte_token(unsigned char b) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  return std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">";
}

// Words up to this many bytes are cached (HF's MAX_LENGTH).
constexpr size_t kMaxCachedWord = 256;
constexpr size_t kCacheShards = 16;
constexpr size_t kCachePerShard = 8192;

}  // namespace

// Merged words by text. Sharded so the threads of encode_batch rarely wait
// on each other; a full shard stops growing (HF's cache stops too).
struct Bpe::Cache {
  struct Shard {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<int64_t>> words;
  };
  Shard shards[kCacheShards];
  Shard& shard_of(std::string_view word) {
    return shards[std::hash<std::string_view>{}(word) % kCacheShards];
  }
};

Bpe::Bpe(const std::vector<std::pair<std::string, int64_t>>& vocab,
         const std::vector<std::pair<std::string, std::string>>& merges,
         BpeOptions options)
    : options_(std::move(options)), cache_(std::make_unique<Cache>()) {
  vocab_.reserve(vocab.size());
  for (const auto& [token, id] : vocab) {
    const std::string_view view = tokens_.emplace_back(token);
    vocab_[view] = id;  // a repeated token keeps its last id
    by_id_[id] = view;
  }
  const size_t prefix_len = options_.continuing_subword_prefix
                                ? options_.continuing_subword_prefix->size()
                                : 0;
  const auto id_of = [&](const std::string& token, size_t rank) {
    const auto it = vocab_.find(token);
    if (it == vocab_.end()) {
      throw std::runtime_error(
          error_message("Bpe", "merge tokens that are in the vocabulary",
                        "\"" + token + "\" in merge " + std::to_string(rank),
                        "the vocab and merges come from different tokenizers"));
    }
    return it->second;
  };
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    const int64_t a_id = id_of(a, rank);
    const int64_t b_id = id_of(b, rank);
    // The merged token drops b's continuation prefix (unchecked, as in HF).
    const std::string merged = a + b.substr(std::min(prefix_len, b.size()));
    const int64_t new_id = id_of(merged, rank);
    // A repeated pair keeps its last rank, as HF's map collection does.
    merges_[pair_key(a_id, b_id)] = Merge{static_cast<uint32_t>(rank), new_id};
  }
  if (options_.unk_token) {
    const auto it = vocab_.find(*options_.unk_token);
    if (it != vocab_.end())
      unk_id_ = it->second;
  }
  if (options_.byte_fallback) {
    for (int b = 0; b < 256; ++b) {
      const auto it = vocab_.find(byte_token(static_cast<unsigned char>(b)));
      if (it != vocab_.end())
        byte_ids_[b] = it->second;
    }
  }
}

Bpe::~Bpe() = default;

const Bpe::Merge* Bpe::find_merge(int64_t a, int64_t b) const {
  const auto it = merges_.find(pair_key(a, b));
  return it == merges_.end() ? nullptr : &it->second;
}

std::vector<int64_t> Bpe::merge_word(std::string_view w) const {
  // The initial symbols: one per character (with the continuation prefix
  // on all but the first, the end-of-word suffix on the last), a byte
  // token per byte or unk_token for characters outside the vocabulary.
  std::vector<int64_t> ids;
  ids.reserve(w.size());
  std::optional<int64_t> pending_unk;  // an unk not yet emitted (fuse_unk)
  std::string s;
  for (size_t i = 0; i < w.size();) {
    const size_t n =
        std::min(char_length(static_cast<unsigned char>(w[i])), w.size() - i);
    const bool is_first = i == 0;
    const bool is_last = i + n == w.size();
    s.clear();
    if (!is_first && options_.continuing_subword_prefix)
      s += *options_.continuing_subword_prefix;
    s.append(w.substr(i, n));
    if (is_last && options_.end_of_word_suffix)
      s += *options_.end_of_word_suffix;
    i += n;

    const auto it = vocab_.find(s);
    if (it != vocab_.end()) {
      if (pending_unk) {
        ids.push_back(*pending_unk);
        pending_unk.reset();
      }
      ids.push_back(it->second);
      continue;
    }
    if (options_.byte_fallback) {
      bool all = true;
      for (char c : s)
        all = all && byte_ids_[static_cast<unsigned char>(c)].has_value();
      if (all) {
        // HF appends the bytes without first emitting a pending unk.
        for (char c : s)
          ids.push_back(*byte_ids_[static_cast<unsigned char>(c)]);
        continue;
      }
    }
    if (!options_.unk_token)
      continue;  // no unk_token: the character is dropped, as in HF
    if (!unk_id_) {
      throw std::runtime_error(error_message(
          "Bpe::tokenize",
          "unk_token \"" + *options_.unk_token + "\" in the vocabulary",
          "a character outside the vocabulary and no such token",
          "add the unk token to the vocab"));
    }
    if (pending_unk && !options_.fuse_unk)
      ids.push_back(*pending_unk);
    pending_unk = *unk_id_;
  }
  if (pending_unk)
    ids.push_back(*pending_unk);
  merge_all(ids);
  return ids;
}

void Bpe::merge_all(std::vector<int64_t>& ids) const {
  // tokenizers' Word::merge_all: a heap of candidate merges ordered by
  // (rank, position); stale entries are recognised and skipped. Symbols
  // form a linked list so merging is O(1).
  struct Symbol {
    int64_t id;
    int prev, next;
    bool alive;
  };
  struct Candidate {
    uint32_t rank;
    int pos;
    int64_t new_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  const int n = static_cast<int>(ids.size());
  if (n < 2)
    return;
  std::vector<Symbol> sym(n);
  for (int i = 0; i < n; ++i)
    sym[i] = Symbol{ids[i], i - 1, i + 1 < n ? i + 1 : -1, true};
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  for (int i = 0; i + 1 < n; ++i) {
    if (const Merge* m = find_merge(ids[i], ids[i + 1]))
      queue.push(Candidate{m->rank, i, m->new_id});
  }
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& cur = sym[top.pos];
    if (!cur.alive || cur.next < 0)
      continue;
    const Symbol right = sym[cur.next];
    const Merge* m = find_merge(cur.id, right.id);
    if (m == nullptr || m->new_id != top.new_id)
      continue;  // the pair changed since this entry was queued
    sym[cur.next].alive = false;
    cur.id = top.new_id;
    cur.next = right.next;
    if (right.next >= 0)
      sym[right.next].prev = top.pos;
    if (cur.prev >= 0) {
      if (const Merge* pm = find_merge(sym[cur.prev].id, cur.id))
        queue.push(Candidate{pm->rank, cur.prev, pm->new_id});
    }
    if (cur.next >= 0) {
      if (const Merge* nm = find_merge(cur.id, sym[cur.next].id))
        queue.push(Candidate{nm->rank, top.pos, nm->new_id});
    }
  }
  ids.clear();
  for (const Symbol& s : sym) {
    if (s.alive)
      ids.push_back(s.id);
  }
}

void Bpe::tokenize(std::string_view word, std::vector<Token>& out) const {
  if (word.empty())
    return;
  if (options_.ignore_merges) {
    const auto it = vocab_.find(word);
    if (it != vocab_.end()) {
      out.push_back(Token{it->second, it->first});
      return;
    }
  }
  const auto emit = [&](const std::vector<int64_t>& ids) {
    for (int64_t id : ids)
      out.push_back(Token{id, by_id_.at(id)});
  };
  if (word.size() >= kMaxCachedWord) {
    emit(merge_word(word));
    return;
  }
  Cache::Shard& shard = cache_->shard_of(word);
  {
    std::lock_guard<std::mutex> lock(shard.mutex);
    const auto it = shard.words.find(std::string(word));
    if (it != shard.words.end()) {
      emit(it->second);
      return;
    }
  }
  std::vector<int64_t> ids = merge_word(word);
  emit(ids);
  std::lock_guard<std::mutex> lock(shard.mutex);
  if (shard.words.size() < kCachePerShard)
    shard.words.emplace(std::string(word), std::move(ids));
}

std::optional<int64_t> Bpe::token_to_id(std::string_view token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end())
    return std::nullopt;
  return it->second;
}

std::optional<std::string_view> Bpe::id_to_token(int64_t id) const {
  const auto it = by_id_.find(id);
  if (it == by_id_.end())
    return std::nullopt;
  return it->second;
}

std::unique_ptr<Bpe> Bpe::from_json(const nlohmann::json& j,
                                    std::string_view where) {
  const auto dropout = j.find("dropout");
  if (dropout != j.end() && !dropout->is_null() &&
      !(dropout->is_number() && dropout->get<double>() == 0.0)) {
    throw std::runtime_error(error_message(
        json_path(where, "dropout"), "null (deterministic BPE)",
        dropout->dump(),
        "BPE dropout samples merges at random and is for training only; "
        "set it to null in tokenizer.json"));
  }
  BpeOptions o;
  const auto optional_string = [&](const char* key) {
    std::optional<std::string> v;
    const auto it = j.find(key);
    if (it != j.end() && !it->is_null())
      v = json_as<std::string>(*it, json_path(where, key), "a string or null");
    return v;
  };
  o.unk_token = optional_string("unk_token");
  o.continuing_subword_prefix = optional_string("continuing_subword_prefix");
  o.end_of_word_suffix = optional_string("end_of_word_suffix");
  o.fuse_unk = json_get_or(j, "fuse_unk", false, where);
  o.byte_fallback = json_get_or(j, "byte_fallback", false, where);
  o.ignore_merges = json_get_or(j, "ignore_merges", false, where);

  const auto vocab_it = j.find("vocab");
  if (vocab_it == j.end() || !vocab_it->is_object()) {
    throw std::runtime_error(
        error_message(json_path(where, "vocab"), "an object of token -> id",
                      vocab_it == j.end() ? "none" : vocab_it->type_name()));
  }
  std::vector<std::pair<std::string, int64_t>> vocab;
  vocab.reserve(vocab_it->size());
  for (const auto& [token, id] : vocab_it->items()) {
    if (!id.is_number_unsigned()) {
      throw std::runtime_error(
          error_message(json_path(where, "vocab"), "a non-negative integer id",
                        "\"" + token + "\": " + id.dump()));
    }
    vocab.emplace_back(token, id.get<int64_t>());
  }

  std::vector<std::pair<std::string, std::string>> merges;
  const auto merges_it = j.find("merges");
  if (merges_it != j.end() && !merges_it->is_null()) {
    if (!merges_it->is_array()) {
      throw std::runtime_error(error_message(
          json_path(where, "merges"), "an array", merges_it->type_name()));
    }
    merges.reserve(merges_it->size());
    for (size_t i = 0; i < merges_it->size(); ++i) {
      const auto& m = (*merges_it)[i];
      const std::string at =
          json_path(where, "merges[" + std::to_string(i) + "]");
      if (m.is_string()) {
        // Legacy "a b": exactly one space (tokenizers'
        // convert_merges_to_hashmap).
        const auto& s = m.get_ref<const std::string&>();
        const size_t space = s.find(' ');
        if (space == std::string::npos ||
            s.find(' ', space + 1) != std::string::npos) {
          throw std::runtime_error(error_message(
              at, "\"a b\" (two tokens separated by one space)", m.dump(),
              "tokens with spaces need the [\"a\", \"b\"] form"));
        }
        merges.emplace_back(s.substr(0, space), s.substr(space + 1));
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() &&
                 m[1].is_string()) {
        merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      } else {
        throw std::runtime_error(
            error_message(at, "\"a b\" or [\"a\", \"b\"]", m.dump()));
      }
    }
  }
  try {
    return std::make_unique<Bpe>(vocab, merges, std::move(o));
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string(where) + ": " + e.what());
  }
}

}  // namespace peftcpp::data
