#pragma once
// Prompt learning: methods that add virtual tokens instead of changing
// layers, as Hugging Face PEFT implements them (peft/tuners/prompt_tuning,
// p_tuning, prefix_tuning and PeftModel.get_prompt):
//
// - prompt tuning (Lester et al. 2021): a table of P virtual token
//   embeddings [P, hidden], prepended to the input embeddings;
// - P-tuning (Liu et al. 2021): the same, but the table goes through a small
//   MLP while training; the saved adapter is the MLP's output;
// - prefix tuning (Li & Liang 2021): per-layer keys and values
//   [P, layers * 2 * hidden], optionally produced by a two-layer MLP while
//   training (prefix_projection); the saved adapter is the flat table.
//
// Each registers one module in AdapterContext::prompt_encoders under the
// adapter name with PEFT's module names, so the parameters are PEFT's
// in-memory names: "prompt_encoder.<name>.embedding.weight",
// "prompt_encoder.<name>.mlp_head.0.weight" (P-tuning),
// "prompt_encoder.<name>.transform.0.weight" (prefix projection). The saved
// form is PEFT's single tensor "prompt_embeddings" (no prefix): the encoder's
// output where there is an encoder, the table otherwise.
//
// With AdapterContext::inference_mode (a saved adapter loaded to run it) the
// encoders are not built: the module holds only the saved table, as PEFT
// builds it with inference_mode=True.

#include <memory>
#include <string>

#include "peft/adapter.h"
#include "peft/adapter_config.h"

namespace peftcpp::peft {

/// Adds prompt tuning adapter `name`. Fills the config's zero fields from
/// the model (token_dim, num_layers, num_attention_heads) so the caller saves
/// the completed config, then initialises the table as PEFT does: kRandom
/// N(0, 1); kText the word embeddings of the tokenized init text (special
/// tokens included, cut or cycled to P rows); kSampleVocab the word
/// embeddings of P token ids drawn uniformly from the vocabulary. In
/// inference mode every init is kRandom (the saved table replaces it).
/// Throws std::invalid_argument for options the model cannot take.
std::unique_ptr<Adapter> add_prompt_tuning(const AdapterContext& ctx,
                                           const std::string& name,
                                           PromptTuningConfig& config);

/// Adds P-tuning adapter `name`: a table [P, token_dim] and PEFT's MLP head
/// (Linear, ReLU, Linear, ReLU, Linear; encoder_hidden_size 0 -> token_dim).
/// "LSTM" is refused except in inference mode, where only the saved table
/// is needed. Throws std::invalid_argument for bad options.
std::unique_ptr<Adapter> add_p_tuning(const AdapterContext& ctx,
                                      const std::string& name,
                                      PromptEncoderConfig& config);

/// Adds prefix tuning adapter `name`: a table [P, num_layers * 2 *
/// token_dim], or with prefix_projection a table [P, token_dim] and PEFT's
/// `transform` (Linear, Tanh, Linear). Throws std::invalid_argument for bad
/// options (token_dim must be the hidden size and divide by the heads).
std::unique_ptr<Adapter> add_prefix_tuning(const AdapterContext& ctx,
                                           const std::string& name,
                                           PrefixTuningConfig& config);

}  // namespace peftcpp::peft
