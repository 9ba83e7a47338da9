#include "trainers/training_run.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/text_file.h"
#include "data/dataset/glue.h"
#include "data/dataset/instruction_dataset.h"
#include "data/tokenizer/gguf_tokenizer.h"
#include "data/tokenizer/model_files.h"
#include "models/decoder/load_decoder.h"
#include "models/encoder/load_encoder.h"
#include "models/gguf/gguf_file.h"
#include "peft/head_labels.h"
#include "peft/peft_model.h"
#include "trainers/peft_causal_lm.h"
#include "trainers/peft_classifier.h"
#include "trainers/training_report.h"

namespace peftcpp::trainers {

namespace fs = std::filesystem;

namespace {

/// The train and eval examples of a task, and how they are scored.
struct TaskData {
  data::LabeledDataset train;
  std::optional<data::LabeledDataset> eval;
  std::vector<data::Metric> metrics;
};

fs::path glue_task_dir(const data::GlueTask& task, const fs::path& data_dir) {
  // data_dir may be the task's own folder or the GLUE root holding it.
  if (fs::exists(data_dir / task.folder))
    return data_dir / task.folder;
  return data_dir;
}

std::vector<data::Metric> metrics_for(const TaskSection& task,
                                      data::TaskKind kind,
                                      std::vector<data::Metric> fallback) {
  if (!task.metrics.empty()) {
    std::vector<data::Metric> m;
    for (const auto& name : task.metrics)
      m.push_back(data::parse_metric(name));
    return m;
  }
  if (!fallback.empty())
    return fallback;
  if (kind == data::TaskKind::kRegression)
    return {data::Metric::kPearson, data::Metric::kSpearman};
  return {data::Metric::kAccuracy};
}

TaskData read_task(const TaskSection& task, bool need_train) {
  TaskData d;
  if (!task.glue.empty()) {
    const data::GlueTask& g = data::glue_task(task.glue);
    const fs::path dir = glue_task_dir(g, task.data_dir);
    if (need_train)
      d.train = data::load_glue_split(g, dir, "train");
    d.eval = data::load_glue_split(g, dir, g.dev_split);
    d.metrics = metrics_for(task, g.kind, g.metrics);
  } else {
    if (need_train || task.eval_file.empty()) {
      d.train = data::load_table(task.train_file, task.format, task.columns,
                                 task.labels);
    }
    if (!task.eval_file.empty()) {
      // The eval labels must be the training labels, in the same order.
      data::LabelSpec labels = task.labels;
      if (labels.label_names.empty())
        labels.label_names = d.train.label_names;
      d.eval =
          data::load_table(task.eval_file, task.format, task.columns, labels);
    }
    d.metrics = metrics_for(task, task.labels.kind, {});
  }
  data::keep_first(d.train, task.max_train_examples);
  if (d.eval)
    data::keep_first(*d.eval, task.max_eval_examples);
  return d;
}

fs::path dataset_cache_dir(const TaskSection& task) {
  if (!task.cache_dir.empty())
    return task.cache_dir;
  if (const char* c = std::getenv("PEFTCPP_CACHE"))
    return fs::path(c) / "datasets";
  const char* home = std::getenv("HOME");
  return fs::path(home ? home : ".") / ".cache" / "peftcpp" / "datasets";
}

data::TokenizedDataset tokenize(const data::LabeledDataset& d,
                                const data::Tokenizer& tokenizer,
                                const std::string& fingerprint,
                                const TaskSection& task, const char* what) {
  data::TokenizeDatasetOptions options;
  options.max_length = static_cast<size_t>(task.max_length);
  options.show_progress = d.size() > 20000;
  data::CacheOutcome outcome;
  std::string detail;
  data::TokenizedDataset t =
      data::tokenize_cached(d, tokenizer, fingerprint, options,
                            dataset_cache_dir(task), &outcome, &detail);
  const char* how = outcome == data::CacheOutcome::kHit ? "from cache"
                    : outcome == data::CacheOutcome::kCreated
                        ? "tokenized, cached"
                        : "cache rebuilt";
  std::fprintf(stderr, "%s: %zu examples (%s%s%s)\n", what, t.size(), how,
               detail.empty() ? "" : ": ", detail.c_str());
  return t;
}

int64_t pad_id_of(const data::Tokenizer& tokenizer) {
  return tokenizer.pad_token() ? tokenizer.pad_token()->id : 0;
}

models::LoadEncoderOptions classifier_options(const ModelSection& model,
                                              const data::LabeledDataset& d) {
  models::LoadEncoderOptions o;
  o.head = models::EncoderHead::kSequenceClassification;
  o.dtype = models::parse_dtype(model.dtype);
  if (d.kind == data::TaskKind::kRegression) {
    o.id2label = {"LABEL_0"};
    o.problem_type = models::ProblemType::kRegression;
  } else {
    o.id2label = d.label_names;
    o.problem_type = models::ProblemType::kSingleLabelClassification;
  }
  return o;
}

// --- instruction tuning of a causal LM ---------------------------------------

/// What instruction data needs from a decoder checkpoint besides weights.
struct DecoderText {
  data::Tokenizer tokenizer;
  std::unique_ptr<data::ChatTemplate> chat_template;
  data::InstructionFormat format;  ///< points at chat_template
  int64_t pad_id = 0;
};

// The tokenizer, chat template and special tokens of a .gguf file (its
// metadata) or a folder (tokenizer.json, tokenizer_config.json,
// chat_template.jinja, as transformers 5 saves them); the model config's
// eos and pad ids fill in what the tokenizer files leave out.
DecoderText load_decoder_text(const fs::path& path,
                              const models::DecoderConfig& config) {
  DecoderText text{data::load_model_tokenizer(path), nullptr, {}, 0};
  const data::ChatFormat files = data::read_chat_format(
      path, text.tokenizer, config.eos_token_ids, config.pad_token_id);
  const std::optional<std::string>& chat_template = files.chat_template;
  const std::optional<int64_t> bos = files.bos_id;
  std::optional<int64_t> eos = files.eos_id;
  const std::optional<int64_t> pad = files.pad_id;
  if (!eos && !config.eos_token_ids.empty())
    eos = config.eos_token_ids.front();
  if (chat_template) {
    text.chat_template = std::make_unique<data::ChatTemplate>(*chat_template);
    text.format.chat_template = text.chat_template.get();
  }
  if (bos)
    text.format.bos_token = text.tokenizer.id_to_token(*bos).value_or("");
  if (eos)
    text.format.eos_token = text.tokenizer.id_to_token(*eos).value_or("");
  text.format.eos_token_id = eos;
  // Padding is masked out of attention and labels: any id will do when the
  // model names none.
  text.pad_id = pad.value_or(eos.value_or(0));
  return text;
}

// The instruction examples of a split: JSONL as it is, or labelled rows
// (GLUE, a table) phrased by the prompt template.
std::pair<data::InstructionDataset, std::optional<data::InstructionDataset>>
read_instructions(const TaskSection& task, bool need_train) {
  const data::InstructionTemplate& phrase = task.instruction_template;
  if (!phrase.prompt.empty()) {
    const TaskData d = read_task(task, need_train);
    std::optional<data::InstructionDataset> eval;
    if (d.eval)
      eval = data::instructions_from_labeled(*d.eval, phrase);
    return {need_train ? data::instructions_from_labeled(d.train, phrase)
                       : data::InstructionDataset{},
            std::move(eval)};
  }
  const auto first = [](data::InstructionDataset d, int64_t n) {
    if (n >= 0 && static_cast<size_t>(n) < d.size())
      d.examples.resize(static_cast<size_t>(n));
    return d;
  };
  data::InstructionDataset train;
  if (need_train) {
    train = first(data::read_instruction_jsonl(task.train_file),
                  task.max_train_examples);
  }
  std::optional<data::InstructionDataset> eval;
  if (!task.eval_file.empty()) {
    eval = first(data::read_instruction_jsonl(task.eval_file),
                 task.max_eval_examples);
  }
  return {std::move(train), std::move(eval)};
}

data::TokenizedDataset tokenize_instructions(const data::InstructionDataset& d,
                                             const DecoderText& text,
                                             const TaskSection& task,
                                             const char* what) {
  data::InstructionTokenizeOptions options;
  options.max_length = static_cast<size_t>(task.max_length);
  options.packing = task.packing;
  data::TokenizedDataset t =
      data::tokenize_instructions(d, text.tokenizer, text.format, options);
  std::fprintf(stderr, "%s: %zu examples -> %zu rows, %lld target tokens\n",
               what, d.size(), t.size(),
               static_cast<long long>(data::count_target_tokens(t)));
  return t;
}

models::LoadedDecoder load_causal_lm(const ModelSection& model) {
  models::LoadDecoderOptions o;
  o.head = models::DecoderHead::kCausalLM;
  o.dtype = models::parse_dtype(model.dtype);
  return models::load_decoder(model.path, o);
}

void check_decoder(const ModelSection& model) {
  if (!models::is_decoder_checkpoint(model.path)) {
    throw std::invalid_argument(error_message(
        "task.task_type instruction",
        "model.path a decoder-only model (a .gguf file or a folder of " +
            models::DecoderConfig::supported_model_types() + ")",
        model.path.string()));
  }
}

// Attaches the method to a decoder and runs the Trainer (both decoder
// paths: instruction tuning and sequence classification).
TrainResult train_decoder(const RunConfig& config, models::LoadedDecoder base,
                          const data::TokenizedDataset& train,
                          const std::optional<data::TokenizedDataset>& eval,
                          std::vector<data::Metric> metrics, int64_t pad_id) {
  peft::AdapterConfig method = config.method;
  if (method.base_model_name_or_path.empty())
    method.base_model_name_or_path = config.model.path.string();
  peft::PeftModel peft_model(std::move(base));
  peft_model->add_adapter("default", method);
  peft_model->to(c10::Device(config.trainer.device));
  std::fprintf(stderr, "%s\n",
               peft_model->trainable_parameters_report().c_str());

  TrainerOptions options = config.trainer;
  options.metrics = std::move(metrics);
  fs::create_directories(options.output_dir);
  if (!fs::exists(options.output_dir / "run_config.yaml")) {
    write_file_atomically(options.output_dir / "run_config.yaml",
                          [&](std::ostream& o) { o << config.source_text; });
  }
  PeftCausalLM model(peft_model);
  Trainer trainer(model, train, eval ? &*eval : nullptr, options,
                  run_fingerprint(config), pad_id);
  TrainResult result = trainer.train();
  std::printf("%s", format_summary_table(result).c_str());
  std::fflush(stdout);
  return result;
}

TrainResult run_instruction_training(const RunConfig& config) {
  check_decoder(config.model);
  auto [train_examples, eval_examples] =
      read_instructions(config.task, /*need_train=*/true);
  torch::manual_seed(config.trainer.seed);  // the adapter's initial weights
  models::LoadedDecoder base = load_causal_lm(config.model);
  const DecoderText text = load_decoder_text(config.model.path, base.config);
  const data::TokenizedDataset train =
      tokenize_instructions(train_examples, text, config.task, "train");
  std::optional<data::TokenizedDataset> eval;
  if (eval_examples)
    eval = tokenize_instructions(*eval_examples, text, config.task, "eval");
  return train_decoder(config, std::move(base), train, eval, {}, text.pad_id);
}

// A decoder with a new classification head (...ForSequenceClassification,
// PEFT's SEQ_CLS: the score layer trains as modules_to_save).
TrainResult run_decoder_classification(const RunConfig& config) {
  const TaskData task = read_task(config.task, /*need_train=*/true);
  const models::LoadEncoderOptions head =
      classifier_options(config.model, task.train);
  models::LoadDecoderOptions o;
  o.head = models::DecoderHead::kSequenceClassification;
  o.dtype = head.dtype;
  o.id2label = head.id2label;
  o.problem_type = head.problem_type;
  torch::manual_seed(config.trainer.seed);  // the new head and the adapter
  models::LoadedDecoder base = models::load_decoder(config.model.path, o);
  const DecoderText text = load_decoder_text(config.model.path, base.config);
  const std::string tok_fp = data::tokenizer_fingerprint(config.model.path);
  const data::TokenizedDataset train =
      tokenize(task.train, text.tokenizer, tok_fp, config.task, "train");
  std::optional<data::TokenizedDataset> eval;
  if (task.eval)
    eval = tokenize(*task.eval, text.tokenizer, tok_fp, config.task, "eval");
  // The head pools the last token that is not the config's pad id, so
  // batches must be padded with exactly that id.
  const int64_t pad = base.config.pad_token_id.value_or(text.pad_id);
  return train_decoder(config, std::move(base), train, eval, task.metrics, pad);
}

EvalResult run_instruction_evaluation(const ModelSection& model,
                                      const fs::path& adapter_dir,
                                      const TaskSection& task,
                                      int64_t batch_size) {
  check_decoder(model);
  auto eval_examples = read_instructions(task, /*need_train=*/false).second;
  if (!eval_examples) {
    throw std::invalid_argument(error_message(
        "eval", "an eval split (task.eval_file or a GLUE task)", "none"));
  }
  models::LoadedDecoder base = load_causal_lm(model);
  const DecoderText text = load_decoder_text(model.path, base.config);
  const data::TokenizedDataset eval =
      tokenize_instructions(*eval_examples, text, task, "eval");
  peft::PeftModel peft_model(std::move(base));
  if (!adapter_dir.empty())
    peft_model->load_adapter(adapter_dir, "default");
  PeftCausalLM lm(peft_model);
  TrainerOptions options;
  options.output_dir = ".";
  options.per_device_eval_batch_size = batch_size;
  options.show_progress = false;
  Trainer trainer(lm, eval, &eval, options, "", text.pad_id);
  return trainer.evaluate(eval);
}

}  // namespace

TrainResult run_training(const RunConfig& config) {
  if (config.model.threads > 0)
    at::set_num_threads(config.model.threads);
  if (config.task.instruction)
    return run_instruction_training(config);
  if (models::is_decoder_checkpoint(config.model.path))
    return run_decoder_classification(config);
  const TaskData task = read_task(config.task, /*need_train=*/true);
  const auto tokenizer = data::Tokenizer::from_pretrained(config.model.path);
  const std::string tok_fp = data::tokenizer_fingerprint(config.model.path);
  const data::TokenizedDataset train =
      tokenize(task.train, tokenizer, tok_fp, config.task, "train");
  std::optional<data::TokenizedDataset> eval;
  if (task.eval)
    eval = tokenize(*task.eval, tokenizer, tok_fp, config.task, "eval");

  // The seed fixes the new head's and the adapter's initial weights.
  torch::manual_seed(config.trainer.seed);
  models::LoadedEncoder base = models::load_encoder(
      config.model.path, classifier_options(config.model, task.train));
  peft::AdapterConfig method = config.method;
  if (method.base_model_name_or_path.empty())
    method.base_model_name_or_path = config.model.path.string();
  peft::PeftModel peft_model(std::move(base));
  peft_model->add_adapter("default", method);
  peft_model->to(c10::Device(config.trainer.device));
  std::fprintf(stderr, "%s\n",
               peft_model->trainable_parameters_report().c_str());

  TrainerOptions options = config.trainer;
  options.metrics = task.metrics;
  // The configuration beside the run, written once: a resumed or refused
  // run keeps the file of the run that is there.
  fs::create_directories(options.output_dir);
  if (!fs::exists(options.output_dir / "run_config.yaml")) {
    write_file_atomically(options.output_dir / "run_config.yaml",
                          [&](std::ostream& o) { o << config.source_text; });
  }

  PeftClassifier model(peft_model);
  Trainer trainer(model, train, eval ? &*eval : nullptr, options,
                  run_fingerprint(config), pad_id_of(tokenizer));
  TrainResult result = trainer.train();
  std::printf("%s", format_summary_table(result).c_str());
  std::fflush(stdout);
  return result;
}

EvalResult run_evaluation(const ModelSection& model,
                          const fs::path& adapter_dir, const TaskSection& task,
                          int64_t batch_size) {
  if (model.threads > 0)
    at::set_num_threads(model.threads);
  if (task.instruction)
    return run_instruction_evaluation(model, adapter_dir, task, batch_size);
  // The adapter's own labels (peftcpp writes them beside it) fix the head
  // and the label order of the eval file.
  std::optional<peft::AdapterHead> head;
  if (!adapter_dir.empty())
    head = peft::read_adapter_head(adapter_dir);
  TaskSection with_labels = task;
  if (head && task.glue.empty() && task.labels.label_names.empty() &&
      head->problem_type != models::ProblemType::kRegression)
    with_labels.labels.label_names = head->id2label;
  const TaskData d = read_task(with_labels, /*need_train=*/false);
  if (!d.eval) {
    throw std::invalid_argument(error_message(
        "eval", "an eval split (a GLUE task or task.eval_file)", "none"));
  }
  const auto tokenizer = data::Tokenizer::from_pretrained(model.path);
  const data::TokenizedDataset eval =
      tokenize(*d.eval, tokenizer, data::tokenizer_fingerprint(model.path),
               task, "eval");
  models::LoadEncoderOptions load = classifier_options(model, *d.eval);
  if (head)
    peft::apply_adapter_head(*head, load);
  models::LoadedEncoder base = models::load_encoder(model.path, load);
  peft::PeftModel peft_model(std::move(base));
  if (!adapter_dir.empty())
    peft_model->load_adapter(adapter_dir, "default");
  PeftClassifier classifier(peft_model);
  TrainerOptions options;
  options.output_dir = ".";
  options.per_device_eval_batch_size = batch_size;
  options.metrics = d.metrics;
  options.show_progress = false;
  Trainer trainer(classifier, eval, &eval, options, "", pad_id_of(tokenizer));
  return trainer.evaluate(eval);
}

}  // namespace peftcpp::trainers
