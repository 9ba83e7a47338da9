#include "data/tokenizer/post_processor.h"

#include <nlohmann/json.hpp>

#include <set>
#include <stdexcept>
#include <utility>

#include "common/error.h"
#include "data/tokenizer/json_util.h"

namespace peftcpp::data {

namespace {

void set_type_ids(Encoding& e, int64_t type_id) {
  e.type_ids.assign(e.ids.size(), type_id);
}

TemplatePiece special_piece(const std::string& name, int64_t type_id) {
  TemplatePiece p;
  p.special = name;
  p.type_id = type_id;
  return p;
}

TemplatePiece sequence_piece(int sequence, int64_t type_id) {
  TemplatePiece p;
  p.is_sequence = true;
  p.sequence = sequence;
  p.type_id = type_id;
  return p;
}

// "CLS A SEP" and "CLS A SEP [SEP] B SEP" with B's type id: what both HF
// processors are, the RoBERTa one with a doubled separator between the
// sequences and type ids 0 throughout.
std::unique_ptr<PostProcessor> cls_sep_template(const SpecialTokenId& sep,
                                                const SpecialTokenId& cls,
                                                bool double_separator,
                                                int64_t second_type_id) {
  std::map<std::string, TemplateSpecialToken> special;
  special[cls.token] = TemplateSpecialToken{cls.token, {cls.id}, {cls.token}};
  special[sep.token] = TemplateSpecialToken{sep.token, {sep.id}, {sep.token}};
  std::vector<TemplatePiece> single = {special_piece(cls.token, 0),
                                       sequence_piece(0, 0),
                                       special_piece(sep.token, 0)};
  std::vector<TemplatePiece> pair = single;
  if (double_separator)
    pair.push_back(special_piece(sep.token, 0));
  pair.push_back(sequence_piece(1, second_type_id));
  pair.push_back(special_piece(sep.token, second_type_id));
  return std::make_unique<TemplateProcessing>(
      std::move(single), std::move(pair), std::move(special));
}

}  // namespace

TemplateProcessing::TemplateProcessing(
    std::vector<TemplatePiece> single, std::vector<TemplatePiece> pair,
    std::map<std::string, TemplateSpecialToken> special)
    : single_(std::move(single)),
      pair_(std::move(pair)),
      special_(std::move(special)) {
  bool has_a = false, has_b = false;
  for (const auto& p : pair_) {
    if (p.is_sequence)
      (p.sequence == 0 ? has_a : has_b) = true;
  }
  if (!pair_.empty() && !(has_a && has_b)) {
    throw std::runtime_error(error_message(
        "TemplateProcessing", "a pair template that uses both $A and $B",
        "a template without " + std::string(has_a ? "$B" : "$A")));
  }
  for (const auto& p : single_) {
    if (p.is_sequence && p.sequence == 1) {
      throw std::runtime_error(error_message(
          "TemplateProcessing", "a single template that uses only $A",
          "$B in the single template"));
    }
  }
  std::set<std::string> missing;
  for (const auto* pieces : {&single_, &pair_}) {
    for (const auto& p : *pieces) {
      if (!p.is_sequence && special_.count(p.special) == 0) {
        missing.insert(p.special);
      }
    }
  }
  if (!missing.empty()) {
    throw std::runtime_error(error_message(
        "TemplateProcessing", "every template special token in special_tokens",
        "no entry for " + join_names(missing)));
  }
}

size_t TemplateProcessing::count_added(
    const std::vector<TemplatePiece>& pieces) const {
  size_t n = 0;
  for (const auto& p : pieces) {
    if (!p.is_sequence)
      n += special_.at(p.special).ids.size();
  }
  return n;
}

size_t TemplateProcessing::added_tokens(bool is_pair) const {
  return count_added(is_pair ? pair_ : single_);
}

Encoding TemplateProcessing::process(Encoding first,
                                     std::optional<Encoding> second,
                                     bool add_special_tokens) const {
  const auto& pieces = second ? pair_ : single_;
  Encoding out;
  for (const auto& p : pieces) {
    if (p.is_sequence) {
      Encoding& e = p.sequence == 0 ? first : *second;
      set_type_ids(e, p.type_id);
      out.append(e);
    } else if (add_special_tokens) {
      const auto& t = special_.at(p.special);
      for (size_t i = 0; i < t.ids.size(); ++i) {
        out.push_back(t.ids[i], t.tokens[i], p.type_id, /*special=*/1);
      }
    }
  }
  return out;
}

size_t PlainProcessing::added_tokens(bool /*is_pair*/) const {
  return 0;
}

Encoding PlainProcessing::process(Encoding first,
                                  std::optional<Encoding> second,
                                  bool /*add_special_tokens*/) const {
  set_type_ids(first, 0);
  if (second) {
    set_type_ids(*second, 1);
    first.append(*second);
  }
  return first;
}

std::unique_ptr<PostProcessor> bert_processing(const SpecialTokenId& sep,
                                               const SpecialTokenId& cls) {
  return cls_sep_template(sep, cls, /*double_separator=*/false,
                          /*second_type_id=*/1);
}

std::unique_ptr<PostProcessor> roberta_processing(const SpecialTokenId& sep,
                                                  const SpecialTokenId& cls) {
  return cls_sep_template(sep, cls, /*double_separator=*/true,
                          /*second_type_id=*/0);
}

namespace {

std::vector<TemplatePiece> template_from_json(const nlohmann::json& j,
                                              const std::string& where) {
  if (!j.is_array()) {
    throw std::runtime_error(error_message(where, "an array of pieces",
                                           "the JSON value " + j.dump()));
  }
  std::vector<TemplatePiece> pieces;
  for (size_t i = 0; i < j.size(); ++i) {
    const auto& item = j[i];
    const std::string at = where + "[" + std::to_string(i) + "]";
    TemplatePiece p;
    if (item.is_object() && item.contains("Sequence")) {
      const auto& s = item.at("Sequence");
      const auto name =
          json_require<std::string>(s, "id", at, "\"A\" or \"B\"");
      if (name != "A" && name != "B") {
        throw std::runtime_error(
            error_message(at + ".id", "\"A\" or \"B\"", "\"" + name + "\""));
      }
      p.is_sequence = true;
      p.sequence = name == "A" ? 0 : 1;
      p.type_id = json_get_or<int64_t>(s, "type_id", 0, at);
    } else if (item.is_object() && item.contains("SpecialToken")) {
      const auto& s = item.at("SpecialToken");
      p.special = json_require<std::string>(s, "id", at, "a string");
      p.type_id = json_get_or<int64_t>(s, "type_id", 0, at);
    } else {
      throw std::runtime_error(error_message(
          at, "{\"Sequence\": ...} or {\"SpecialToken\": ...}", item.dump()));
    }
    pieces.push_back(std::move(p));
  }
  return pieces;
}

SpecialTokenId special_pair_from_json(const nlohmann::json& j,
                                      std::string_view key,
                                      std::string_view where) {
  const std::string at = json_path(where, key);
  const auto it = j.find(key);
  if (it == j.end() || !it->is_array() || it->size() != 2 ||
      !(*it)[0].is_string() || !(*it)[1].is_number_unsigned()) {
    throw std::runtime_error(error_message(
        at, "a [token, id] pair", it == j.end() ? "none" : it->dump()));
  }
  return SpecialTokenId{(*it)[0].get<std::string>(), (*it)[1].get<int64_t>()};
}

}  // namespace

std::unique_ptr<PostProcessor> post_processor_from_json(
    const nlohmann::json& j, std::string_view where) {
  if (j.is_null())
    return nullptr;
  const std::string type = json_type(j, where);
  const std::string at(where);
  if (type == "TemplateProcessing") {
    std::map<std::string, TemplateSpecialToken> special;
    const auto tokens = j.find("special_tokens");
    if (tokens != j.end() && tokens->is_object()) {
      for (const auto& [name, value] : tokens->items()) {
        const std::string sat = at + ".special_tokens." + name;
        TemplateSpecialToken t;
        t.id = json_get_or<std::string>(value, "id", name, sat);
        t.ids = json_require<std::vector<int64_t>>(value, "ids", sat,
                                                   "a list of ids");
        t.tokens = json_require<std::vector<std::string>>(value, "tokens", sat,
                                                          "a list of strings");
        if (t.ids.size() != t.tokens.size()) {
          throw std::runtime_error(
              error_message(sat, "as many ids as tokens",
                            std::to_string(t.ids.size()) + " ids and " +
                                std::to_string(t.tokens.size()) + " tokens"));
        }
        special.emplace(name, std::move(t));
      }
    }
    return std::make_unique<TemplateProcessing>(
        template_from_json(j.value("single", nlohmann::json::array()),
                           at + ".single"),
        template_from_json(j.value("pair", nlohmann::json::array()),
                           at + ".pair"),
        std::move(special));
  }
  if (type == "BertProcessing") {
    return bert_processing(special_pair_from_json(j, "sep", where),
                           special_pair_from_json(j, "cls", where));
  }
  if (type == "RobertaProcessing") {
    return roberta_processing(special_pair_from_json(j, "sep", where),
                              special_pair_from_json(j, "cls", where));
  }
  if (type == "ByteLevel")
    return std::make_unique<PlainProcessing>();
  if (type == "Sequence") {
    // HF chains the processors' process_encodings. ByteLevel's link changes
    // nothing but offsets, so a chain of ByteLevel links and at most one
    // other processor (LLaMA-3's [ByteLevel, TemplateProcessing]) is that
    // processor.
    const auto it = j.find("processors");
    if (it == j.end() || !it->is_array()) {
      throw std::runtime_error(
          error_message(json_path(where, "processors"), "an array", "none"));
    }
    std::unique_ptr<PostProcessor> chosen;
    for (size_t i = 0; i < it->size(); ++i) {
      const std::string item =
          json_path(where, "processors[" + std::to_string(i) + "]");
      auto p = post_processor_from_json((*it)[i], item);
      if (!p || dynamic_cast<PlainProcessing*>(p.get()) != nullptr)
        continue;
      if (chosen) {
        throw std::runtime_error(error_message(
            item, "at most one processor besides ByteLevel in a Sequence",
            "a second one of type \"" + json_type((*it)[i], item) + "\"",
            "chains of several special-token processors are not "
            "implemented"));
      }
      chosen = std::move(p);
    }
    if (!chosen)
      chosen = std::make_unique<PlainProcessing>();
    return chosen;
  }
  throw std::runtime_error(
      error_message(where,
                    "a post-processor of a supported type (TemplateProcessing, "
                    "BertProcessing, RobertaProcessing, ByteLevel, Sequence) "
                    "or null",
                    "type \"" + type + "\"",
                    "other post-processors are not implemented yet"));
}

}  // namespace peftcpp::data
