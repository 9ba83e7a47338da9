#pragma once
// BERT-family encoders (transformers' BertModel and RobertaModel) as LibTorch
// modules registered under Hugging Face's names, so a checkpoint's state dict
// loads key for key: embeddings.word_embeddings.weight,
// encoder.layer.0.attention.self.query.weight, pooler.dense.weight, ...
//
// Hook points (STYLE.md): every projection is a models::Linear (LoRA, DoRA,
// (IA)^3 attach there); each layer has an adapter slot after attention and
// after the feed-forward (bottleneck adapters); attention accepts a per-layer
// key/value prefix (prefix tuning); the model accepts input embeddings
// (prompt tuning). Unused hooks cost a null check.

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <optional>
#include <vector>

#include "models/encoder/encoder_config.h"
#include "models/layers/linear.h"

namespace peftcpp::models {

/// Keys and values prepended to one layer's attention (prefix tuning):
/// each [B, num_heads, P, head_dim].
struct KeyValuePrefix {
  at::Tensor key;
  at::Tensor value;
};

/// What an encoder is called with. Exactly one of input_ids [B, T] and
/// inputs_embeds [B, T, hidden] is given; the rest is optional.
///
/// With a prefix of length P the inputs work as transformers' with
/// past_key_values of length P (what PEFT's prefix tuning passes):
/// - attention_mask stays [B, T], covering the tokens only; the P prefix
///   positions are always visible. This equals transformers given the
///   [B, P + T] mask PEFT builds, with P ones in front.
/// - derived position ids start P further on (BERT: P .. P + T - 1; RoBERTa
///   from input_ids: real tokens from padding_idx + 1 + P). RoBERTa from
///   inputs_embeds is not shifted, as in transformers. Explicit position_ids
///   are used as given.
struct EncoderInputs {
  at::Tensor input_ids;       ///< [B, T] int64
  at::Tensor attention_mask;  ///< [B, T], 1 = token, 0 = padding
  at::Tensor token_type_ids;  ///< [B, T] int64, zeros when undefined
  at::Tensor position_ids;    ///< [B or 1, T] int64, derived when undefined
  at::Tensor inputs_embeds;   ///< [B, T, hidden], instead of input_ids
  /// One prefix per layer (prefix tuning), or empty. Every key and value is
  /// [B, num_heads, P, head_dim] with the same P in every layer.
  std::vector<KeyValuePrefix> prefix;
};

/// What an encoder returns.
struct EncoderOutput {
  at::Tensor last_hidden_state;  ///< [B, T, hidden]
  at::Tensor pooler_output;      ///< [B, hidden], undefined without pooler
};

/// A slot after a sub-layer's output projection, where a bottleneck adapter
/// goes. Given the projected (and dropped-out) sub-layer output, the residual
/// input and the sub-layer's LayerNorm, it returns the sub-layer's result.
/// With no adapter the layer computes LayerNorm(hidden + residual) itself.
class SublayerAdapter : public torch::nn::Module {
 public:
  virtual at::Tensor forward(const at::Tensor& hidden,
                             const at::Tensor& residual,
                             torch::nn::LayerNorm& layer_norm) = 0;
};

/// Word + position + token-type embeddings, LayerNorm, dropout.
class EncoderEmbeddingsImpl : public torch::nn::Module {
 public:
  explicit EncoderEmbeddingsImpl(const EncoderConfig& config);
  /// Returns [B, T, hidden]. `inputs` must carry input_ids or inputs_embeds.
  /// `past_length` is the key/value prefix's length P (transformers'
  /// past_key_values_length): derived position ids move on by
  /// position_shift(inputs, past_length).
  at::Tensor forward(const EncoderInputs& inputs, int64_t past_length = 0);

  /// How far derived position ids move with a past of `past_length`: P for
  /// BERT and for RoBERTa from input_ids, 0 for RoBERTa from inputs_embeds
  /// (transformers numbers those from padding_idx + 1 whatever the past)
  /// and 0 when `inputs` carries explicit position_ids.
  int64_t position_shift(const EncoderInputs& inputs,
                         int64_t past_length) const;

  torch::nn::Embedding word_embeddings{nullptr};
  torch::nn::Embedding position_embeddings{nullptr};
  torch::nn::Embedding token_type_embeddings{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};  // NOLINT: HF's name

 private:
  at::Tensor position_ids_for(const EncoderInputs& inputs, int64_t batch,
                              int64_t length, int64_t shift) const;
  EncoderFamily family_;
  int64_t pad_token_id_;
  double dropout_;
};
TORCH_MODULE(EncoderEmbeddings);

/// Multi-head self-attention: query, key, value projections and SDPA.
class SelfAttentionImpl : public torch::nn::Module {
 public:
  explicit SelfAttentionImpl(const EncoderConfig& config);
  /// hidden [B, T, hidden], mask [B, 1, 1, S] bool (true = attend) or
  /// undefined; returns [B, T, hidden] before the output projection.
  at::Tensor forward(const at::Tensor& hidden, const at::Tensor& mask,
                     const KeyValuePrefix* prefix);

  Linear query{nullptr};
  Linear key{nullptr};
  Linear value{nullptr};

 private:
  int64_t num_heads_;
  int64_t head_dim_;
  double dropout_;
};
TORCH_MODULE(SelfAttention);

/// Output projection + dropout + residual + LayerNorm (BertSelfOutput and
/// BertOutput have this same shape), with the adapter slot.
class SublayerOutputImpl : public torch::nn::Module {
 public:
  SublayerOutputImpl(int64_t in_features, const EncoderConfig& config);
  at::Tensor forward(const at::Tensor& hidden, const at::Tensor& residual);

  /// Puts a bottleneck adapter in the slot (registered as "adapters"), or
  /// clears it with nullptr.
  void set_adapter(std::shared_ptr<SublayerAdapter> adapter);
  std::shared_ptr<SublayerAdapter> adapter() const { return adapter_; }

  Linear dense{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};  // NOLINT: HF's name

 private:
  std::shared_ptr<SublayerAdapter> adapter_;
  double dropout_;
};
TORCH_MODULE(SublayerOutput);

/// attention.self + attention.output
class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const EncoderConfig& config);
  at::Tensor forward(const at::Tensor& hidden, const at::Tensor& mask,
                     const KeyValuePrefix* prefix);

  SelfAttention self{nullptr};
  SublayerOutput output{nullptr};
};
TORCH_MODULE(Attention);

/// One post-LN transformer layer: attention, then intermediate.dense +
/// activation, then output (dense, residual, LayerNorm).
class EncoderLayerImpl : public torch::nn::Module {
 public:
  explicit EncoderLayerImpl(const EncoderConfig& config);
  at::Tensor forward(const at::Tensor& hidden, const at::Tensor& mask,
                     const KeyValuePrefix* prefix);

  Attention attention{nullptr};
  Linear intermediate_dense{nullptr};  ///< "intermediate.dense"
  SublayerOutput output{nullptr};

 private:
  Activation activation_;
};
TORCH_MODULE(EncoderLayer);

/// BertModel / RobertaModel: embeddings, N layers, optional pooler
/// (dense + tanh over the first token).
class EncoderModelImpl : public torch::nn::Module {
 public:
  EncoderModelImpl(const EncoderConfig& config, bool add_pooling_layer);
  /// Throws std::invalid_argument for inputs the model cannot take: more
  /// tokens than the position table holds once a prefix shifts the
  /// positions (T + P <= max_sequence_length(), RoBERTa from inputs_embeds:
  /// T <= max_sequence_length()), explicit position_ids outside the table, a
  /// mask or prefix of the wrong shape.
  EncoderOutput forward(const EncoderInputs& inputs);

  const EncoderConfig& config() const { return config_; }
  bool has_pooler() const { return !pooler_dense.is_empty(); }

  EncoderEmbeddings embeddings{nullptr};
  torch::nn::ModuleList layers{nullptr};  ///< "encoder.layer"
  Linear pooler_dense{nullptr};           ///< "pooler.dense"

  /// Layer `i` of encoder.layer.
  EncoderLayer layer(size_t i) const;

 private:
  EncoderConfig config_;
};
TORCH_MODULE(EncoderModel);

/// Turns a [B, T] 0/1 mask into the [B, 1, 1, P + T] boolean mask SDPA
/// takes (true = attend), with `prefix_length` always-visible positions in
/// front. Returns an undefined tensor when nothing is masked.
at::Tensor make_attention_mask(const at::Tensor& attention_mask,
                               int64_t prefix_length);

}  // namespace peftcpp::models
