// A program outside the peftcpp tree, built against an installed peftcpp by
// tests/install/check_install.sh: it includes the headers by their
// repository paths from the prefix and links peftcpp::peftcpp, nothing else.
//
//   consumer VOCAB_TXT ADAPTER_OUT_DIR
//
// Tokenizes a sentence with a WordPiece vocabulary, wraps a tiny random BERT
// classifier in a PeftModel with LoRA, checks that LoRA at init leaves the
// logits unchanged (B starts at zero) and saves the adapter. The script checks
// the printed lines and the saved files; any failure exits non-zero.

#include <ATen/ATen.h>
#include <torch/utils.h>

#include <cstdio>
#include <exception>
#include <string>

#include "data/tokenizer/tokenizer.h"
#include "models/encoder/load_encoder.h"
#include "models/encoder/sequence_classifier.h"
#include "peft/peft_model.h"

namespace models = peftcpp::models;
namespace peft = peftcpp::peft;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s VOCAB_TXT ADAPTER_OUT_DIR\n", argv[0]);
    return 2;
  }
  try {
    const auto tokenizer = peftcpp::data::Tokenizer::from_vocab_file(argv[1]);
    const auto encoding = tokenizer.encode("The film was NOT bad at all!");
    std::printf("tokens:");
    for (const auto& t : encoding.tokens)
      std::printf(" %s", t.c_str());
    std::printf("\n");

    // A tiny BERT (the shape of the test suite's tiny models) with random
    // weights, sized to the vocabulary.
    torch::manual_seed(0);
    models::LoadedEncoder base;
    base.config.vocab_size = static_cast<int64_t>(tokenizer.vocab_size());
    base.config.hidden_size = 32;
    base.config.num_hidden_layers = 2;
    base.config.num_attention_heads = 4;
    base.config.intermediate_size = 37;
    base.config.max_position_embeddings = 64;
    base.config.id2label = {"negative", "positive"};
    base.classifier = models::SequenceClassifier(base.config);
    models::init_encoder_weights(*base.classifier, base.config);

    peft::PeftModel model(std::move(base));
    peft::LoraConfig lora;  // query and value, as PEFT's default for BERT
    lora.r = 4;
    lora.lora_alpha = 8;
    peft::AdapterConfig config;
    config.method = lora;
    model->add_adapter("default", config);
    model->eval();
    std::printf("%s\n", model->trainable_parameters_report().c_str());

    models::EncoderInputs inputs;
    const auto n = static_cast<int64_t>(encoding.size());
    inputs.input_ids = at::tensor(encoding.ids, at::kLong).view({1, n});
    inputs.attention_mask =
        at::tensor(encoding.attention_mask, at::kLong).view({1, n});
    torch::NoGradGuard no_grad;
    const at::Tensor with_lora = model->forward(inputs);
    at::Tensor without;
    {
      auto off = model->disable_adapters();
      without = model->forward(inputs);
    }
    const bool same = at::equal(with_lora, without);
    std::printf("logits shape: [%lld, %lld]\n",
                static_cast<long long>(with_lora.size(0)),
                static_cast<long long>(with_lora.size(1)));
    std::printf("lora at init equals the base: %s\n", same ? "yes" : "no");

    model->save_adapter(argv[2]);
    std::printf("adapter saved: %s\n", argv[2]);
    return same ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "consumer: %s\n", e.what());
    return 1;
  }
}
