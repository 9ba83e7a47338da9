// Sentence embeddings with a real Hugging Face encoder, and how similar
// the sentences are: the default job of scripts/run.sh.
//
//   build/bin/embed_sentences --model DIR [SENTENCE ...]
//
// DIR is a sentence-transformers checkpoint folder (all-MiniLM-L6-v2 by
// default in scripts/run.sh). Embeddings are the mean of the token vectors
// over real tokens, as sentence-transformers computes them, compared by
// cosine similarity.

#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>
#include <vector>

#include "data/tokenizer/tokenizer.h"
#include "models/encoder/encoder_runner.h"
#include "models/encoder/load_encoder.h"

int main(int argc, char** argv) {
  CLI::App app{"Embed sentences and print their cosine similarities"};
  std::string model_dir;
  std::vector<std::string> sentences = {
      "A man is playing a guitar.",
      "Someone is strumming a guitar on stage.",
      "The new movie is awesome and I loved every minute.",
      "The film was a delight from start to finish.",
      "The stock market fell sharply this morning.",
  };
  app.add_option("--model", model_dir,
                 "Model folder (config.json, "
                 "model.safetensors, tokenizer.json)")
      ->required();
  app.add_option("sentences", sentences, "Sentences to compare");
  CLI11_PARSE(app, argc, argv);

  try {
    torch::NoGradGuard no_grad;
    peftcpp::models::LoadEncoderOptions load;
    load.head = peftcpp::models::EncoderHead::kNone;
    auto model = peftcpp::models::load_encoder(model_dir, load);
    const auto tokenizer = peftcpp::data::Tokenizer::from_pretrained(model_dir);
    int64_t params = 0;
    for (const auto& p : model.module().parameters())
      params += p.numel();
    std::printf("model: %s (%s, %lld layers, hidden %lld, %.1fM parameters)\n",
                model_dir.c_str(), model.config.model_type.c_str(),
                static_cast<long long>(model.config.num_hidden_layers),
                static_cast<long long>(model.config.hidden_size), params / 1e6);

    peftcpp::data::EncodeOptions enc;
    enc.max_length = static_cast<size_t>(model.config.max_sequence_length());
    std::vector<peftcpp::data::TextInput> batch;
    for (const auto& s : sentences)
      batch.push_back({s, std::nullopt});
    peftcpp::models::RunEncoderOptions run;
    run.with_hidden_states = false;
    const auto out = peftcpp::models::run_encoder(
        model, tokenizer.encode_batch(batch, enc), run);

    // Cosine similarity of every pair: normalised rows, one matmul.
    const auto unit = torch::nn::functional::normalize(
        out.sentence_embedding,
        torch::nn::functional::NormalizeFuncOptions().dim(1));
    const auto sim = torch::matmul(unit, unit.t());
    std::printf("\nsentences:\n");
    for (size_t i = 0; i < sentences.size(); ++i) {
      std::printf("  [%zu] %s\n", i, sentences[i].c_str());
    }
    std::printf("\ncosine similarity:\n       ");
    for (size_t j = 0; j < sentences.size(); ++j)
      std::printf("  [%zu]  ", j);
    std::printf("\n");
    for (size_t i = 0; i < sentences.size(); ++i) {
      std::printf("  [%zu] ", i);
      for (size_t j = 0; j < sentences.size(); ++j) {
        std::printf(" %6.3f ", sim[i][j].item<float>());
      }
      std::printf("\n");
    }
    // The most similar pair of distinct sentences.
    const auto off =
        sim - 2 * torch::eye(static_cast<int64_t>(sentences.size()));
    const int64_t best = off.argmax().item<int64_t>();
    const int64_t n = static_cast<int64_t>(sentences.size());
    std::printf("\nmost similar: [%lld] and [%lld] (%.3f)\n",
                static_cast<long long>(best / n),
                static_cast<long long>(best % n),
                sim.flatten()[best].item<float>());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "embed_sentences: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
