#include "models/encoder/encoder_model.h"

#include <ATen/ATen.h>

#include <stdexcept>
#include <string>

#include "common/error.h"

namespace peftcpp::models {

namespace {

// A child module used only to reproduce HF's nesting of names, e.g.
// "intermediate" in "encoder.layer.0.intermediate.dense".
std::shared_ptr<torch::nn::Module> name_scope(torch::nn::Module& parent,
                                              const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>());
}

std::string shape_str(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) {
    if (i > 0)
      s += ", ";
    s += std::to_string(t.size(i));
  }
  return s + "]";
}

}  // namespace

at::Tensor make_attention_mask(const at::Tensor& attention_mask,
                               int64_t prefix_length) {
  if (!attention_mask.defined())
    return {};
  at::Tensor keep = attention_mask.to(at::kBool);  // [B, T]
  if (prefix_length > 0) {
    keep =
        at::cat({at::ones({keep.size(0), prefix_length}, keep.options()), keep},
                /*dim=*/1);
  }
  if (keep.all().item<bool>())
    return {};                            // nothing masked: SDPA's fast path
  return keep.unsqueeze(1).unsqueeze(1);  // [B, 1, 1, P + T]
}

// --- embeddings
// ----------------------------------------------------------------

EncoderEmbeddingsImpl::EncoderEmbeddingsImpl(const EncoderConfig& c)
    : family_(c.family),
      pad_token_id_(c.pad_token_id),
      dropout_(c.hidden_dropout_prob) {
  word_embeddings =
      register_module("word_embeddings",
                      torch::nn::Embedding(torch::nn::EmbeddingOptions(
                                               c.vocab_size, c.hidden_size)
                                               .padding_idx(c.pad_token_id)));
  auto pos =
      torch::nn::EmbeddingOptions(c.max_position_embeddings, c.hidden_size);
  if (family_ == EncoderFamily::kRoberta)
    pos.padding_idx(c.pad_token_id);
  position_embeddings =
      register_module("position_embeddings", torch::nn::Embedding(pos));
  token_type_embeddings =
      register_module("token_type_embeddings",
                      torch::nn::Embedding(c.type_vocab_size, c.hidden_size));
  LayerNorm = register_module(
      "LayerNorm",
      torch::nn::LayerNorm(
          torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
}

at::Tensor EncoderEmbeddingsImpl::position_ids_for(const EncoderInputs& in,
                                                   int64_t batch,
                                                   int64_t length) const {
  const auto device = in.input_ids.defined() ? in.input_ids.device()
                                             : in.inputs_embeds.device();
  if (family_ == EncoderFamily::kRoberta) {
    if (in.input_ids.defined()) {
      // fairseq's make_positions: real tokens count up from padding_idx + 1,
      // padding stays at padding_idx.
      at::Tensor not_pad = in.input_ids.ne(pad_token_id_).to(at::kLong);
      return at::cumsum(not_pad, /*dim=*/1) * not_pad + pad_token_id_;
    }
    // Embeddings given: padding cannot be seen, so count sequentially.
    return at::arange(pad_token_id_ + 1, length + pad_token_id_ + 1,
                      at::TensorOptions().dtype(at::kLong).device(device))
        .unsqueeze(0)
        .expand({batch, length});
  }
  return at::arange(length, at::TensorOptions().dtype(at::kLong).device(device))
      .unsqueeze(0)
      .expand({batch, length});
}

at::Tensor EncoderEmbeddingsImpl::forward(const EncoderInputs& in) {
  if (in.input_ids.defined() == in.inputs_embeds.defined()) {
    throw std::invalid_argument(error_message(
        "EncoderEmbeddings", "exactly one of input_ids and inputs_embeds",
        in.input_ids.defined() ? "both" : "neither"));
  }
  at::Tensor embeds =
      in.input_ids.defined() ? word_embeddings(in.input_ids) : in.inputs_embeds;
  const int64_t batch = embeds.size(0);
  const int64_t length = embeds.size(1);
  const at::Tensor positions = in.position_ids.defined()
                                   ? in.position_ids
                                   : position_ids_for(in, batch, length);
  at::Tensor types = in.token_type_ids.defined()
                         ? in.token_type_ids
                         : at::zeros({batch, length}, positions.options());
  at::Tensor h =
      embeds + token_type_embeddings(types) + position_embeddings(positions);
  return at::dropout(LayerNorm(h), dropout_, is_training());
}

// --- attention
// -------------------------------------------------------------------

SelfAttentionImpl::SelfAttentionImpl(const EncoderConfig& c)
    : num_heads_(c.num_attention_heads),
      head_dim_(c.head_dim()),
      dropout_(c.attention_probs_dropout_prob) {
  query = register_module("query", Linear(c.hidden_size, c.hidden_size));
  key = register_module("key", Linear(c.hidden_size, c.hidden_size));
  value = register_module("value", Linear(c.hidden_size, c.hidden_size));
}

at::Tensor SelfAttentionImpl::forward(const at::Tensor& hidden,
                                      const at::Tensor& mask,
                                      const KeyValuePrefix* prefix) {
  const int64_t batch = hidden.size(0);
  const int64_t length = hidden.size(1);
  // [B, T, H*D] -> [B, H, T, D]
  auto heads = [&](const at::Tensor& x) {
    return x.view({batch, length, num_heads_, head_dim_}).transpose(1, 2);
  };
  at::Tensor q = heads(query(hidden));
  at::Tensor k = heads(key(hidden));
  at::Tensor v = heads(value(hidden));
  if (prefix != nullptr) {
    k = at::cat({prefix->key.to(k.dtype()), k}, /*dim=*/2);
    v = at::cat({prefix->value.to(v.dtype()), v}, /*dim=*/2);
  }
  // An undefined mask must reach SDPA as "no mask", not as a tensor.
  const std::optional<at::Tensor> attn_mask =
      mask.defined() ? std::optional<at::Tensor>(mask) : std::nullopt;
  at::Tensor out = at::scaled_dot_product_attention(
      q, k, v, attn_mask, is_training() ? dropout_ : 0.0, /*is_causal=*/false);
  // [B, H, T, D] -> [B, T, H*D]
  return out.transpose(1, 2).reshape({batch, length, num_heads_ * head_dim_});
}

SublayerOutputImpl::SublayerOutputImpl(int64_t in_features,
                                       const EncoderConfig& c)
    : dropout_(c.hidden_dropout_prob) {
  dense = register_module("dense", Linear(in_features, c.hidden_size));
  LayerNorm = register_module(
      "LayerNorm",
      torch::nn::LayerNorm(
          torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
}

at::Tensor SublayerOutputImpl::forward(const at::Tensor& hidden,
                                       const at::Tensor& residual) {
  at::Tensor h = at::dropout(dense(hidden), dropout_, is_training());
  if (adapter_)
    return adapter_->forward(h, residual, LayerNorm);
  return LayerNorm(h + residual);
}

void SublayerOutputImpl::set_adapter(std::shared_ptr<SublayerAdapter> adapter) {
  if (adapter_)
    unregister_module("adapters");
  adapter_ = std::move(adapter);
  if (adapter_)
    register_module("adapters", adapter_);
}

AttentionImpl::AttentionImpl(const EncoderConfig& c) {
  self = register_module("self", SelfAttention(c));
  output = register_module("output", SublayerOutput(c.hidden_size, c));
}

at::Tensor AttentionImpl::forward(const at::Tensor& hidden,
                                  const at::Tensor& mask,
                                  const KeyValuePrefix* prefix) {
  return output(self(hidden, mask, prefix), hidden);
}

// --- layer and model
// ---------------------------------------------------------------

EncoderLayerImpl::EncoderLayerImpl(const EncoderConfig& c)
    : activation_(c.hidden_act) {
  attention = register_module("attention", Attention(c));
  intermediate_dense =
      name_scope(*this, "intermediate")
          ->register_module("dense",
                            Linear(c.hidden_size, c.intermediate_size));
  output = register_module("output", SublayerOutput(c.intermediate_size, c));
}

at::Tensor EncoderLayerImpl::forward(const at::Tensor& hidden,
                                     const at::Tensor& mask,
                                     const KeyValuePrefix* prefix) {
  at::Tensor attended = attention(hidden, mask, prefix);
  at::Tensor inner =
      apply_activation(intermediate_dense(attended), activation_);
  return output(inner, attended);
}

EncoderModelImpl::EncoderModelImpl(const EncoderConfig& c,
                                   bool add_pooling_layer)
    : config_(c) {
  embeddings = register_module("embeddings", EncoderEmbeddings(c));
  layers = name_scope(*this, "encoder")
               ->register_module("layer", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    layers->push_back(EncoderLayer(c));
  }
  if (add_pooling_layer) {
    pooler_dense =
        name_scope(*this, "pooler")
            ->register_module("dense", Linear(c.hidden_size, c.hidden_size));
  }
}

EncoderLayer EncoderModelImpl::layer(size_t i) const {
  return EncoderLayer(layers->ptr<EncoderLayerImpl>(i));
}

EncoderOutput EncoderModelImpl::forward(const EncoderInputs& in) {
  const at::Tensor& ref =
      in.input_ids.defined() ? in.input_ids : in.inputs_embeds;
  if (!ref.defined() || ref.dim() < 2) {
    throw std::invalid_argument(error_message(
        "EncoderModel", "input_ids [B, T] or inputs_embeds [B, T, hidden]",
        ref.defined() ? "a tensor of shape " + shape_str(ref) : "neither"));
  }
  const int64_t length = ref.size(1);
  if (length > config_.max_sequence_length()) {
    throw std::invalid_argument(error_message(
        "EncoderModel",
        "at most " + std::to_string(config_.max_sequence_length()) +
            " tokens (max_position_embeddings)",
        std::to_string(length) + " tokens",
        "truncate the input, e.g. --max-length " +
            std::to_string(config_.max_sequence_length())));
  }
  if (in.attention_mask.defined() &&
      (in.attention_mask.dim() != 2 ||
       in.attention_mask.size(0) != ref.size(0) ||
       in.attention_mask.size(1) != length)) {
    throw std::invalid_argument(error_message(
        "EncoderModel",
        "attention_mask of shape [" + std::to_string(ref.size(0)) + ", " +
            std::to_string(length) + "]",
        shape_str(in.attention_mask)));
  }
  if (!in.prefix.empty() &&
      static_cast<int64_t>(in.prefix.size()) != config_.num_hidden_layers) {
    throw std::invalid_argument(
        error_message("EncoderModel",
                      "one key/value prefix per layer (" +
                          std::to_string(config_.num_hidden_layers) + ")",
                      std::to_string(in.prefix.size())));
  }

  at::Tensor hidden = embeddings(in);
  const int64_t prefix_length =
      in.prefix.empty() ? 0 : in.prefix.front().key.size(2);
  const at::Tensor mask = make_attention_mask(in.attention_mask, prefix_length);
  for (size_t i = 0; i < layers->size(); ++i) {
    hidden =
        layer(i)(hidden, mask, in.prefix.empty() ? nullptr : &in.prefix[i]);
  }
  EncoderOutput out;
  out.last_hidden_state = hidden;
  if (has_pooler()) {
    // [B, T, hidden] -> first token [B, hidden]
    out.pooler_output = at::tanh(pooler_dense(hidden.select(/*dim=*/1, 0)));
  }
  return out;
}

}  // namespace peftcpp::models
