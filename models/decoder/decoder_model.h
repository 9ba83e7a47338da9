#pragma once
// Decoder-only models as LibTorch modules under Hugging Face's names:
// GPT2LMHeadModel ("transformer.h.0.attn.c_attn", "lm_head") and the LLaMA
// family's ...ForCausalLM ("model.layers.0.self_attn.q_proj", "lm_head"), and
// their ...ForSequenceClassification heads ("score", on the last non-padding
// token as transformers picks it).
//
// Hook points (STYLE.md): every projection is a models::Linear; the models
// accept input embeddings (prompt tuning) and a KeyValueCache that may be
// seeded with a per-layer key/value prefix (prefix tuning is a past that no
// token produced).
//
//   auto lm = load_decoder(dir).causal_lm;
//   KeyValueCache cache(lm->config().num_hidden_layers);
//   DecoderInputs in;
//   in.input_ids = ids;  // [B, T]
//   in.cache = &cache;
//   at::Tensor logits = lm->forward(in);  // [B, T, vocab]; cache holds T

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <optional>

#include "models/decoder/decoder_config.h"
#include "models/decoder/decoder_layers.h"
#include "models/layers/linear.h"

namespace peftcpp::models {

/// What a decoder is called with. Exactly one of input_ids [B, T] and
/// inputs_embeds [B, T, hidden] is given.
///
/// With a cache holding S positions, the new tokens are positions S..S+T-1
/// and attention_mask is [B, S + T] (past and new, as in transformers) or
/// [B, T] (then the whole past is visible, as PEFT's prefix is).
struct DecoderInputs {
  at::Tensor input_ids;       ///< [B, T] int64
  at::Tensor inputs_embeds;   ///< [B, T, hidden], instead of input_ids
  at::Tensor attention_mask;  ///< 1 = token, 0 = padding; undefined = all 1
  /// [B or 1, T] int64; undefined: S .. S + T - 1 for every row (what
  /// transformers' forward uses; generation passes the padding-aware ones).
  at::Tensor position_ids;
  /// Past keys and values: read, then extended with this call's. Null: no
  /// past, nothing kept.
  KeyValueCache* cache = nullptr;
};

/// Builds the attention context for T new positions after S cached ones:
/// causal (and sliding-window) visibility combined with the padding mask.
/// Query rows that would see no key at all (padding in front) see every
/// key instead, so no NaN reaches the padded positions' outputs (which are
/// never used). `attention_mask` is [B, S + T], [B, T] or undefined.
AttentionContext make_attention_context(const at::Tensor& attention_mask,
                                        int64_t batch, int64_t length,
                                        int64_t past,
                                        std::optional<int64_t> sliding_window,
                                        const c10::Device& device);

/// The body of a decoder-only model (GPT2Model / LlamaModel / Qwen2Model /
/// MistralModel): embeddings, blocks, final norm. Returns the last hidden
/// state [B, T, hidden].
class DecoderBackbone : public torch::nn::Module {
 public:
  explicit DecoderBackbone(DecoderConfig config) : config_(std::move(config)) {}
  /// Throws std::invalid_argument for inputs the model cannot take (both or
  /// neither of ids and embeddings, a mask of the wrong width, positions
  /// past a learned position table).
  virtual at::Tensor forward(const DecoderInputs& inputs) = 0;
  /// The input embedding table (wte / embed_tokens).
  virtual torch::nn::Embedding input_embeddings() const = 0;
  /// The blocks (h / layers).
  virtual torch::nn::ModuleList blocks() const = 0;
  const DecoderConfig& config() const { return config_; }

 protected:
  /// The embeddings of `inputs` (input_ids looked up, or inputs_embeds),
  /// checked.
  at::Tensor embed(const DecoderInputs& inputs);
  /// Position ids for T tokens after `past` (given or derived), [B or 1, T].
  at::Tensor positions(const DecoderInputs& inputs, int64_t length,
                       int64_t past, const c10::Device& device) const;

  DecoderConfig config_;
};

/// GPT2Model: wte + wpe, blocks "h", ln_f.
class Gpt2Model : public DecoderBackbone {
 public:
  explicit Gpt2Model(const DecoderConfig& config);
  at::Tensor forward(const DecoderInputs& inputs) override;
  torch::nn::Embedding input_embeddings() const override { return wte; }
  torch::nn::ModuleList blocks() const override { return h; }

  torch::nn::Embedding wte{nullptr};
  torch::nn::Embedding wpe{nullptr};
  torch::nn::ModuleList h{nullptr};
  torch::nn::LayerNorm ln_f{nullptr};
};

/// LlamaModel (also Qwen2Model, MistralModel): embed_tokens, "layers",
/// norm, rotary embedding.
class LlamaModel : public DecoderBackbone {
 public:
  explicit LlamaModel(const DecoderConfig& config);
  at::Tensor forward(const DecoderInputs& inputs) override;
  torch::nn::Embedding input_embeddings() const override {
    return embed_tokens;
  }
  torch::nn::ModuleList blocks() const override { return layers; }

  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};

 private:
  RotaryEmbedding rotary_;
};

/// Builds the backbone of `config`'s family.
std::shared_ptr<DecoderBackbone> make_decoder_backbone(
    const DecoderConfig& config);

/// ...ForCausalLM / GPT2LMHeadModel: backbone + lm_head (tied to the input
/// embeddings when the config says so).
class CausalLMImpl : public torch::nn::Module {
 public:
  explicit CausalLMImpl(const DecoderConfig& config);
  /// Logits [B, T, vocab]; with `logits_to_keep` > 0 only for the last
  /// that many positions (generation needs one).
  at::Tensor forward(const DecoderInputs& inputs, int64_t logits_to_keep = 0);
  /// The backbone's last hidden state [B, T, hidden].
  at::Tensor hidden_states(const DecoderInputs& inputs);
  /// lm_head over hidden states.
  at::Tensor logits(const at::Tensor& hidden);

  const DecoderConfig& config() const { return backbone->config(); }
  /// Ties lm_head.weight to the input embeddings (same tensor).
  void tie_weights();

  std::shared_ptr<DecoderBackbone> backbone;  ///< "transformer" / "model"
  Linear lm_head{nullptr};
};
TORCH_MODULE(CausalLM);

/// ...ForSequenceClassification: backbone + score (no bias), logits of the
/// last non-padding token of each row (the rightmost token that is not
/// pad_token_id, so left and right padding both work; the last position
/// when there is no pad token, which needs batch 1, or with inputs_embeds).
class DecoderSequenceClassifierImpl : public torch::nn::Module {
 public:
  explicit DecoderSequenceClassifierImpl(const DecoderConfig& config);
  /// Logits [B, num_labels].
  at::Tensor forward(const DecoderInputs& inputs);

  const DecoderConfig& config() const { return backbone->config(); }

  std::shared_ptr<DecoderBackbone> backbone;
  Linear score{nullptr};
};
TORCH_MODULE(DecoderSequenceClassifier);

}  // namespace peftcpp::models
