// PeftModel on decoder-only models: forward and generate with the active
// adapter as PEFT's PeftModelForCausalLM / PeftModelForSequenceClassification
// run them. LoRA and (IA)^3 act through the Linear hooks and need nothing
// here; prompt methods change the inputs.

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <stdexcept>

#include "common/error.h"
#include "peft/peft_model.h"
#include "peft/peft_model_entry.h"
#include "peft/wrapped_model.h"

namespace peftcpp::peft {

namespace {

/// Prefix tuning's per-layer keys and values as a cache the decoder reads as
/// its past (PEFT hands them to transformers as past_key_values).
models::KeyValueCache prefix_cache(
    const std::vector<models::KeyValuePrefix>& prefix) {
  models::KeyValueCache cache(static_cast<int64_t>(prefix.size()));
  for (size_t layer = 0; layer < prefix.size(); ++layer) {
    cache.append(static_cast<int64_t>(layer), prefix[layer].key,
                 prefix[layer].value);
  }
  return cache;
}

}  // namespace

at::Tensor PeftModelImpl::forward(const models::DecoderInputs& inputs) {
  constexpr const char* where = "PeftModel::forward";
  models::LoadedDecoder& model = decoder_for(where);
  models::DecoderInputs in = inputs;
  models::KeyValueCache prefix;
  if (const Adapter* method = active_prompt_method()) {
    if (inputs.cache != nullptr) {
      throw std::invalid_argument(error_message(
          where, "no cache in the inputs with a prompt-learning adapter",
          "a cache", "generate() runs prompt and prefix tuning with a cache"));
    }
    const at::Tensor& ref =
        inputs.input_ids.defined() ? inputs.input_ids : inputs.inputs_embeds;
    if (!ref.defined()) {
      throw std::invalid_argument(
          error_message(where, "input_ids or inputs_embeds", "neither"));
    }
    const int64_t batch = ref.size(0);
    const int64_t p = method->num_virtual_tokens();
    // PEFT: the virtual tokens are always attended.
    if (inputs.attention_mask.defined()) {
      in.attention_mask =
          at::cat({at::ones({batch, p}, inputs.attention_mask.options()),
                   inputs.attention_mask},
                  /*dim=*/1);
    }
    const at::Tensor prompts = method->virtual_token_embeddings(batch);
    if (prompts.defined()) {
      // Prompt tuning / P-tuning: [B, P, H] in front of the token
      // embeddings; PEFT drops explicit position ids (they would not cover
      // the virtual tokens), so positions run 0 .. P + T - 1.
      in.position_ids = at::Tensor();
      const at::Tensor embeds =
          inputs.inputs_embeds.defined()
              ? inputs.inputs_embeds
              : base_->word_embeddings()->forward(inputs.input_ids);
      in.inputs_embeds =
          at::cat({prompts.to(embeds.scalar_type()), embeds}, /*dim=*/1);
      in.input_ids = at::Tensor();
    } else {
      // Prefix tuning: the keys and values are a past of P positions, so
      // derived positions start at P and explicit ones move on by P.
      prefix = prefix_cache(method->key_value_prefix(batch));
      in.cache = &prefix;
      if (inputs.position_ids.defined())
        in.position_ids = inputs.position_ids + p;
    }
  }
  if (model.has_classifier())
    return model.classifier->forward(in);
  return model.causal_lm->forward(in);
}

models::GenerationOutput PeftModelImpl::generate(
    const models::GenerationInputs& inputs,
    const models::GenerationOptions& options,
    const std::function<void(int64_t)>& on_step) {
  constexpr const char* where = "PeftModel::generate";
  models::LoadedDecoder& model = decoder_for(where);
  if (!base_->is_causal_lm()) {
    throw std::invalid_argument(
        error_message(where, "a causal language model", base_->model_class(),
                      "load the checkpoint as a causal LM to generate"));
  }
  if (inputs.prefix != nullptr || inputs.prompt_embeds.defined()) {
    throw std::invalid_argument(error_message(
        where, "GenerationInputs without prefix and prompt_embeds",
        "inputs that set them",
        "the PeftModel supplies both from its active adapter"));
  }
  models::GenerationInputs in = inputs;
  models::KeyValueCache prefix;
  if (const Adapter* method = active_prompt_method()) {
    if (!inputs.input_ids.defined() || inputs.input_ids.dim() != 2) {
      throw std::invalid_argument(
          error_message(where, "input_ids [B, T]", "something else"));
    }
    at::NoGradGuard no_grad;
    const int64_t batch = inputs.input_ids.size(0);
    const at::Tensor prompts = method->virtual_token_embeddings(batch);
    if (prompts.defined()) {
      in.prompt_embeds =
          prompts.to(base_->word_embeddings()->weight.scalar_type());
    } else {
      prefix = prefix_cache(method->key_value_prefix(batch));
      in.prefix = &prefix;
    }
  }
  return models::generate(*model.causal_lm, in, options, on_step);
}

models::LoadedDecoder PeftModelImpl::merge_and_unload_decoder(bool safe) {
  models::LoadedDecoder& model = decoder_for("merge_and_unload_decoder");
  merge_and_remove_all(safe);
  return model;
}

}  // namespace peftcpp::peft
