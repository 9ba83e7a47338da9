#include "models/decoder/decoder_model.h"

#include <ATen/ATen.h>
#include <torch/nn/options/embedding.h>
#include <torch/nn/options/normalization.h>

#include <stdexcept>
#include <string>

#include "common/error.h"
#include "models/tensor_format.h"

namespace peftcpp::models {

namespace {

at::Tensor maybe_dropout(const at::Tensor& x, double p, bool training) {
  if (!training || p == 0.0)
    return x;
  return at::dropout(x, p, /*train=*/true);
}

int64_t past_length(const DecoderInputs& inputs) {
  return inputs.cache == nullptr ? 0 : inputs.cache->length();
}

}  // namespace

AttentionContext make_attention_context(const at::Tensor& attention_mask,
                                        int64_t batch, int64_t length,
                                        int64_t past,
                                        std::optional<int64_t> sliding_window,
                                        const c10::Device& device) {
  AttentionContext ctx;
  at::Tensor padding;  // [B, S + T] bool, or undefined when nothing is padded
  if (attention_mask.defined()) {
    const int64_t width = attention_mask.size(-1);
    if (attention_mask.dim() != 2 || attention_mask.size(0) != batch ||
        (width != past + length && width != length)) {
      throw std::invalid_argument(error_message(
          "DecoderModel",
          "attention_mask of shape [" + std::to_string(batch) + ", " +
              std::to_string(past + length) + "] (past + new tokens)" +
              (past > 0 ? " or [" + std::to_string(batch) + ", " +
                              std::to_string(length) + "]"
                        : ""),
          shape_string(attention_mask)));
    }
    padding = attention_mask.to(device, at::kBool);
    if (width != past + length) {  // [B, T]: the past is all visible
      padding = at::cat({at::ones({batch, past}, padding.options()), padding},
                        /*dim=*/1);
    }
    if (padding.all().item<bool>())
      padding = at::Tensor();
  }
  const bool windowed =
      sliding_window.has_value() && past + length > *sliding_window;
  if (!padding.defined() && !windowed) {
    // One new token sees every key; T new tokens without a past are plain
    // causal attention, which SDPA does without a mask tensor.
    if (past == 0 && length > 1)
      ctx.is_causal = true;
    if (length == 1 || past == 0)
      return ctx;
  }
  const auto long_opts = at::TensorOptions().dtype(at::kLong).device(device);
  const at::Tensor query_pos =
      at::arange(past, past + length, long_opts).unsqueeze(1);  // [T, 1]
  const at::Tensor key_pos = at::arange(past + length, long_opts).unsqueeze(0);
  at::Tensor visible = key_pos <= query_pos;  // [T, S+T]
  if (windowed)
    visible = visible & (query_pos - key_pos < *sliding_window);
  at::Tensor mask = visible.unsqueeze(0).unsqueeze(0);  // [1, 1, T, S+T]
  if (padding.defined())
    mask = mask & padding.unsqueeze(1).unsqueeze(1);  // [B, 1, T, S+T]
  else
    mask = mask.expand({batch, 1, length, past + length});
  // Rows that see nothing (a padding query in front of a left-padded row)
  // would give NaN; let them see everything instead.
  mask = mask | mask.any(-1, /*keepdim=*/true).logical_not();
  ctx.mask = mask;
  return ctx;
}

// --- DecoderBackbone ---------------------------------------------------------

at::Tensor DecoderBackbone::embed(const DecoderInputs& inputs) {
  if (inputs.input_ids.defined() == inputs.inputs_embeds.defined()) {
    throw std::invalid_argument(error_message(
        "DecoderModel", "exactly one of input_ids and inputs_embeds",
        inputs.input_ids.defined() ? "both" : "neither"));
  }
  if (inputs.inputs_embeds.defined()) {
    const at::Tensor& e = inputs.inputs_embeds;
    if (e.dim() != 3 || e.size(2) != config_.hidden_size) {
      throw std::invalid_argument(error_message(
          "DecoderModel",
          "inputs_embeds [B, T, " + std::to_string(config_.hidden_size) + "]",
          shape_string(e)));
    }
    return e;
  }
  const at::Tensor& ids = inputs.input_ids;
  if (ids.dim() != 2) {
    throw std::invalid_argument(
        error_message("DecoderModel", "input_ids [B, T]", shape_string(ids)));
  }
  return input_embeddings()->forward(ids);
}

at::Tensor DecoderBackbone::positions(const DecoderInputs& inputs,
                                      int64_t length, int64_t past,
                                      const c10::Device& device) const {
  if (inputs.position_ids.defined()) {
    const at::Tensor& p = inputs.position_ids;
    if (p.dim() != 2 || p.size(1) != length) {
      throw std::invalid_argument(
          error_message("DecoderModel",
                        "position_ids [B or 1, " + std::to_string(length) + "]",
                        shape_string(p)));
    }
    return p.to(device);
  }
  return at::arange(past, past + length,
                    at::TensorOptions().dtype(at::kLong).device(device))
      .unsqueeze(0);
}

// --- GPT-2 -------------------------------------------------------------------

Gpt2Model::Gpt2Model(const DecoderConfig& c) : DecoderBackbone(c) {
  wte =
      register_module("wte", torch::nn::Embedding(c.vocab_size, c.hidden_size));
  wpe = register_module(
      "wpe", torch::nn::Embedding(c.max_position_embeddings, c.hidden_size));
  h = register_module("h", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i)
    h->push_back(Gpt2Block(c, i));
  ln_f = register_module(
      "ln_f",
      torch::nn::LayerNorm(
          torch::nn::LayerNormOptions({c.hidden_size}).eps(c.norm_eps)));
}

at::Tensor Gpt2Model::forward(const DecoderInputs& inputs) {
  at::Tensor hidden = embed(inputs);
  const int64_t batch = hidden.size(0);
  const int64_t length = hidden.size(1);
  const int64_t past = past_length(inputs);
  const at::Tensor pos = positions(inputs, length, past, hidden.device());
  const int64_t max_pos = config_.max_position_embeddings;
  // Derived positions end at past + length - 1, known here; given ones are
  // read from the tensor (a device sync, only then).
  const int64_t last = inputs.position_ids.defined()
                           ? (pos.numel() > 0 ? pos.max().item<int64_t>() : 0)
                           : past + length - 1;
  if (last >= max_pos) {
    throw std::invalid_argument(error_message(
        "Gpt2Model", "positions below n_positions = " + std::to_string(max_pos),
        "position " + std::to_string(last),
        "shorten the input (past + new tokens)"));
  }
  hidden = hidden + wpe->forward(pos);
  hidden = maybe_dropout(hidden, config_.embedding_dropout, is_training());
  AttentionContext ctx =
      make_attention_context(inputs.attention_mask, batch, length, past,
                             std::nullopt, hidden.device());
  ctx.cache = inputs.cache;
  for (const auto& block : *h)
    hidden = block->as<Gpt2BlockImpl>()->forward(hidden, ctx);
  return ln_f->forward(hidden);
}

// --- LLaMA family ------------------------------------------------------------

LlamaModel::LlamaModel(const DecoderConfig& c)
    : DecoderBackbone(c), rotary_(c) {
  embed_tokens = register_module(
      "embed_tokens", torch::nn::Embedding(c.vocab_size, c.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i)
    layers->push_back(LlamaBlock(c, i));
  norm = register_module("norm", RMSNorm(c.hidden_size, c.norm_eps));
}

at::Tensor LlamaModel::forward(const DecoderInputs& inputs) {
  at::Tensor hidden = embed(inputs);
  const int64_t batch = hidden.size(0);
  const int64_t length = hidden.size(1);
  const int64_t past = past_length(inputs);
  const at::Tensor pos = positions(inputs, length, past, hidden.device());
  AttentionContext ctx =
      make_attention_context(inputs.attention_mask, batch, length, past,
                             config_.sliding_window, hidden.device());
  std::tie(ctx.cos, ctx.sin) = rotary_.cos_sin(pos, hidden.scalar_type());
  ctx.cache = inputs.cache;
  for (const auto& block : *layers)
    hidden = block->as<LlamaBlockImpl>()->forward(hidden, ctx);
  return norm->forward(hidden);
}

std::shared_ptr<DecoderBackbone> make_decoder_backbone(
    const DecoderConfig& config) {
  if (config.family == DecoderFamily::kGpt2)
    return std::make_shared<Gpt2Model>(config);
  return std::make_shared<LlamaModel>(config);
}

// --- heads -------------------------------------------------------------------

CausalLMImpl::CausalLMImpl(const DecoderConfig& config) {
  backbone = register_module(config.base_model_prefix(),
                             make_decoder_backbone(config));
  lm_head = register_module(
      "lm_head", Linear(config.hidden_size, config.vocab_size, /*bias=*/false));
  if (config.tie_word_embeddings)
    tie_weights();
}

void CausalLMImpl::tie_weights() {
  lm_head->tie_weight(backbone->input_embeddings()->weight);
}

at::Tensor CausalLMImpl::hidden_states(const DecoderInputs& inputs) {
  if (inputs.cache != nullptr &&
      inputs.cache->num_layers() != config().num_hidden_layers) {
    throw std::invalid_argument(error_message(
        "CausalLM",
        "a KeyValueCache of " + std::to_string(config().num_hidden_layers) +
            " layers",
        std::to_string(inputs.cache->num_layers()) + " layers"));
  }
  return backbone->forward(inputs);
}

at::Tensor CausalLMImpl::logits(const at::Tensor& hidden) {
  return lm_head->forward(hidden);
}

at::Tensor CausalLMImpl::forward(const DecoderInputs& inputs,
                                 int64_t logits_to_keep) {
  at::Tensor hidden = hidden_states(inputs);
  if (logits_to_keep > 0 && logits_to_keep < hidden.size(1))
    hidden = hidden.slice(1, hidden.size(1) - logits_to_keep);
  return logits(hidden);
}

DecoderSequenceClassifierImpl::DecoderSequenceClassifierImpl(
    const DecoderConfig& config) {
  backbone = register_module(config.base_model_prefix(),
                             make_decoder_backbone(config));
  if (config.num_labels() <= 0) {
    throw std::invalid_argument(error_message(
        "DecoderSequenceClassifier", "at least one label (id2label)", "none"));
  }
  score = register_module(
      "score", Linear(config.hidden_size, config.num_labels(), /*bias=*/false));
}

at::Tensor DecoderSequenceClassifierImpl::forward(const DecoderInputs& inputs) {
  const at::Tensor hidden = backbone->forward(inputs);
  const at::Tensor logits = score->forward(hidden);  // [B, T, labels]
  const int64_t batch = logits.size(0);
  const int64_t length = logits.size(1);
  const std::optional<int64_t> pad = config().pad_token_id;
  if (!pad.has_value() && batch != 1) {
    throw std::invalid_argument(error_message(
        "DecoderSequenceClassifier",
        "a pad_token_id in the config for batches of more than one row",
        "no pad_token_id and a batch of " + std::to_string(batch),
        "set pad_token_id (often the eos token) in config.json"));
  }
  at::Tensor last;
  if (pad.has_value() && inputs.input_ids.defined()) {
    // The rightmost token that is not padding, so left padding works too.
    const at::Tensor not_pad = inputs.input_ids.ne(*pad).to(at::kInt);
    const at::Tensor index = at::arange(
        length, at::TensorOptions().dtype(at::kInt).device(logits.device()));
    last = (index * not_pad.to(logits.device())).argmax(-1);
  } else {
    last =
        at::full({batch}, length - 1,
                 at::TensorOptions().dtype(at::kLong).device(logits.device()));
  }
  const at::Tensor rows = at::arange(
      batch, at::TensorOptions().dtype(at::kLong).device(logits.device()));
  return logits.index({rows, last.to(at::kLong)});
}

}  // namespace peftcpp::models
