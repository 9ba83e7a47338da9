#include "data/tokenizer/sentencepiece_model.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <stdexcept>
#include <string_view>
#include <unordered_map>

#include "common/error.h"
#include "data/tokenizer/unicode.h"

namespace peftcpp::data {

namespace {

// The piece types of a serialized ModelProto. libsentencepiece 0.1.97 has
// IsControl/IsUnknown/IsUnused/IsByte but no IsUserDefined, and its
// generated protobuf header is not installed, so the few fields needed are
// read from the wire format: ModelProto.pieces = 1 (message), and in a
// SentencePiece type = 3 (varint, NORMAL when absent).
class WireReader {
 public:
  explicit WireReader(std::string_view data) : data_(data) {}
  bool done() const { return at_ >= data_.size(); }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (done())
        throw std::runtime_error("truncated varint");
      const auto b = static_cast<unsigned char>(data_[at_++]);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80))
        return v;
    }
    throw std::runtime_error("overlong varint");
  }
  std::string_view bytes(size_t n) {
    if (n > data_.size() - at_)
      throw std::runtime_error("truncated field");
    const std::string_view out = data_.substr(at_, n);
    at_ += n;
    return out;
  }
  // Skips a field of `wire_type` whose tag was read; a length-delimited
  // one is returned.
  std::string_view skip(uint64_t wire_type) {
    switch (wire_type) {
      case 0:
        varint();
        return {};
      case 1:
        return bytes(8);
      case 2:
        return bytes(static_cast<size_t>(varint()));
      case 5:
        return bytes(4);
      default:
        throw std::runtime_error("unsupported wire type " +
                                 std::to_string(wire_type));
    }
  }

 private:
  std::string_view data_;
  size_t at_ = 0;
};

std::vector<PieceType> piece_types(std::string_view model_proto) {
  std::vector<PieceType> types;
  WireReader model(model_proto);
  while (!model.done()) {
    const uint64_t tag = model.varint();
    const std::string_view field = model.skip(tag & 7);
    if (tag >> 3 != 1 || (tag & 7) != 2)
      continue;
    PieceType type = PieceType::kNormal;
    WireReader piece(field);
    while (!piece.done()) {
      const uint64_t piece_tag = piece.varint();
      if (piece_tag == (3 << 3)) {  // type, varint
        type = static_cast<PieceType>(piece.varint());
      } else {
        piece.skip(piece_tag & 7);
      }
    }
    types.push_back(type);
  }
  return types;
}

// Python's len(): code points of valid UTF-8.
size_t py_len(std::string_view s) {
  return unicode::count_code_points(s);
}

}  // namespace

std::vector<SentencePiece> read_sentencepiece_model(
    const std::filesystem::path& model_file) {
  const char* where = "read_sentencepiece_model";
  sentencepiece::SentencePieceProcessor sp;
  const auto status = sp.Load(model_file.string());
  if (!status.ok()) {
    throw std::runtime_error(error_message(
        where, "a SentencePiece model file",
        model_file.string() + " (" + status.ToString() + ")",
        "tokenizer.model of a LLaMA-2 style checkpoint, written by "
        "sentencepiece's trainer"));
  }
  std::vector<PieceType> types;
  try {
    types = piece_types(sp.serialized_model_proto());
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(error_message(
        where, "a readable ModelProto in " + model_file.string(), e.what()));
  }
  const int n = sp.GetPieceSize();
  if (types.size() != static_cast<size_t>(n)) {
    throw std::runtime_error(error_message(
        where, std::to_string(n) + " pieces in " + model_file.string(),
        std::to_string(types.size()) + " piece messages"));
  }
  std::vector<SentencePiece> pieces(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    SentencePiece& p = pieces[static_cast<size_t>(i)];
    p.piece = sp.IdToPiece(i);
    p.score = sp.GetScore(i);
    p.type = types[static_cast<size_t>(i)];
  }
  return pieces;
}

std::vector<std::pair<std::string, std::string>> generate_merges(
    const std::vector<SentencePiece>& pieces, MergeOrder order) {
  // transformers builds {piece: id} (and {piece: score}) dicts: a repeated
  // piece keeps its first position in iteration order and its last value.
  std::unordered_map<std::string_view, size_t> id;
  std::vector<std::string_view> unique;
  for (size_t i = 0; i < pieces.size(); ++i) {
    auto [it, inserted] = id.emplace(pieces[i].piece, i);
    if (inserted)
      unique.push_back(pieces[i].piece);
    else
      it->second = i;
  }

  struct Candidate {
    std::string_view left, right;
    size_t left_id, right_id;
    float score;  // kByScore
    size_t piece_id;
    size_t left_len, right_len;  // code points
  };
  std::vector<Candidate> all;
  std::vector<Candidate> local;
  for (std::string_view piece : unique) {
    local.clear();
    // Split points between code points (Python slices str by them).
    for (size_t cut = 0; cut < piece.size();) {
      unicode::next_code_point(piece, cut);
      if (cut >= piece.size())
        break;
      const std::string_view left = piece.substr(0, cut);
      const std::string_view right = piece.substr(cut);
      const auto l = id.find(left);
      const auto r = id.find(right);
      if (l == id.end() || r == id.end())
        continue;
      const size_t piece_id = id.at(piece);
      local.push_back(Candidate{left, right, l->second, r->second,
                                pieces[piece_id].score, piece_id, py_len(left),
                                py_len(right)});
    }
    std::stable_sort(local.begin(), local.end(),
                     [](const Candidate& a, const Candidate& b) {
                       return std::tie(a.left_id, a.right_id) <
                              std::tie(b.left_id, b.right_id);
                     });
    all.insert(all.end(), local.begin(), local.end());
  }
  if (order == MergeOrder::kById) {
    std::stable_sort(all.begin(), all.end(),
                     [](const Candidate& a, const Candidate& b) {
                       return std::tie(a.piece_id, a.left_len, a.right_len) <
                              std::tie(b.piece_id, b.left_len, b.right_len);
                     });
  } else {
    // sorted(..., reverse=True) is still stable: equal keys keep order.
    std::stable_sort(all.begin(), all.end(),
                     [](const Candidate& a, const Candidate& b) {
                       return std::tie(a.score, a.left_len, a.right_len) >
                              std::tie(b.score, b.left_len, b.right_len);
                     });
  }
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(all.size());
  for (const Candidate& c : all)
    merges.emplace_back(std::string(c.left), std::string(c.right));
  return merges;
}

nlohmann::json bos_eos_template_json(const std::optional<TemplateToken>& bos,
                                     const std::optional<TemplateToken>& eos) {
  using nlohmann::json;
  const auto special = [](const TemplateToken& t, int type_id) {
    return json{{"SpecialToken", {{"id", t.token}, {"type_id", type_id}}}};
  };
  const auto sequence = [](const char* id, int type_id) {
    return json{{"Sequence", {{"id", id}, {"type_id", type_id}}}};
  };
  json single = json::array();
  if (bos)
    single.push_back(special(*bos, 0));
  single.push_back(sequence("A", 0));
  if (eos)
    single.push_back(special(*eos, 0));
  json pair = single;
  if (bos)
    pair.push_back(special(*bos, 1));
  pair.push_back(sequence("B", 1));
  if (eos)
    pair.push_back(special(*eos, 1));
  json special_tokens = json::object();
  for (const auto* t : {&bos, &eos}) {
    if (*t) {
      special_tokens[(*t)->token] = {{"id", (*t)->token},
                                     {"ids", json::array({(*t)->id})},
                                     {"tokens", json::array({(*t)->token})}};
    }
  }
  return json{{"type", "TemplateProcessing"},
              {"single", std::move(single)},
              {"pair", std::move(pair)},
              {"special_tokens", std::move(special_tokens)}};
}

nlohmann::json llama_tokenizer_json(
    const std::vector<SentencePiece>& pieces,
    const std::vector<std::pair<std::string, std::string>>& merge_list,
    const SentencePieceOptions& o) {
  using nlohmann::json;
  json vocab = json::object();
  for (size_t i = 0; i < pieces.size(); ++i)
    vocab[pieces[i].piece] = i;  // a repeated piece keeps its last id
  json merges = json::array();
  for (const auto& [left, right] : merge_list)
    merges.push_back(json::array({left, right}));

  // Added tokens: the special tokens, then the control (special) and
  // user-defined (not special) pieces in id order, none normalized. A token
  // the vocabulary lacks gets the next id, as HF's add_tokens gives it.
  json added = json::array();
  size_t next_id = pieces.size();
  std::unordered_map<std::string, int64_t> added_ids;
  const auto add = [&](const std::string& content, bool special) {
    if (added_ids.count(content))
      return;
    int64_t id;
    if (vocab.contains(content)) {
      id = vocab[content].get<int64_t>();
    } else {
      id = static_cast<int64_t>(next_id++);
    }
    added_ids[content] = id;
    added.push_back({{"id", id},
                     {"content", content},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", special}});
  };
  // transformers' special-token attribute order.
  for (const std::optional<std::string>* token :
       {&o.bos_token, &o.eos_token, &o.unk_token, &o.pad_token}) {
    if (*token)
      add(**token, /*special=*/true);
  }
  for (const SentencePiece& p : pieces) {
    if (p.type == PieceType::kControl || p.type == PieceType::kUserDefined)
      add(p.piece, /*special=*/p.type == PieceType::kControl);
  }

  // add_prefix_space decides whether '▁' is prepended at all, legacy
  // whether also after added tokens (transformers' _get_prepend_scheme).
  const std::string scheme =
      !o.add_prefix_space ? "never" : (o.legacy ? "always" : "first");
  json pre_tokenizer = {{"type", "Metaspace"},
                        {"replacement", "\u2581"},
                        {"prepend_scheme", scheme},
                        {"split", false}};
  json decoders = json::array({{{"type", "Replace"},
                                {"pattern", {{"String", "\u2581"}}},
                                {"content", " "}},
                               {{"type", "ByteFallback"}},
                               {{"type", "Fuse"}}});
  if (o.add_prefix_space) {
    decoders.push_back(
        {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
  }

  // transformers' update_post_processor: BOS/EOS only when asked for and
  // set.
  std::optional<TemplateToken> bos, eos;
  if (o.add_bos_token && o.bos_token)
    bos = TemplateToken{*o.bos_token, added_ids.at(*o.bos_token)};
  if (o.add_eos_token && o.eos_token)
    eos = TemplateToken{*o.eos_token, added_ids.at(*o.eos_token)};

  return json{
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", std::move(added)},
      {"normalizer", nullptr},
      {"pre_tokenizer", std::move(pre_tokenizer)},
      {"post_processor", bos_eos_template_json(bos, eos)},
      {"decoder", {{"type", "Sequence"}, {"decoders", std::move(decoders)}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", true},
        {"byte_fallback", true},
        {"ignore_merges", false},
        {"vocab", std::move(vocab)},
        {"merges", std::move(merges)}}}};
}

Tokenizer Tokenizer::from_sentencepiece(const std::filesystem::path& model_file,
                                        const SentencePieceOptions& options) {
  const std::vector<SentencePiece> pieces =
      read_sentencepiece_model(model_file);
  Tokenizer t = from_json(
      llama_tokenizer_json(pieces, generate_merges(pieces, MergeOrder::kById),
                           options),
      model_file.string());
  if (options.pad_token) {
    t.pad_ =
        PadToken{*t.token_to_id(*options.pad_token), 0, *options.pad_token};
  }
  t.model_max_length_ = options.model_max_length;
  return t;
}

}  // namespace peftcpp::data
