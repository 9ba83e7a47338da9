#include "models/encoder/encoder_model.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/error.h"
#include "models/tensor_format.h"

namespace peftcpp::models {

namespace {

// A child module used only to reproduce HF's nesting of names, e.g.
// "intermediate" in "encoder.layer.0.intermediate.dense".
std::shared_ptr<torch::nn::Module> name_scope(torch::nn::Module& parent,
                                              const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>());
}

std::string dims_str(const std::vector<std::string>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i)
    s += (i > 0 ? ", " : "") + dims[i];
  return s + "]";
}

// Every prefix key and value is [B, num_heads, P, head_dim] on the inputs'
// device, with one P for all layers (SelfAttention concatenates them in
// front of the layer's own keys and values). Returns P, 0 without a prefix.
int64_t check_prefix(const EncoderConfig& c,
                     const std::vector<KeyValuePrefix>& prefix,
                     const at::Tensor& ref) {
  if (prefix.empty())
    return 0;
  if (static_cast<int64_t>(prefix.size()) != c.num_hidden_layers) {
    throw std::invalid_argument(
        error_message("EncoderModel",
                      "one key/value prefix per layer (" +
                          std::to_string(c.num_hidden_layers) + ")",
                      std::to_string(prefix.size())));
  }
  const int64_t batch = ref.size(0);
  int64_t length = -1;  // P, taken from prefix[0].key
  for (size_t i = 0; i < prefix.size(); ++i) {
    for (const bool is_key : {true, false}) {
      const at::Tensor& t = is_key ? prefix[i].key : prefix[i].value;
      const std::string name =
          "prefix[" + std::to_string(i) + "]." + (is_key ? "key" : "value");
      const bool fits = t.defined() && t.dim() == 4 && t.size(0) == batch &&
                        t.size(1) == c.num_attention_heads &&
                        t.size(3) == c.head_dim() &&
                        (length < 0 || t.size(2) == length);
      if (!fits) {
        std::string hint;
        if (!t.defined()) {
          hint = "every layer needs both a key and a value";
        } else if (t.dim() != 4) {
          hint =
              "split the heads: [B, P, hidden] -> view [B, P, num_heads, "
              "head_dim] -> transpose(1, 2)";
        } else if (t.size(0) != batch) {
          hint =
              "one prefix row per batch row; expand a shared prefix to "
              "the batch";
        } else if (t.size(1) != c.num_attention_heads ||
                   t.size(3) != c.head_dim()) {
          hint = "num_heads and head_dim are the model's";
        } else {
          hint = "every layer's key and value need the same prefix length P";
        }
        throw std::invalid_argument(error_message(
            "EncoderModel",
            "every prefix key and value of shape [B, num_heads, P, head_dim] "
            "= " +
                dims_str({std::to_string(batch),
                          std::to_string(c.num_attention_heads),
                          length < 0 ? "P" : std::to_string(length),
                          std::to_string(c.head_dim())}) +
                (length < 0 ? "" : " (P from prefix[0].key)"),
            name +
                (t.defined() ? " of shape " + shape_string(t) : " undefined"),
            hint));
      }
      if (t.device() != ref.device()) {
        throw std::invalid_argument(error_message(
            "EncoderModel",
            "the prefix on the inputs' device " + ref.device().str(),
            name + " on " + t.device().str()));
      }
      if (length < 0)
        length = t.size(2);
    }
  }
  return length;
}

// Derived positions must stay inside the position table. With a shift of P
// (a key/value prefix), BERT uses P .. P + T - 1 < max_position_embeddings;
// RoBERTa from input_ids gives a row with n real tokens positions up to
// padding_idx + P + n < max_position_embeddings; RoBERTa from inputs_embeds
// (shift 0) up to padding_idx + T. So the limit is
// T (RoBERTa from input_ids: real tokens in a row) + shift <=
// max_sequence_length().
void check_length(const EncoderConfig& c, const EncoderInputs& in,
                  int64_t length, int64_t shift) {
  const int64_t limit = c.max_sequence_length() - shift;
  if (length <= limit)
    return;
  const bool counts_real = c.family == EncoderFamily::kRoberta &&
                           in.input_ids.defined() && in.input_ids.dim() == 2;
  std::string got = std::to_string(length) + " tokens";
  if (counts_real) {
    // Only rows' real tokens take positions: a batch padded past the limit
    // is fine as long as every row fits (the common case does not get here).
    const int64_t longest =
        in.input_ids.ne(c.pad_token_id).sum(/*dim=*/1).max().item<int64_t>();
    if (longest <= limit)
      return;
    got = std::to_string(longest) + " tokens (not padding) in a row";
  }
  std::string why =
      "max_position_embeddings " + std::to_string(c.max_position_embeddings);
  if (c.family == EncoderFamily::kRoberta) {
    why += " less padding_idx + 1 = " + std::to_string(c.pad_token_id + 1) +
           " unused rows";
  }
  if (shift > 0) {
    why +=
        " less the key/value prefix's " + std::to_string(shift) + " positions";
  }
  std::string hint = "truncate the input, e.g. --max-length " +
                     std::to_string(std::max<int64_t>(limit, 0));
  if (shift > 0)
    hint += ", or use a shorter prefix";
  throw std::invalid_argument(error_message(
      "EncoderModel",
      "at most " + std::to_string(limit) + " tokens (" + why + ")", got, hint));
}

// Explicit position ids are used as given: the only limit is the table.
void check_position_ids(const EncoderConfig& c, const at::Tensor& positions,
                        int64_t batch, int64_t length) {
  if (positions.dim() != 2 || positions.size(1) != length ||
      (positions.size(0) != batch && positions.size(0) != 1)) {
    throw std::invalid_argument(error_message(
        "EncoderModel",
        "position_ids of shape [" + std::to_string(batch) + ", " +
            std::to_string(length) + "] or [1, " + std::to_string(length) + "]",
        shape_string(positions)));
  }
  if (positions.numel() == 0)
    return;
  const int64_t lo = positions.min().item<int64_t>();
  const int64_t hi = positions.max().item<int64_t>();
  if (lo < 0 || hi >= c.max_position_embeddings) {
    throw std::invalid_argument(error_message(
        "EncoderModel",
        "position_ids in [0, " + std::to_string(c.max_position_embeddings) +
            ") (max_position_embeddings)",
        "position_ids from " + std::to_string(lo) + " to " +
            std::to_string(hi)));
  }
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

int64_t EncoderEmbeddingsImpl::position_shift(const EncoderInputs& in,
                                              int64_t past_length) const {
  if (in.position_ids.defined())
    return 0;  // explicit positions are used as given
  // transformers' RobertaEmbeddings.create_position_ids_from_inputs_embeds
  // takes no past length.
  if (family_ == EncoderFamily::kRoberta && !in.input_ids.defined())
    return 0;
  return past_length;
}

at::Tensor EncoderEmbeddingsImpl::position_ids_for(const EncoderInputs& in,
                                                   int64_t batch,
                                                   int64_t length,
                                                   int64_t shift) const {
  const auto device = in.input_ids.defined() ? in.input_ids.device()
                                             : in.inputs_embeds.device();
  const auto long_on = at::TensorOptions().dtype(at::kLong).device(device);
  if (family_ == EncoderFamily::kRoberta) {
    if (in.input_ids.defined()) {
      // fairseq's make_positions, as transformers'
      // create_position_ids_from_input_ids: real tokens count up from
      // padding_idx + 1 + P, padding stays at padding_idx.
      at::Tensor not_pad = in.input_ids.ne(pad_token_id_).to(at::kLong);
      return (at::cumsum(not_pad, /*dim=*/1) + shift) * not_pad + pad_token_id_;
    }
    // Embeddings given: padding cannot be seen, so count sequentially, and
    // a past does not shift them (position_shift is 0).
    return at::arange(pad_token_id_ + 1, length + pad_token_id_ + 1, long_on)
        .unsqueeze(0)
        .expand({batch, length});
  }
  // BERT: transformers' position_ids[:, P : P + T].
  return at::arange(shift, length + shift, long_on)
      .unsqueeze(0)
      .expand({batch, length});
}

at::Tensor EncoderEmbeddingsImpl::forward(const EncoderInputs& in,
                                          int64_t past_length) {
  if (in.input_ids.defined() == in.inputs_embeds.defined()) {
    throw std::invalid_argument(error_message(
        "EncoderEmbeddings", "exactly one of input_ids and inputs_embeds",
        in.input_ids.defined() ? "both" : "neither"));
  }
  at::Tensor embeds =
      in.input_ids.defined() ? word_embeddings(in.input_ids) : in.inputs_embeds;
  const int64_t batch = embeds.size(0);
  const int64_t length = embeds.size(1);
  const at::Tensor positions =
      in.position_ids.defined()
          ? in.position_ids
          : position_ids_for(in, batch, length,
                             position_shift(in, past_length));
  at::Tensor types =
      in.token_type_ids.defined()
          ? in.token_type_ids
          : at::zeros({batch, length}, positions.options().dtype(at::kLong));
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
        ref.defined() ? "a tensor of shape " + shape_string(ref) : "neither"));
  }
  const int64_t batch = ref.size(0);
  const int64_t length = ref.size(1);
  const int64_t prefix_length = check_prefix(config_, in.prefix, ref);
  if (in.attention_mask.defined() &&
      (in.attention_mask.dim() != 2 || in.attention_mask.size(0) != batch ||
       in.attention_mask.size(1) != length)) {
    const bool has_prefix_ones =
        prefix_length > 0 && in.attention_mask.dim() == 2 &&
        in.attention_mask.size(1) == prefix_length + length;
    throw std::invalid_argument(error_message(
        "EncoderModel",
        "attention_mask of shape [" + std::to_string(batch) + ", " +
            std::to_string(length) + "]",
        shape_string(in.attention_mask),
        has_prefix_ones ? "the mask covers the tokens only, without the P "
                          "ones PEFT prepends; the prefix is always visible"
                        : ""));
  }
  if (in.position_ids.defined()) {
    check_position_ids(config_, in.position_ids, batch, length);
  } else {
    check_length(config_, in, length,
                 embeddings->position_shift(in, prefix_length));
  }

  at::Tensor hidden = embeddings(in, prefix_length);
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
