#include "data/dataset/table_file.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <stdexcept>
#include <utility>

#include "common/error.h"

namespace peftcpp::data {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

/// Byte offset of the first byte that does not start a well-formed UTF-8
/// sequence (overlongs, surrogates and > U+10FFFF refused), or npos.
size_t first_invalid_utf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    uint32_t cp = 0;
    uint32_t min = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07, min = 0x10000;
    } else {
      return i;
    }
    if (i + len > n)
      return i;
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80)
        return i;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return i;
    i += len;
  }
  return std::string_view::npos;
}

std::string hex_byte(unsigned char b) {
  static const char* kDigits = "0123456789ABCDEF";
  return std::string("0x") + kDigits[b >> 4] + kDigits[b & 15];
}

bool parse_integer(std::string_view text, int64_t& value) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  return ec == std::errc() && ptr == end && !text.empty();
}

/// One example before its label is turned into an index or a value.
struct RawRow {
  size_t line = 0;
  std::string text;
  std::optional<std::string> pair;
  std::string label;  // as written (JSON numbers as their integer text)
  std::optional<double> number;  // JSON numeric label (regression)
};

/// Turns the raw labels into class indices or values, inferring the label
/// set when none is given.
LabeledDataset finish_rows(std::vector<RawRow> rows, const fs::path& path,
                           const LabelSpec& labels) {
  LabeledDataset out;
  out.kind = labels.kind;
  out.source = path;
  auto where = [&](size_t line) {
    return path.string() + ":" + std::to_string(line);
  };
  if (labels.kind == TaskKind::kClassification) {
    out.label_names = labels.label_names;
    if (out.label_names.empty()) {
      std::vector<std::string> all;
      all.reserve(rows.size());
      for (const auto& r : rows)
        all.push_back(r.label);
      out.label_names = infer_label_names(std::move(all));
    }
  }
  std::map<std::string, size_t, std::less<>> index;
  for (size_t i = 0; i < out.label_names.size(); ++i)
    index.emplace(out.label_names[i], i);
  out.examples.reserve(rows.size());
  for (auto& r : rows) {
    Example e;
    e.text = std::move(r.text);
    e.text_pair = std::move(r.pair);
    if (labels.kind == TaskKind::kRegression) {
      std::optional<double> v = r.number ? r.number : parse_number(r.label);
      if (!v) {
        throw std::runtime_error(error_message(
            where(r.line), "a number as the regression label",
            r.label.empty() ? "an empty field" : quote_value(r.label),
            "regression labels are real values such as 3.8"));
      }
      e.label = static_cast<float>(*v);
    } else {
      if (r.label.empty()) {
        throw std::runtime_error(
            error_message(where(r.line), "a label", "an empty field"));
      }
      auto it = index.find(r.label);
      if (it == index.end()) {
        throw std::runtime_error(error_message(
            where(r.line), "a label in {" + join_names(out.label_names) + "}",
            quote_value(r.label),
            "labels are matched by name as written in the file; leave "
            "label_names empty to infer them from the training file"));
      }
      e.label = static_cast<float>(it->second);
    }
    out.examples.push_back(std::move(e));
  }
  return out;
}

// --- TSV / CSV ---------------------------------------------------------------

/// The next RFC 4180 record; false at the end. Blank lines between records
/// are skipped; a quoted field may run over several lines.
bool next_csv_record(LineReader& reader, std::vector<std::string>& fields,
                     size_t& first_line) {
  std::string line;
  do {
    if (!reader.next(line))
      return false;
  } while (line.empty());
  first_line = reader.line_number();
  fields.clear();
  enum class State { kFieldStart, kUnquoted, kQuoted, kAfterQuote };
  State state = State::kFieldStart;
  std::string field;
  size_t i = 0;
  for (;;) {
    if (i == line.size()) {
      if (state == State::kQuoted) {  // the field goes on on the next line
        if (!reader.next(line)) {
          throw std::runtime_error(error_message(
              reader.where(first_line), "a closing quote for a quoted field",
              "the end of the file",
              "a field starting with \" must end with \"; write a literal "
              "quote inside a quoted field as \"\""));
        }
        field += '\n';
        i = 0;
        continue;
      }
      fields.push_back(std::move(field));
      return true;
    }
    const char c = line[i++];
    switch (state) {
      case State::kFieldStart:
        if (c == '"') {
          state = State::kQuoted;
        } else if (c == ',') {
          fields.emplace_back();
        } else {
          field += c;
          state = State::kUnquoted;
        }
        break;
      case State::kUnquoted:
        // A quote inside an unquoted field stays text (Python's csv too).
        if (c == ',') {
          fields.push_back(std::move(field));
          field.clear();
          state = State::kFieldStart;
        } else {
          field += c;
        }
        break;
      case State::kQuoted:
        if (c != '"') {
          field += c;
        } else if (i < line.size() && line[i] == '"') {
          field += '"';
          ++i;
        } else {
          state = State::kAfterQuote;
        }
        break;
      case State::kAfterQuote:
        if (c != ',') {
          throw std::runtime_error(error_message(
              reader.where(), "a comma or the line's end after a closing quote",
              quote_value(line.substr(i - 1, 20)) + " at column " +
                  std::to_string(i),
              "write a literal quote inside a quoted field as \"\""));
        }
        fields.emplace_back(std::move(field));
        field.clear();
        state = State::kFieldStart;
        break;
    }
  }
}

/// Column index of `name` in `header`, or an error listing the columns.
size_t find_column(const std::vector<std::string>& header,
                   const std::string& name, const std::string& role,
                   const std::string& where, bool has_header) {
  if (has_header) {
    auto it = std::find(header.begin(), header.end(), name);
    if (it != header.end())
      return static_cast<size_t>(it - header.begin());
    std::vector<std::string> quoted;
    for (const auto& h : header)
      quoted.push_back(quote_value(h));
    throw std::runtime_error(error_message(
        where, "a column " + quote_value(name) + " for the " + role,
        "the columns " + join_names(quoted, ", ", 30),
        "set the column mapping to one of these names"));
  }
  int64_t index = -1;
  if (!parse_integer(name, index) || index < 0 ||
      static_cast<size_t>(index) >= header.size()) {
    throw std::runtime_error(error_message(
        where,
        "a 0-based column index below " + std::to_string(header.size()) +
            " for the " + role + " (the file has no header)",
        quote_value(name),
        "a file without a header names its columns \"0\", \"1\", ..."));
  }
  return static_cast<size_t>(index);
}

LabeledDataset load_delimited(const fs::path& path, bool csv,
                              const ColumnMapping& columns,
                              const LabelSpec& labels) {
  LineReader reader(path, "load_table");
  std::vector<std::string> record;
  size_t line = 0;
  auto next = [&] {
    if (csv)
      return next_csv_record(reader, record, line);
    std::string text;
    do {
      if (!reader.next(text))
        return false;
    } while (text.empty());
    line = reader.line_number();
    record.clear();
    for (auto f : split_tabs(text))
      record.emplace_back(f);
    return true;
  };
  if (!next()) {
    throw std::runtime_error(error_message(
        reader.where(1), columns.has_header ? "a header and rows" : "rows",
        "an empty file"));
  }
  std::vector<std::string> header = record;
  const size_t width = header.size();
  const std::string header_where = reader.where(line);
  const size_t text_col = find_column(header, columns.text, "text",
                                      header_where, columns.has_header);
  std::optional<size_t> pair_col;
  if (columns.text_pair) {
    pair_col = find_column(header, *columns.text_pair, "text pair",
                           header_where, columns.has_header);
  }
  const size_t label_col = find_column(header, columns.label, "label",
                                       header_where, columns.has_header);
  std::vector<RawRow> rows;
  bool have = columns.has_header ? next() : true;
  while (have) {
    if (record.size() != width) {
      throw std::runtime_error(
          error_message(reader.where(line),
                        std::to_string(width) + (csv ? " comma" : " tab") +
                            "-separated fields as on line " +
                            header_where.substr(header_where.rfind(':') + 1),
                        std::to_string(record.size()),
                        csv ? "quote fields that hold commas"
                            : "a tab inside a text field shifts the columns"));
    }
    RawRow r;
    r.line = line;
    r.text = std::move(record[text_col]);
    if (pair_col)
      r.pair = std::move(record[*pair_col]);
    r.label = std::move(record[label_col]);
    rows.push_back(std::move(r));
    have = next();
  }
  if (rows.empty()) {
    throw std::runtime_error(error_message(
        reader.where(1), "at least one row after the header", "only a header"));
  }
  return finish_rows(std::move(rows), path, labels);
}

// --- JSONL -------------------------------------------------------------------

std::string json_keys(const json& object) {
  std::vector<std::string> keys;
  for (auto it = object.begin(); it != object.end(); ++it)
    keys.push_back(quote_value(it.key()));
  return keys.empty() ? "no keys" : "the keys " + join_names(keys, ", ", 30);
}

const json& json_field(const json& object, const std::string& key,
                       const std::string& role, const std::string& where) {
  auto it = object.find(key);
  if (it == object.end()) {
    throw std::runtime_error(error_message(
        where, "a key " + quote_value(key) + " for the " + role,
        json_keys(object), "set the column mapping to one of these keys"));
  }
  return *it;
}

std::string json_text(const json& object, const std::string& key,
                      const std::string& role, const std::string& where) {
  const json& v = json_field(object, key, role, where);
  if (!v.is_string()) {
    throw std::runtime_error(
        error_message(where, "a string under " + quote_value(key),
                      std::string("a JSON ") + v.type_name()));
  }
  return v.get<std::string>();
}

LabeledDataset load_jsonl(const fs::path& path, const ColumnMapping& columns,
                          const LabelSpec& labels) {
  LineReader reader(path, "load_table");
  std::vector<RawRow> rows;
  std::string line;
  while (reader.next(line)) {
    if (line.find_first_not_of(" \t") == std::string::npos)
      continue;
    const std::string where = reader.where();
    json j;
    try {
      j = json::parse(line);
    } catch (const json::parse_error& e) {
      throw std::runtime_error(
          error_message(where, "one JSON object per line",
                        "invalid JSON (" + std::string(e.what()) + ")",
                        "JSONL holds one complete object on each line"));
    }
    if (!j.is_object()) {
      throw std::runtime_error(error_message(
          where, "a JSON object", std::string("a JSON ") + j.type_name()));
    }
    RawRow r;
    r.line = reader.line_number();
    r.text = json_text(j, columns.text, "text", where);
    if (columns.text_pair)
      r.pair = json_text(j, *columns.text_pair, "text pair", where);
    const json& label = json_field(j, columns.label, "label", where);
    if (label.is_string()) {
      r.label = label.get<std::string>();
    } else if (label.is_number_integer()) {
      r.label = label.dump();  // 1 -> "1": matches label names "0", "1"
      r.number = label.get<double>();
    } else if (label.is_number_float() &&
               labels.kind == TaskKind::kRegression) {
      r.label = label.dump();
      r.number = label.get<double>();
    } else {
      throw std::runtime_error(
          error_message(where,
                        labels.kind == TaskKind::kRegression
                            ? "a number as the label"
                            : "a string or an integer as the label",
                        quote_value(label.dump())));
    }
    rows.push_back(std::move(r));
  }
  if (rows.empty()) {
    throw std::runtime_error(error_message(
        reader.where(1), "at least one JSON object", "an empty file"));
  }
  return finish_rows(std::move(rows), path, labels);
}

}  // namespace

TableFormat parse_table_format(const std::string& name) {
  if (name == "auto")
    return TableFormat::kAuto;
  if (name == "tsv")
    return TableFormat::kTsv;
  if (name == "csv")
    return TableFormat::kCsv;
  if (name == "jsonl" || name == "json")
    return TableFormat::kJsonl;
  throw std::invalid_argument(error_message(
      "parse_table_format", "one of auto, tsv, csv, jsonl", quote_value(name)));
}

LabeledDataset load_table(const fs::path& path, TableFormat format,
                          const ColumnMapping& columns,
                          const LabelSpec& labels) {
  if (format == TableFormat::kAuto) {
    std::string ext = path.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    if (ext == ".tsv") {
      format = TableFormat::kTsv;
    } else if (ext == ".csv") {
      format = TableFormat::kCsv;
    } else if (ext == ".jsonl" || ext == ".json" || ext == ".ndjson") {
      format = TableFormat::kJsonl;
    } else {
      throw std::invalid_argument(error_message(
          "load_table", "a file ending in .tsv, .csv, .jsonl or .json",
          quote_value(path.string()), "set the format (tsv, csv, jsonl)"));
    }
  }
  if (labels.kind == TaskKind::kRegression && !labels.label_names.empty()) {
    throw std::invalid_argument(
        error_message("load_table", "no label names for a regression task",
                      join_names(labels.label_names)));
  }
  if (format == TableFormat::kJsonl)
    return load_jsonl(path, columns, labels);
  return load_delimited(path, format == TableFormat::kCsv, columns, labels);
}

std::vector<std::string> infer_label_names(std::vector<std::string> labels) {
  std::sort(labels.begin(), labels.end());
  labels.erase(std::unique(labels.begin(), labels.end()), labels.end());
  std::vector<std::pair<int64_t, std::string>> numeric;
  for (const auto& l : labels) {
    int64_t v = 0;
    if (!parse_integer(l, v))
      return labels;  // not all integers: byte order, as Python sorts str
    numeric.emplace_back(v, l);
  }
  std::sort(numeric.begin(), numeric.end());
  for (size_t i = 0; i < numeric.size(); ++i)
    labels[i] = numeric[i].second;
  return labels;
}

// --- shared line reading
// -------------------------------------------------------

LineReader::LineReader(const fs::path& path, std::string_view who)
    : path_(path), in_(path, std::ios::binary) {
  std::error_code ec;
  if (!in_ || fs::is_directory(path, ec)) {
    throw std::runtime_error(error_message(
        who, "a readable file",
        quote_value(path.string(), 300) +
            (fs::exists(path, ec) ? " (unreadable)" : " (no such file)")));
  }
}

bool LineReader::next(std::string& line) {
  if (!std::getline(in_, line))
    return false;
  ++line_number_;
  if (line_number_ == 1 && line.compare(0, 3, "\xEF\xBB\xBF") == 0)
    line.erase(0, 3);  // MRPC's header carries a UTF-8 BOM
  if (!line.empty() && line.back() == '\r')
    line.pop_back();
  const size_t bad = first_invalid_utf8(line);
  if (bad != std::string_view::npos) {
    throw std::runtime_error(error_message(
        where(), "UTF-8 text",
        "the byte " + hex_byte(static_cast<unsigned char>(line[bad])) +
            " at column " + std::to_string(bad + 1),
        "convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)"));
  }
  return true;
}

std::string LineReader::where() const {
  return where(line_number_);
}

std::string LineReader::where(size_t line) const {
  return path_.string() + ":" + std::to_string(line);
}

std::vector<std::string_view> split_tabs(std::string_view line) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    const size_t tab = line.find('\t', start);
    if (tab == std::string_view::npos) {
      out.push_back(line.substr(start));
      return out;
    }
    out.push_back(line.substr(start, tab - start));
    start = tab + 1;
  }
}

std::string quote_value(std::string_view value, size_t max_chars) {
  if (value.size() <= max_chars)
    return "'" + std::string(value) + "'";
  size_t cut = max_chars;
  // Do not cut inside a UTF-8 sequence.
  while (cut > 0 && (static_cast<unsigned char>(value[cut]) & 0xC0) == 0x80)
    --cut;
  return "'" + std::string(value.substr(0, cut)) + "...'";
}

std::optional<double> parse_number(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
    text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t'))
    text.remove_suffix(1);
  if (!text.empty() && text.front() == '+')
    text.remove_prefix(1);
  if (text.empty())
    return std::nullopt;
  double v = 0.0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (ec != std::errc() || ptr != end || !std::isfinite(v))
    return std::nullopt;
  return v;
}

}  // namespace peftcpp::data
