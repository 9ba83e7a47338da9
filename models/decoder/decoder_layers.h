#pragma once
// The blocks of decoder-only models, registered under Hugging Face's names so
// checkpoints load key for key:
//   LLaMA family: input_layernorm, self_attn.{q,k,v,o}_proj,
//                 post_attention_layernorm, mlp.{gate,up,down}_proj
//   GPT-2:        ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj
// Every projection is a models::Linear (the hook point LoRA, DoRA and (IA)^3
// attach to). GPT-2's Conv1D layers keep their weights as [out, in] here
// like every other Linear; the loader transposes HF's [in, out] tensors.

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "models/decoder/decoder_config.h"
#include "models/layers/linear.h"

namespace peftcpp::models {

/// Keys and values of the positions seen so far, one pair per layer, each
/// [B, num_key_value_heads, S, head_dim]. Forward reads a layer's past and
/// appends the new positions. Prefix tuning seeds it with the prefix.
class KeyValueCache {
 public:
  explicit KeyValueCache(int64_t num_layers = 0);

  /// S: the number of positions held (0 when empty).
  int64_t length() const;
  int64_t num_layers() const { return static_cast<int64_t>(keys_.size()); }
  bool empty() const { return length() == 0; }

  /// Appends [B, kv_heads, T, head_dim] keys and values to layer `layer`
  /// and returns the layer's keys and values, past and new.
  std::pair<at::Tensor, at::Tensor> append(int64_t layer, const at::Tensor& key,
                                           const at::Tensor& value);

  /// The held keys / values of `layer` (undefined when empty).
  const at::Tensor& key(int64_t layer) const { return keys_.at(layer); }
  const at::Tensor& value(int64_t layer) const { return values_.at(layer); }

  /// Keeps only the batch rows in `rows` (int64 indices).
  void select_rows(const at::Tensor& rows);

 private:
  std::vector<at::Tensor> keys_;
  std::vector<at::Tensor> values_;
};

/// What attention gets besides the hidden states: the mask (or is_causal)
/// and, for RoPE models, the rotary cos/sin for the new positions.
struct AttentionContext {
  /// [B, 1, T, S + T] bool, true = attend; undefined when `is_causal` or
  /// when every key is visible.
  at::Tensor mask;
  /// No mask tensor: plain causal attention over T new positions, no past.
  bool is_causal = false;
  at::Tensor cos;  ///< [B or 1, T, head_dim] (RoPE models)
  at::Tensor sin;
  KeyValueCache* cache = nullptr;
};

/// LLaMA's RMSNorm: computed in float32, scaled by `weight` in the input's
/// dtype, as transformers' LlamaRMSNorm.
class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t hidden_size, double eps);
  at::Tensor forward(const at::Tensor& x);
  at::Tensor weight;

 private:
  double eps_;
};
TORCH_MODULE(RMSNorm);

/// The rotary embedding's inverse frequencies (default, linear or llama3
/// scaling) and cos/sin for given positions, in float32 then the input's
/// dtype, as transformers computes them. Not a module: transformers keeps
/// inv_freq out of the state dict.
class RotaryEmbedding {
 public:
  explicit RotaryEmbedding(const DecoderConfig& config);
  /// cos and sin [B or 1, T, head_dim] for position_ids [B or 1, T].
  std::pair<at::Tensor, at::Tensor> cos_sin(const at::Tensor& position_ids,
                                            c10::ScalarType dtype) const;

 private:
  at::Tensor inv_freq_;  ///< [head_dim / 2] float32, CPU
  double attention_scaling_ = 1.0;
};

/// Rotates q and k ([B, heads, T, head_dim]) by cos/sin.
at::Tensor apply_rotary(const at::Tensor& x, const at::Tensor& cos,
                        const at::Tensor& sin);

/// LLaMA-family self-attention with grouped-query heads.
class LlamaAttentionImpl : public torch::nn::Module {
 public:
  LlamaAttentionImpl(const DecoderConfig& config, int64_t layer_index);
  at::Tensor forward(const at::Tensor& hidden, const AttentionContext& ctx);

  Linear q_proj{nullptr};
  Linear k_proj{nullptr};
  Linear v_proj{nullptr};
  Linear o_proj{nullptr};

 private:
  int64_t layer_index_;
  int64_t num_heads_;
  int64_t num_kv_heads_;
  int64_t head_dim_;
  double dropout_;
};
TORCH_MODULE(LlamaAttention);

/// down_proj(act(gate_proj(x)) * up_proj(x)).
class LlamaMLPImpl : public torch::nn::Module {
 public:
  explicit LlamaMLPImpl(const DecoderConfig& config);
  at::Tensor forward(const at::Tensor& x);

  Linear gate_proj{nullptr};
  Linear up_proj{nullptr};
  Linear down_proj{nullptr};

 private:
  Activation act_;
};
TORCH_MODULE(LlamaMLP);

/// An adapter in a block's residual connection, computing what replaces
/// `hidden + residual` (AdapterHub's BottleneckLayer, which its GPT-2 and
/// LLaMA blocks call with the sub-layer output, the block input or the
/// attention result, and no layer norm: these models normalise before).
class DecoderAdapterSlot : public torch::nn::Module {
 public:
  virtual at::Tensor forward(const at::Tensor& hidden,
                             const at::Tensor& residual) = 0;
};

/// The two residual connections of a block, where AdapterHub puts
/// mh_adapter and output_adapter.
enum class AdapterPlace { kAttention, kOutput };

/// What LLaMA and GPT-2 blocks share: two adapter slots, empty unless a
/// method fills them (then registered as "attention_adapters" /
/// "output_adapters", AdapterHub's module names).
class DecoderBlockBase : public torch::nn::Module {
 public:
  DecoderBlockBase(int64_t hidden_size, int64_t layer_index)
      : hidden_size_(hidden_size), layer_index_(layer_index) {}

  /// Puts `slot` at `place` (null empties it).
  void set_adapter_slot(AdapterPlace place,
                        std::shared_ptr<DecoderAdapterSlot> slot);
  std::shared_ptr<DecoderAdapterSlot> adapter_slot(AdapterPlace place) const {
    return place == AdapterPlace::kAttention ? attention_adapters_
                                             : output_adapters_;
  }
  int64_t hidden_size() const { return hidden_size_; }
  int64_t layer_index() const { return layer_index_; }

 protected:
  /// `hidden + residual`, or the slot's output when one is set.
  at::Tensor add_residual(AdapterPlace place, const at::Tensor& hidden,
                          const at::Tensor& residual);

 private:
  int64_t hidden_size_;
  int64_t layer_index_;
  std::shared_ptr<DecoderAdapterSlot> attention_adapters_;
  std::shared_ptr<DecoderAdapterSlot> output_adapters_;
};

/// A pre-norm LLaMA block.
class LlamaBlockImpl : public DecoderBlockBase {
 public:
  LlamaBlockImpl(const DecoderConfig& config, int64_t layer_index);
  at::Tensor forward(const at::Tensor& hidden, const AttentionContext& ctx);

  RMSNorm input_layernorm{nullptr};
  LlamaAttention self_attn{nullptr};
  RMSNorm post_attention_layernorm{nullptr};
  LlamaMLP mlp{nullptr};
};
TORCH_MODULE(LlamaBlock);

/// GPT-2 attention: the fused c_attn projection (q, k, v), c_proj.
class Gpt2AttentionImpl : public torch::nn::Module {
 public:
  Gpt2AttentionImpl(const DecoderConfig& config, int64_t layer_index);
  at::Tensor forward(const at::Tensor& hidden, const AttentionContext& ctx);

  Linear c_attn{nullptr};  ///< [3 * hidden, hidden]: q, k, v rows
  Linear c_proj{nullptr};

 private:
  int64_t layer_index_;
  int64_t num_heads_;
  int64_t head_dim_;
  double scale_;
  double attention_dropout_;
  double residual_dropout_;
};
TORCH_MODULE(Gpt2Attention);

/// c_proj(act(c_fc(x))), dropout.
class Gpt2MLPImpl : public torch::nn::Module {
 public:
  explicit Gpt2MLPImpl(const DecoderConfig& config);
  at::Tensor forward(const at::Tensor& x);

  Linear c_fc{nullptr};
  Linear c_proj{nullptr};

 private:
  Activation act_;
  double dropout_;
};
TORCH_MODULE(Gpt2MLP);

/// A pre-norm GPT-2 block.
class Gpt2BlockImpl : public DecoderBlockBase {
 public:
  Gpt2BlockImpl(const DecoderConfig& config, int64_t layer_index);
  at::Tensor forward(const at::Tensor& hidden, const AttentionContext& ctx);

  torch::nn::LayerNorm ln_1{nullptr};
  Gpt2Attention attn{nullptr};
  torch::nn::LayerNorm ln_2{nullptr};
  Gpt2MLP mlp{nullptr};
};
TORCH_MODULE(Gpt2Block);

/// Scaled dot-product attention over [B, heads, T, D] queries and
/// [B, kv_heads, S + T, D] keys / values (kv_heads divides heads), with the
/// context's mask. Returns [B, T, heads * D].
at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                  const AttentionContext& ctx, double dropout,
                  std::optional<double> scale);

}  // namespace peftcpp::models
