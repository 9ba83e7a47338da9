#pragma once
// The subcommands of `peftcpp`. Each add_*_command registers its options and
// a callback on the app; the callback does the work and throws on failure
// (main turns exceptions into a message and an exit code).

namespace CLI {
class App;
}

namespace peftcpp::cli {

/// peftcpp info --model DIR [--json]
void add_info_command(CLI::App& app);
/// peftcpp predict --model DIR --input FILE.jsonl --output FILE.safetensors
///   [--adapter DIR ...] [--set-adapter NAME]
void add_predict_command(CLI::App& app);
/// peftcpp merge --model DIR --adapter DIR --out DIR
void add_merge_command(CLI::App& app);
/// peftcpp tokenize --model DIR --input FILE.jsonl --output FILE.jsonl
void add_tokenize_command(CLI::App& app);
/// peftcpp train --config FILE.yaml [--set key=value ...] [--resume]
///   [--output-dir DIR] [--section.key VALUE ...]
void add_train_command(CLI::App& app);
/// peftcpp eval --model DIR [--adapter DIR]
///   (--task GLUE_NAME --data-dir DIR | --config FILE.yaml)
///   [--batch-size N] [--json FILE]
void add_eval_command(CLI::App& app);
/// peftcpp generate --model DIR|FILE.gguf [--adapter DIR] --prompt TEXT
///   [--prompt TEXT ...]
///   [--chat [--system TEXT]] [--max-new-tokens N] [--sample --temperature T
///   --top-k K --top-p P --seed S] [--device D] [--dtype T] [--json FILE]
void add_generate_command(CLI::App& app);

}  // namespace peftcpp::cli
