#pragma once
// Typed access to tokenizer.json values with errors that name the place
// ("<file>: normalizer.lowercase"), so a malformed file never surfaces as a
// bare nlohmann::json exception.

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>
#include <string_view>

#include "common/error.h"

namespace peftcpp::data {

/// "<where>.<key>", the path used in messages.
inline std::string json_path(std::string_view where, std::string_view key) {
  std::string out(where);
  out += '.';
  out += key;
  return out;
}

/// Converts `j` to T, or throws std::runtime_error naming `where`.
template <typename T>
T json_as(const nlohmann::json& j, std::string_view where,
          std::string_view expected) {
  try {
    return j.get<T>();
  } catch (const nlohmann::json::exception&) {
    throw std::runtime_error(
        error_message(where, expected, "the JSON value " + j.dump()));
  }
}

/// The value under `key` converted to T; `fallback` when absent or null.
template <typename T>
T json_get_or(const nlohmann::json& j, std::string_view key, T fallback,
              std::string_view where) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null())
    return fallback;
  return json_as<T>(*it, json_path(where, key),
                    std::string("a ") + nlohmann::json(fallback).type_name());
}

/// The value under `key` converted to T; throws when absent.
template <typename T>
T json_require(const nlohmann::json& j, std::string_view key,
               std::string_view where, std::string_view expected) {
  const auto it = j.find(key);
  if (it == j.end()) {
    throw std::runtime_error(
        error_message(where, "a field \"" + std::string(key) + "\"", "none"));
  }
  return json_as<T>(*it, json_path(where, key), expected);
}

/// The "type" string of a pipeline component object.
inline std::string json_type(const nlohmann::json& j, std::string_view where) {
  if (!j.is_object()) {
    throw std::runtime_error(
        error_message(where, "a JSON object", "the JSON value " + j.dump()));
  }
  return json_require<std::string>(j, "type", where, "a string");
}

}  // namespace peftcpp::data
