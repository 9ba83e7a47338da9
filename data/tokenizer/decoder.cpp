#include "data/tokenizer/decoder.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <utility>

#include "common/error.h"
#include "data/tokenizer/byte_level.h"
#include "data/tokenizer/json_util.h"
#include "data/tokenizer/unicode.h"

namespace peftcpp::data {

namespace {

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  size_t at = 0;
  while ((at = s.find(from, at)) != std::string::npos) {
    s.replace(at, from.size(), to);
    at += to.size();
  }
}

// tokenizers' decoders::wordpiece::cleanup, same replacements, same order.
void cleanup(std::string& s) {
  static constexpr std::pair<std::string_view, std::string_view> kRules[] = {
      {" .", "."},   {" ?", "?"},     {" !", "!"},     {" ,", ","},
      {" ' ", "'"},  {" n't", "n't"}, {" 'm", "'m"},   {" do not", " don't"},
      {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
  };
  for (const auto& [from, to] : kRules)
    replace_all(s, from, to);
}

// The byte of a "<0xNN>" token (Rust's u8::from_str_radix on the two
// characters after "<0x", which also takes lowercase and a leading '+').
std::optional<unsigned char> byte_token_value(std::string_view t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>')
    return std::nullopt;
  const auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9')
      return c - '0';
    if (c >= 'a' && c <= 'f')
      return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
      return c - 'A' + 10;
    return -1;
  };
  if (t[3] == '+') {
    const int d = digit(t[4]);
    if (d < 0)
      return std::nullopt;
    return static_cast<unsigned char>(d);
  }
  const int hi = digit(t[3]), lo = digit(t[4]);
  if (hi < 0 || lo < 0)
    return std::nullopt;
  return static_cast<unsigned char>(hi * 16 + lo);
}

}  // namespace

std::string Decoder::decode(const std::vector<std::string>& tokens) const {
  std::string out;
  for (const std::string& piece : decode_chain(tokens))
    out += piece;
  return out;
}

WordPieceDecoder::WordPieceDecoder(std::string prefix, bool cleanup)
    : prefix_(std::move(prefix)), cleanup_(cleanup) {}

std::vector<std::string> WordPieceDecoder::decode_chain(
    std::vector<std::string> tokens) const {
  for (size_t i = 0; i < tokens.size(); ++i) {
    std::string& t = tokens[i];
    if (i != 0 && t.compare(0, prefix_.size(), prefix_) == 0) {
      t.erase(0, prefix_.size());
    } else if (i != 0) {
      t.insert(0, " ");
    }
    // HF cleans each token on its own, so a rule never spans two tokens.
    if (cleanup_)
      cleanup(t);
  }
  return tokens;
}

std::vector<std::string> ByteFallbackDecoder::decode_chain(
    std::vector<std::string> tokens) const {
  std::vector<std::string> out;
  std::string bytes;
  size_t n_bytes = 0;
  const auto flush = [&] {
    if (n_bytes == 0)
      return;
    if (unicode::is_valid_utf8(bytes)) {
      out.push_back(bytes);
    } else {
      // HF gives up on the whole run: one U+FFFD per byte token.
      for (size_t i = 0; i < n_bytes; ++i)
        out.emplace_back("\xEF\xBF\xBD");
    }
    bytes.clear();
    n_bytes = 0;
  };
  for (std::string& token : tokens) {
    if (auto b = byte_token_value(token)) {
      bytes += static_cast<char>(*b);
      ++n_bytes;
      continue;
    }
    flush();
    out.push_back(std::move(token));
  }
  flush();
  return out;
}

std::vector<std::string> FuseDecoder::decode_chain(
    std::vector<std::string> tokens) const {
  std::string all;
  for (const std::string& t : tokens)
    all += t;
  return {all};
}

std::vector<std::string> StripDecoder::decode_chain(
    std::vector<std::string> tokens) const {
  for (std::string& token : tokens) {
    const std::vector<char32_t> cps = unicode::decode_utf8(token);
    size_t start_cut = 0;
    for (size_t i = 0; i < std::min(start_, cps.size()); ++i) {
      if (cps[i] != content_)
        break;
      start_cut = i + 1;
    }
    size_t stop_cut = cps.size();
    for (size_t i = 0; i < std::min(stop_, cps.size()); ++i) {
      const size_t index = cps.size() - i - 1;
      if (cps[index] != content_)
        break;
      stop_cut = index;
    }
    // HF would panic on overlapping cuts; an empty token is the sane
    // reading.
    if (stop_cut < start_cut)
      stop_cut = start_cut;
    token = unicode::encode_utf8(std::vector<char32_t>(
        cps.begin() + static_cast<std::ptrdiff_t>(start_cut),
        cps.begin() + static_cast<std::ptrdiff_t>(stop_cut)));
  }
  return tokens;
}

std::vector<std::string> ReplaceDecoder::decode_chain(
    std::vector<std::string> tokens) const {
  for (std::string& token : tokens)
    token = pattern_.replace_all(token, content_);
  return tokens;
}

std::vector<std::string> MetaspaceDecoder::decode_chain(
    std::vector<std::string> tokens) const {
  for (size_t t = 0; t < tokens.size(); ++t) {
    std::string out;
    const std::string& token = tokens[t];
    for (size_t i = 0; i < token.size();) {
      const size_t at = i;
      const char32_t cp = unicode::next_code_point(token, i);
      if (cp != replacement_) {
        out.append(token, at, i - at);
      } else if (t != 0 || prepend_never_) {
        out += ' ';
      }
      // In the first token every replacement goes, as in HF.
    }
    tokens[t] = std::move(out);
  }
  return tokens;
}

SequenceDecoder::SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps)
    : steps_(std::move(steps)) {}

std::vector<std::string> SequenceDecoder::decode_chain(
    std::vector<std::string> tokens) const {
  for (const auto& step : steps_)
    tokens = step->decode_chain(std::move(tokens));
  return tokens;
}

namespace {

char32_t one_char(const std::string& s, const std::string& where) {
  if (unicode::count_code_points(s) != 1) {
    throw std::runtime_error(
        error_message(where, "one character", "\"" + s + "\""));
  }
  size_t i = 0;
  return unicode::next_code_point(s, i);
}

}  // namespace

std::unique_ptr<Decoder> decoder_from_json(const nlohmann::json& j,
                                           std::string_view where) {
  if (j.is_null())
    return nullptr;
  const std::string type = json_type(j, where);
  if (type == "WordPiece") {
    return std::make_unique<WordPieceDecoder>(
        json_get_or<std::string>(j, "prefix", "##", where),
        json_get_or(j, "cleanup", true, where));
  }
  if (type == "ByteLevel")
    return std::make_unique<ByteLevelDecoder>();
  if (type == "ByteFallback")
    return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse")
    return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    return std::make_unique<StripDecoder>(
        one_char(json_require<std::string>(j, "content", where, "a string"),
                 json_path(where, "content")),
        json_get_or<size_t>(j, "start", 0, where),
        json_get_or<size_t>(j, "stop", 0, where));
  }
  if (type == "Replace") {
    if (!j.contains("pattern")) {
      throw std::runtime_error(
          error_message(where, "a field \"pattern\"", "none"));
    }
    return std::make_unique<ReplaceDecoder>(
        Pattern::from_json(j.at("pattern"), json_path(where, "pattern")),
        json_require<std::string>(j, "content", where, "a string"));
  }
  if (type == "Metaspace") {
    const std::string replacement =
        json_get_or<std::string>(j, "replacement", "\xE2\x96\x81", where);
    bool never = false;
    if (j.contains("prepend_scheme") && !j.at("prepend_scheme").is_null()) {
      never = json_get_or<std::string>(j, "prepend_scheme", "always", where) ==
              "never";
    } else {
      never = !json_get_or(j, "add_prefix_space", true, where);
    }
    return std::make_unique<MetaspaceDecoder>(
        one_char(replacement, json_path(where, "replacement")), never);
  }
  if (type == "Sequence") {
    const auto it = j.find("decoders");
    if (it == j.end() || !it->is_array()) {
      throw std::runtime_error(
          error_message(json_path(where, "decoders"), "an array", "none"));
    }
    std::vector<std::unique_ptr<Decoder>> steps;
    for (size_t i = 0; i < it->size(); ++i) {
      auto step = decoder_from_json(
          (*it)[i], json_path(where, "decoders[" + std::to_string(i) + "]"));
      if (step)
        steps.push_back(std::move(step));
    }
    return std::make_unique<SequenceDecoder>(std::move(steps));
  }
  throw std::runtime_error(error_message(
      where,
      "a decoder of a supported type (WordPiece, ByteLevel, ByteFallback, "
      "Fuse, Strip, Replace, Metaspace, Sequence) or null",
      "type \"" + type + "\"", "other decoders are not implemented"));
}

}  // namespace peftcpp::data
