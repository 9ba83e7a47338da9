#include "models/gguf/gguf_file.h"

// Typed access to the metadata of a GGUF file, with errors naming the key,
// the file and (for a missing key) the closest key it has.

#include <limits>
#include <stdexcept>

#include "common/error.h"

namespace peftcpp::gguf {

using json = nlohmann::json;

namespace {

std::string json_kind(const json& v) {
  if (v.is_number_integer()) {
    return "an integer";
  }
  if (v.is_number_float()) {
    return "a float";
  }
  if (v.is_boolean()) {
    return "a bool";
  }
  if (v.is_string()) {
    return "a string";
  }
  if (v.is_array()) {
    return "an array";
  }
  return std::string("a ") + v.type_name();
}

}  // namespace

bool GgufFile::has(std::string_view key) const {
  return metadata_.find(std::string(key)) != metadata_.end();
}

const json& GgufFile::get(std::string_view key) const {
  auto it = metadata_.find(std::string(key));
  if (it != metadata_.end()) {
    return *it;
  }
  std::string closest;
  size_t best = std::numeric_limits<size_t>::max();
  for (auto k = metadata_.begin(); k != metadata_.end(); ++k) {
    const size_t d = edit_distance(key, k.key());
    if (d < best) {
      best = d;
      closest = k.key();
    }
  }
  const bool close = !closest.empty() && best <= key.size() / 3 + 1;
  throw std::out_of_range(error_message(
      where(), "a metadata key '" + std::string(key) + "'", "none",
      close ? "did you mean '" + closest + "'?"
            : "the file has " + std::to_string(metadata_.size()) + " keys"));
}

namespace {

[[noreturn]] void wrong_type(const std::string& where, std::string_view key,
                             const char* expected, const json& v) {
  std::string got = json_kind(v);
  std::string shown =
      v.is_array()
          ? ""
          : " " + v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (shown.size() > 60) {
    shown = shown.substr(0, 57) + "...";
  }
  throw std::runtime_error(error_message(
      where,
      std::string(expected) + " for metadata key '" + std::string(key) + "'",
      got + shown));
}

int64_t as_int(const json& v, const std::string& where, std::string_view key) {
  if (!v.is_number_integer()) {
    wrong_type(where, key, "an integer", v);
  }
  if (v.is_number_unsigned() &&
      v.get<uint64_t>() >
          static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    throw std::runtime_error(error_message(
        where,
        "an integer below 2^63 for metadata key '" + std::string(key) + "'",
        v.dump()));
  }
  return v.get<int64_t>();
}

double as_float(const json& v, const std::string& where, std::string_view key) {
  if (!v.is_number()) {
    wrong_type(where, key, "a number", v);
  }
  return v.get<double>();
}

}  // namespace

std::string GgufFile::get_string(std::string_view key) const {
  const json& v = get(key);
  if (!v.is_string()) {
    wrong_type(where(), key, "a string", v);
  }
  return v.get<std::string>();
}

int64_t GgufFile::get_int(std::string_view key) const {
  return as_int(get(key), where(), key);
}

double GgufFile::get_float(std::string_view key) const {
  return as_float(get(key), where(), key);
}

bool GgufFile::get_bool(std::string_view key) const {
  const json& v = get(key);
  if (!v.is_boolean()) {
    wrong_type(where(), key, "a bool", v);
  }
  return v.get<bool>();
}

std::vector<std::string> GgufFile::get_string_array(
    std::string_view key) const {
  const json& v = get(key);
  if (!v.is_array() || (!v.empty() && !v.front().is_string())) {
    wrong_type(where(), key, "an array of strings", v);
  }
  std::vector<std::string> out;
  out.reserve(v.size());
  for (const json& e : v) {
    out.push_back(e.get_ref<const std::string&>());
  }
  return out;
}

std::vector<int64_t> GgufFile::get_int_array(std::string_view key) const {
  const json& v = get(key);
  if (!v.is_array()) {
    wrong_type(where(), key, "an array of integers", v);
  }
  std::vector<int64_t> out;
  out.reserve(v.size());
  for (const json& e : v) {
    out.push_back(as_int(e, where(), key));
  }
  return out;
}

std::vector<double> GgufFile::get_float_array(std::string_view key) const {
  const json& v = get(key);
  if (!v.is_array()) {
    wrong_type(where(), key, "an array of numbers", v);
  }
  std::vector<double> out;
  out.reserve(v.size());
  for (const json& e : v) {
    out.push_back(as_float(e, where(), key));
  }
  return out;
}

std::optional<std::string> GgufFile::find_string(std::string_view key) const {
  return has(key) ? std::optional(get_string(key)) : std::nullopt;
}

std::optional<int64_t> GgufFile::find_int(std::string_view key) const {
  return has(key) ? std::optional(get_int(key)) : std::nullopt;
}

std::optional<double> GgufFile::find_float(std::string_view key) const {
  return has(key) ? std::optional(get_float(key)) : std::nullopt;
}

std::optional<bool> GgufFile::find_bool(std::string_view key) const {
  return has(key) ? std::optional(get_bool(key)) : std::nullopt;
}

}  // namespace peftcpp::gguf
