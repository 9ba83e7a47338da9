#pragma once
// Reading config.json fields the way every model config here does: a field
// that is absent or null keeps its default, one of the wrong JSON type is an
// error naming the key and the file.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "common/error.h"

namespace peftcpp::models {

/// Reads j[key] as T into `out` when present and not null.
template <typename T>
void read_config_field(const nlohmann::json& j, const char* key, T& out,
                       const std::string& source) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null())
    return;
  try {
    out = it->get<T>();
  } catch (const nlohmann::json::exception&) {
    throw std::runtime_error(error_message(
        source, std::string("\"") + key + "\" of another JSON type",
        it->dump()));
  }
}

/// Throws unless `value` (config.json's `key`) is positive.
inline void check_positive_field(int64_t value, const char* key,
                                 const std::string& source) {
  if (value <= 0) {
    throw std::runtime_error(
        error_message(source, std::string("a positive \"") + key + "\"",
                      std::to_string(value)));
  }
}

}  // namespace peftcpp::models
