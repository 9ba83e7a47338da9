#include "peft/wrapped_model.h"

#include <regex>

namespace peftcpp::peft {

std::shared_ptr<torch::nn::Module> WrappedEncoder::module() const {
  if (loaded.has_classifier())
    return loaded.classifier.ptr();
  return loaded.encoder.ptr();
}

ModelInfo WrappedEncoder::info() const {
  const models::EncoderConfig& c = loaded.config;
  ModelInfo info;
  info.model_type = c.model_type;
  info.hidden_size = c.hidden_size;
  info.num_layers = c.num_hidden_layers;
  info.num_attention_heads = c.num_attention_heads;
  info.vocab_size = c.vocab_size;
  return info;
}

torch::nn::Embedding WrappedEncoder::word_embeddings() const {
  return const_cast<models::LoadedEncoder&>(loaded)
      .base()
      ->embeddings->word_embeddings;
}

std::string WrappedEncoder::model_class() const {
  return loaded.config.architectures.empty()
             ? std::string(loaded.has_classifier() ? "a classifier"
                                                   : "an encoder")
             : loaded.config.architectures.front();
}

std::shared_ptr<torch::nn::Module> WrappedDecoder::module() const {
  if (loaded.has_classifier())
    return loaded.classifier.ptr();
  return loaded.causal_lm.ptr();
}

ModelInfo WrappedDecoder::info() const {
  const models::DecoderConfig& c = loaded.config;
  ModelInfo info;
  info.model_type = c.model_type;
  info.hidden_size = c.hidden_size;
  info.num_layers = c.num_hidden_layers;
  info.num_attention_heads = c.num_attention_heads;
  info.vocab_size = c.vocab_size;
  if (c.family == models::DecoderFamily::kGpt2) {
    // transformers keeps GPT-2's block projections as Conv1D ([in, out]);
    // lm_head and score are nn.Linear.
    static const std::regex conv1d(
        R"((^|\.)h\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)$)");
    for (const auto& item : module()->named_modules(/*name_prefix=*/"",
                                                    /*include_self=*/false)) {
      if (std::regex_search(item.key(), conv1d))
        info.conv1d_modules.push_back(item.key());
    }
  } else {
    // GPT2Config has no num_key_value_heads; LlamaConfig and its kin do.
    info.num_key_value_heads = c.num_key_value_heads;
    info.head_dim = c.head_dim;
  }
  return info;
}

torch::nn::Embedding WrappedDecoder::word_embeddings() const {
  return const_cast<models::LoadedDecoder&>(loaded)
      .backbone()
      .input_embeddings();
}

std::string WrappedDecoder::model_class() const {
  if (!loaded.config.architectures.empty())
    return loaded.config.architectures.front();
  return loaded.has_classifier() ? "a decoder classifier" : "a causal LM";
}

}  // namespace peftcpp::peft
