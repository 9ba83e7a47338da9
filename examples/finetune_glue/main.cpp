// Fine-tune all-MiniLM-L6-v2 with LoRA on a GLUE task from a C++ program:
// the code shown in the README's "Use it from C++" section.
//
//   build/bin/finetune_glue --model DIR --glue-dir ../shared/data/glue
//       --task sst2 --max-train 4000 --out runs/example
//
// with DIR the all-MiniLM-L6-v2 folder ($PEFTCPP_PYTHON scripts/find_minilm.py
// prints it).
//
// It reads the task's train and dev files, tokenizes them (cached), attaches
// LoRA to the attention projections, trains with the shared loop, prints the
// dev metrics, saves the adapter (HF PEFT's folder) and classifies two
// sentences with the saved adapter.

#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

#include "data/dataset/glue.h"
#include "data/dataset/tokenized_dataset.h"
#include "models/encoder/load_encoder.h"
#include "peft/peft_model.h"
#include "trainers/peft_classifier.h"
#include "trainers/trainer.h"
#include "trainers/training_report.h"

namespace data = peftcpp::data;
namespace models = peftcpp::models;
namespace peft = peftcpp::peft;
namespace trainers = peftcpp::trainers;

int main(int argc, char** argv) {
  CLI::App app{"Fine-tune MiniLM with LoRA on a GLUE task"};
  std::string model_dir, glue_dir, task_name = "sst2", out = "runs/example";
  int64_t max_train = 4000, epochs = 1;
  app.add_option("--model", model_dir, "all-MiniLM-L6-v2 folder")->required();
  app.add_option("--glue-dir", glue_dir, "GLUE root folder")->required();
  app.add_option("--task", task_name, "GLUE task (sst2, cola, ...)");
  app.add_option("--max-train", max_train, "Training examples (first N)");
  app.add_option("--epochs", epochs, "Epochs");
  app.add_option("--out", out, "Output folder");
  CLI11_PARSE(app, argc, argv);

  try {
    // 1. Data: the task's files, tokenized by the model's tokenizer.
    const data::GlueTask& task = data::glue_task(task_name);
    data::LabeledDataset train_text =
        data::load_glue_split(task, glue_dir + "/" + task.folder, "train");
    data::keep_first(train_text, max_train);
    const data::LabeledDataset dev_text = data::load_glue_split(
        task, glue_dir + "/" + task.folder, task.dev_split);
    const auto tokenizer = data::Tokenizer::from_pretrained(model_dir);
    const std::string fingerprint = data::tokenizer_fingerprint(model_dir);
    data::TokenizeDatasetOptions tokenize;
    tokenize.max_length = 128;
    const std::string cache = out + "/.dataset_cache";
    const auto train = data::tokenize_cached(train_text, tokenizer, fingerprint,
                                             tokenize, cache);
    const auto dev = data::tokenize_cached(dev_text, tokenizer, fingerprint,
                                           tokenize, cache);

    // 2. Model: MiniLM with a new classification head and LoRA.
    torch::manual_seed(42);
    models::LoadEncoderOptions load;
    load.head = models::EncoderHead::kSequenceClassification;
    load.id2label = train_text.label_names;  // task.kind is classification
    peft::PeftModel model(models::load_encoder(model_dir, load));
    peft::LoraConfig lora;  // PEFT's names and defaults
    lora.r = 8;
    lora.lora_alpha = 16;
    lora.lora_dropout = 0.1;
    peft::AdapterConfig config;  // task_type SEQ_CLS: the head trains too
    config.method = lora;
    model->add_adapter("default", config);
    std::printf("%s\n", model->trainable_parameters_report().c_str());

    // 3. Train with the shared loop; evaluate every epoch, keep the best.
    trainers::TrainerOptions options;
    options.output_dir = out;
    options.num_train_epochs = epochs;
    options.per_device_train_batch_size = 32;
    options.adamw.learning_rate = 5e-4;
    options.adamw.weight_decay = 0.01;
    options.warmup_ratio = 0.06;
    options.metrics = task.metrics;
    trainers::PeftClassifier classifier(model);
    trainers::Trainer trainer(classifier, train, &dev, options, "example",
                              tokenizer.pad_token()->id);
    const trainers::TrainResult result = trainer.train();
    std::printf("%s", trainers::format_summary_table(result).c_str());

    // 4. The saved adapter on a fresh base model classifies new text.
    peft::PeftModel reloaded(models::load_encoder(model_dir, load));
    reloaded->load_adapter(result.adapter_dir, "default");
    data::EncodeOptions padded;
    padded.padding = data::PaddingStrategy::kLongest;
    const auto encodings = tokenizer.encode_batch(
        {{"A warm, funny and moving film.", std::nullopt},
         {"Dull, and far too long.", std::nullopt}},
        padded);
    models::EncoderInputs inputs;
    std::vector<int64_t> ids, mask;
    for (const auto& e : encodings) {
      ids.insert(ids.end(), e.ids.begin(), e.ids.end());
      mask.insert(mask.end(), e.attention_mask.begin(), e.attention_mask.end());
    }
    const int64_t n = static_cast<int64_t>(encodings.size());
    inputs.input_ids = torch::tensor(ids).view({n, -1});
    inputs.attention_mask = torch::tensor(mask).view({n, -1});
    torch::NoGradGuard no_grad;
    const at::Tensor predicted = reloaded->forward(inputs).argmax(-1);
    for (int64_t i = 0; i < n; ++i) {
      std::printf("sentence %lld -> %s\n", static_cast<long long>(i),
                  train_text.label_names[predicted[i].item<int64_t>()].c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
