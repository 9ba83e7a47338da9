#include "cli/jsonl_input.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <stdexcept>

#include "common/error.h"

namespace peftcpp::cli {

using nlohmann::json;

std::vector<InputLine> read_jsonl_inputs(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw std::runtime_error(error_message("read_jsonl_inputs",
                                           "a readable JSONL file",
                                           "no file '" + path.string() + "'"));
  }
  std::vector<InputLine> lines;
  std::string raw;
  size_t number = 0;
  while (std::getline(in, raw)) {
    ++number;
    if (!raw.empty() && raw.back() == '\r')
      raw.pop_back();
    if (raw.find_first_not_of(" \t") == std::string::npos)
      continue;
    const std::string where = path.string() + ":" + std::to_string(number);
    json j;
    try {
      j = json::parse(raw);
    } catch (const json::parse_error& e) {
      throw std::runtime_error(
          error_message(where, "a JSON object",
                        "invalid JSON (" + std::string(e.what()) + ")"));
    }
    if (!j.is_object()) {
      throw std::runtime_error(
          error_message(where, "a JSON object", std::string(j.type_name())));
    }
    InputLine line;
    line.line_number = number;
    try {
      if (j.contains("input_ids")) {
        line.input_ids = j.at("input_ids").get<std::vector<int64_t>>();
        if (j.contains("token_type_ids")) {
          line.token_type_ids =
              j.at("token_type_ids").get<std::vector<int64_t>>();
        }
        if (line.input_ids.empty()) {
          throw std::runtime_error(
              error_message(where, "a non-empty \"input_ids\"", "[]"));
        }
        if (!line.token_type_ids.empty() &&
            line.token_type_ids.size() != line.input_ids.size()) {
          throw std::runtime_error(
              error_message(where,
                            "token_type_ids as long as input_ids (" +
                                std::to_string(line.input_ids.size()) + ")",
                            std::to_string(line.token_type_ids.size())));
        }
      } else if (j.contains("text")) {
        line.text = j.at("text").get<std::string>();
        if (j.contains("text_pair") && !j.at("text_pair").is_null()) {
          line.text_pair = j.at("text_pair").get<std::string>();
        }
      } else {
        throw std::runtime_error(
            error_message(where, "a \"text\" or \"input_ids\" field",
                          "keys " + j.dump().substr(0, 80)));
      }
    } catch (const json::type_error& e) {
      throw std::runtime_error(error_message(
          where, "\"text\"/\"text_pair\" strings or \"input_ids\" integers",
          raw.substr(0, 80)));
    }
    lines.push_back(std::move(line));
  }
  if (lines.empty()) {
    throw std::runtime_error(error_message(
        path.string(), "at least one input line", "an empty file"));
  }
  return lines;
}

}  // namespace peftcpp::cli
