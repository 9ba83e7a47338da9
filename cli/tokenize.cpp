// peftcpp tokenize: text to token ids with the model's own tokenizer, one
// JSON object per input line.

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>

#include "cli/commands.h"
#include "cli/encode_inputs.h"
#include "common/atomic_file.h"
#include "data/tokenizer/model_files.h"

namespace peftcpp::cli {

namespace {

struct TokenizeFlags {
  std::string model;
  std::string input;
  std::string output;
  bool with_tokens = false;
  TokenizationFlags tokenization;
};

void run_tokenize(const TokenizeFlags& f) {
  check_output_path(f.output, "--output");
  const std::vector<InputLine> lines = read_jsonl_inputs(f.input);
  const data::Tokenizer tokenizer = data::load_model_tokenizer(f.model);
  const auto encodings = encode_inputs(
      &tokenizer, lines, to_encode_options(f.tokenization), f.input);
  write_file_atomically(f.output, [&](std::ostream& out) {
    for (const auto& e : encodings) {
      nlohmann::json j;
      j["input_ids"] = e.ids;
      j["token_type_ids"] = e.type_ids;
      j["attention_mask"] = e.attention_mask;
      if (f.with_tokens)
        j["tokens"] = e.tokens;
      out << j.dump(-1, ' ', /*ensure_ascii=*/false,
                    nlohmann::json::error_handler_t::replace)
          << '\n';
    }
  });
  std::fprintf(stderr, "wrote %s: %zu lines\n", f.output.c_str(),
               encodings.size());
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto f = std::make_shared<TokenizeFlags>();
  auto* cmd = app.add_subcommand(
      "tokenize", "Tokenize a JSONL file with a model's tokenizer");
  cmd->add_option("--model", f->model,
                  "Model folder (tokenizer.json, tokenizer.model or "
                  "vocab.txt) or a .gguf file")
      ->required();
  cmd->add_option("--input", f->input,
                  "JSONL: {\"text\": ..., \"text_pair\": ...} per line")
      ->required();
  cmd->add_option("--output", f->output, "Output JSONL file")->required();
  cmd->add_flag("--tokens", f->with_tokens, "Also write the token strings");
  add_tokenization_flags(*cmd, f->tokenization);
  cmd->callback([f] { run_tokenize(*f); });
}

}  // namespace peftcpp::cli
