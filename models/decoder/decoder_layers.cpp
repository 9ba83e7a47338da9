#include "models/decoder/decoder_layers.h"

#include <ATen/ATen.h>
#include <torch/nn/functional/dropout.h>
#include <torch/nn/options/normalization.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "common/error.h"

namespace peftcpp::models {

namespace {

at::Tensor maybe_dropout(const at::Tensor& x, double p, bool training) {
  if (!training || p == 0.0)
    return x;
  return at::dropout(x, p, /*train=*/true);
}

}  // namespace

// --- KeyValueCache -----------------------------------------------------------

KeyValueCache::KeyValueCache(int64_t num_layers)
    : keys_(num_layers), values_(num_layers) {}

int64_t KeyValueCache::length() const {
  return keys_.empty() || !keys_[0].defined() ? 0 : keys_[0].size(2);
}

std::pair<at::Tensor, at::Tensor> KeyValueCache::append(
    int64_t layer, const at::Tensor& key, const at::Tensor& value) {
  if (layer < 0 || layer >= num_layers()) {
    throw std::out_of_range(
        error_message("KeyValueCache::append",
                      "a layer index below " + std::to_string(num_layers()),
                      std::to_string(layer)));
  }
  at::Tensor& k = keys_[layer];
  at::Tensor& v = values_[layer];
  k = k.defined() ? at::cat({k, key}, /*dim=*/2) : key;
  v = v.defined() ? at::cat({v, value}, /*dim=*/2) : value;
  return {k, v};
}

void KeyValueCache::select_rows(const at::Tensor& rows) {
  for (auto* list : {&keys_, &values_}) {
    for (at::Tensor& t : *list) {
      if (t.defined())
        t = t.index_select(0, rows.to(t.device()));
    }
  }
}

// --- normalisation and rotary embedding --------------------------------------

RMSNormImpl::RMSNormImpl(int64_t hidden_size, double eps) : eps_(eps) {
  weight = register_parameter("weight", at::ones({hidden_size}));
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) {
  const at::Tensor h = x.to(at::kFloat);
  const at::Tensor variance = h.pow(2).mean(-1, /*keepdim=*/true);
  return weight * (h * at::rsqrt(variance + eps_)).to(x.scalar_type());
}

RotaryEmbedding::RotaryEmbedding(const DecoderConfig& config) {
  const int64_t dim = config.head_dim;
  const RopeParameters& rope = config.rope;
  // As transformers: base ** (arange(0, dim, 2) / dim) in float32.
  const at::Tensor exponents = at::arange(0, dim, 2, at::kLong).to(at::kFloat) /
                               static_cast<double>(dim);
  at::Tensor inv_freq = 1.0 / at::pow(rope.rope_theta, exponents);
  if (rope.rope_type == "linear") {
    inv_freq = inv_freq / rope.factor;
  } else if (rope.rope_type == "llama3") {
    const double old_context =
        static_cast<double>(rope.original_max_position_embeddings > 0
                                ? rope.original_max_position_embeddings
                                : config.max_position_embeddings);
    const double low_freq_wavelen = old_context / rope.low_freq_factor;
    const double high_freq_wavelen = old_context / rope.high_freq_factor;
    const at::Tensor wavelen = 2 * M_PI / inv_freq;
    at::Tensor scaled =
        at::where(wavelen > low_freq_wavelen, inv_freq / rope.factor, inv_freq);
    const at::Tensor smooth = (old_context / wavelen - rope.low_freq_factor) /
                              (rope.high_freq_factor - rope.low_freq_factor);
    const at::Tensor smoothed =
        (1 - smooth) * scaled / rope.factor + smooth * scaled;
    const at::Tensor medium = at::logical_not(wavelen < high_freq_wavelen) &
                              at::logical_not(wavelen > low_freq_wavelen);
    scaled = at::where(medium, smoothed, scaled);
    inv_freq = scaled;
  }
  inv_freq_ = inv_freq;
}

std::pair<at::Tensor, at::Tensor> RotaryEmbedding::cos_sin(
    const at::Tensor& position_ids, c10::ScalarType dtype) const {
  const at::Tensor inv_freq = inv_freq_.to(position_ids.device());
  const at::Tensor freqs = position_ids.unsqueeze(-1).to(at::kFloat) * inv_freq;
  const at::Tensor emb = at::cat({freqs, freqs}, /*dim=*/-1);
  at::Tensor cos = emb.cos();
  at::Tensor sin = emb.sin();
  if (attention_scaling_ != 1.0) {
    cos = cos * attention_scaling_;
    sin = sin * attention_scaling_;
  }
  return {cos.to(dtype), sin.to(dtype)};
}

at::Tensor apply_rotary(const at::Tensor& x, const at::Tensor& cos,
                        const at::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  const at::Tensor x1 = x.slice(-1, 0, half);
  const at::Tensor x2 = x.slice(-1, half);
  const at::Tensor rotated = at::cat({-x2, x1}, /*dim=*/-1);
  return x * cos.unsqueeze(1) + rotated * sin.unsqueeze(1);
}

at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                  const AttentionContext& ctx, double dropout,
                  std::optional<double> scale) {
  const bool gqa = q.size(1) != k.size(1);
  std::optional<at::Tensor> mask;
  if (ctx.mask.defined())
    mask = ctx.mask;
  const at::Tensor out = at::scaled_dot_product_attention(
      q, k, v, mask, dropout, ctx.is_causal && !ctx.mask.defined(), scale,
      /*enable_gqa=*/gqa);
  // [B, heads, T, D] -> [B, T, heads * D]
  return out.transpose(1, 2).reshape({q.size(0), q.size(2), -1});
}

// --- LLaMA family ------------------------------------------------------------

LlamaAttentionImpl::LlamaAttentionImpl(const DecoderConfig& c,
                                       int64_t layer_index)
    : layer_index_(layer_index),
      num_heads_(c.num_attention_heads),
      num_kv_heads_(c.num_key_value_heads),
      head_dim_(c.head_dim),
      dropout_(c.attention_dropout) {
  const bool qkv_bias = c.attention_bias || c.qkv_bias;
  q_proj = register_module(
      "q_proj", Linear(c.hidden_size, num_heads_ * head_dim_, qkv_bias));
  k_proj = register_module(
      "k_proj", Linear(c.hidden_size, num_kv_heads_ * head_dim_, qkv_bias));
  v_proj = register_module(
      "v_proj", Linear(c.hidden_size, num_kv_heads_ * head_dim_, qkv_bias));
  o_proj = register_module("o_proj", Linear(num_heads_ * head_dim_,
                                            c.hidden_size, c.attention_bias));
}

at::Tensor LlamaAttentionImpl::forward(const at::Tensor& hidden,
                                       const AttentionContext& ctx) {
  const int64_t batch = hidden.size(0);
  const int64_t length = hidden.size(1);
  const auto heads = [&](const at::Tensor& x, int64_t n) {
    return x.view({batch, length, n, head_dim_}).transpose(1, 2);
  };
  at::Tensor q = heads(q_proj->forward(hidden), num_heads_);
  at::Tensor k = heads(k_proj->forward(hidden), num_kv_heads_);
  at::Tensor v = heads(v_proj->forward(hidden), num_kv_heads_);
  q = apply_rotary(q, ctx.cos, ctx.sin);
  k = apply_rotary(k, ctx.cos, ctx.sin);
  if (ctx.cache != nullptr)
    std::tie(k, v) = ctx.cache->append(layer_index_, k, v);
  const at::Tensor out =
      attend(q, k, v, ctx, is_training() ? dropout_ : 0.0, std::nullopt);
  return o_proj->forward(out);
}

LlamaMLPImpl::LlamaMLPImpl(const DecoderConfig& c) : act_(c.hidden_act) {
  gate_proj = register_module(
      "gate_proj", Linear(c.hidden_size, c.intermediate_size, c.mlp_bias));
  up_proj = register_module(
      "up_proj", Linear(c.hidden_size, c.intermediate_size, c.mlp_bias));
  down_proj = register_module(
      "down_proj", Linear(c.intermediate_size, c.hidden_size, c.mlp_bias));
}

at::Tensor LlamaMLPImpl::forward(const at::Tensor& x) {
  return down_proj->forward(apply_activation(gate_proj->forward(x), act_) *
                            up_proj->forward(x));
}

void DecoderBlockBase::set_adapter_slot(
    AdapterPlace place, std::shared_ptr<DecoderAdapterSlot> slot) {
  const bool attention = place == AdapterPlace::kAttention;
  auto& held = attention ? attention_adapters_ : output_adapters_;
  const char* name = attention ? "attention_adapters" : "output_adapters";
  if (held)
    unregister_module(name);
  held = std::move(slot);
  if (held)
    register_module(name, held);
}

at::Tensor DecoderBlockBase::add_residual(AdapterPlace place,
                                          const at::Tensor& hidden,
                                          const at::Tensor& residual) {
  const auto& slot = adapter_slot(place);
  return slot ? slot->forward(hidden, residual) : hidden + residual;
}

LlamaBlockImpl::LlamaBlockImpl(const DecoderConfig& c, int64_t layer_index)
    : DecoderBlockBase(c.hidden_size, layer_index) {
  input_layernorm =
      register_module("input_layernorm", RMSNorm(c.hidden_size, c.norm_eps));
  self_attn = register_module("self_attn", LlamaAttention(c, layer_index));
  post_attention_layernorm = register_module(
      "post_attention_layernorm", RMSNorm(c.hidden_size, c.norm_eps));
  mlp = register_module("mlp", LlamaMLP(c));
}

at::Tensor LlamaBlockImpl::forward(const at::Tensor& hidden,
                                   const AttentionContext& ctx) {
  const at::Tensor h = add_residual(
      AdapterPlace::kAttention,
      self_attn->forward(input_layernorm->forward(hidden), ctx), hidden);
  return add_residual(AdapterPlace::kOutput,
                      mlp->forward(post_attention_layernorm->forward(h)), h);
}

// --- GPT-2 -------------------------------------------------------------------

Gpt2AttentionImpl::Gpt2AttentionImpl(const DecoderConfig& c,
                                     int64_t layer_index)
    : layer_index_(layer_index),
      num_heads_(c.num_attention_heads),
      head_dim_(c.hidden_size / c.num_attention_heads),
      attention_dropout_(c.attention_dropout),
      residual_dropout_(c.residual_dropout) {
  scale_ = c.scale_attn_weights
               ? 1.0 / std::sqrt(static_cast<double>(head_dim_))
               : 1.0;
  if (c.scale_attn_by_inverse_layer_idx)
    scale_ /= static_cast<double>(layer_index + 1);
  c_attn = register_module("c_attn", Linear(c.hidden_size, 3 * c.hidden_size));
  c_proj = register_module("c_proj", Linear(c.hidden_size, c.hidden_size));
}

at::Tensor Gpt2AttentionImpl::forward(const at::Tensor& hidden,
                                      const AttentionContext& ctx) {
  const int64_t batch = hidden.size(0);
  const int64_t length = hidden.size(1);
  const std::vector<at::Tensor> qkv =
      c_attn->forward(hidden).split(num_heads_ * head_dim_, /*dim=*/-1);
  const auto heads = [&](const at::Tensor& x) {
    return x.view({batch, length, num_heads_, head_dim_}).transpose(1, 2);
  };
  at::Tensor q = heads(qkv[0]);
  at::Tensor k = heads(qkv[1]);
  at::Tensor v = heads(qkv[2]);
  if (ctx.cache != nullptr)
    std::tie(k, v) = ctx.cache->append(layer_index_, k, v);
  const at::Tensor out =
      attend(q, k, v, ctx, is_training() ? attention_dropout_ : 0.0, scale_);
  return maybe_dropout(c_proj->forward(out), residual_dropout_, is_training());
}

Gpt2MLPImpl::Gpt2MLPImpl(const DecoderConfig& c)
    : act_(c.hidden_act), dropout_(c.residual_dropout) {
  c_fc = register_module("c_fc", Linear(c.hidden_size, c.intermediate_size));
  c_proj =
      register_module("c_proj", Linear(c.intermediate_size, c.hidden_size));
}

at::Tensor Gpt2MLPImpl::forward(const at::Tensor& x) {
  return maybe_dropout(
      c_proj->forward(apply_activation(c_fc->forward(x), act_)), dropout_,
      is_training());
}

Gpt2BlockImpl::Gpt2BlockImpl(const DecoderConfig& c, int64_t layer_index)
    : DecoderBlockBase(c.hidden_size, layer_index) {
  const auto norm = [&] {
    return torch::nn::LayerNorm(
        torch::nn::LayerNormOptions({c.hidden_size}).eps(c.norm_eps));
  };
  ln_1 = register_module("ln_1", norm());
  attn = register_module("attn", Gpt2Attention(c, layer_index));
  ln_2 = register_module("ln_2", norm());
  mlp = register_module("mlp", Gpt2MLP(c));
}

at::Tensor Gpt2BlockImpl::forward(const at::Tensor& hidden,
                                  const AttentionContext& ctx) {
  const at::Tensor h =
      add_residual(AdapterPlace::kAttention,
                   attn->forward(ln_1->forward(hidden), ctx), hidden);
  return add_residual(AdapterPlace::kOutput, mlp->forward(ln_2->forward(h)), h);
}

}  // namespace peftcpp::models
