#pragma once
// Text generation with a causal LM, the way transformers' generate() does
// it: a prefill over the (left-padded) prompts, then one token per step
// with the key/value cache; greedy or sampled (temperature, top-k, top-p,
// seeded); rows stop at a stop token and are padded after it.
//
//   GenerationOptions o;
//   o.max_new_tokens = 32;
//   o.stop_token_ids = config.eos_token_ids;
//   o.pad_token_id = 0;
//   GenerationOutput out = generate(*lm, ids, mask, o);
//   // out.sequences: [B, T + generated], prompts first
//
// Scoring without generating: continuation_log_likelihood sums log p of the
// marked tokens given everything before them (label scoring).

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "models/decoder/decoder_model.h"

namespace peftcpp::models {

/// How to generate; field names and meaning as transformers'
/// GenerationConfig (top_k 0 means off here, where transformers' default is
/// 50 when sampling).
struct GenerationOptions {
  int64_t max_new_tokens = 32;
  /// Stop tokens are suppressed until this many tokens were generated.
  int64_t min_new_tokens = 0;
  /// Sample from the distribution; false: greedy (argmax).
  bool do_sample = false;
  double temperature = 1.0;
  int64_t top_k = 0;
  double top_p = 1.0;
  /// Seeds the sampler (a fresh generator per call, so a call is
  /// reproducible).
  uint64_t seed = 0;
  /// A row is finished once it produced one of these.
  std::vector<int64_t> stop_token_ids;
  /// Written after a row finished; required when stop_token_ids is not
  /// empty and the batch has more than one row.
  std::optional<int64_t> pad_token_id;
  /// Reuse keys and values across steps (false recomputes the whole
  /// sequence every step: slower, same tokens; for checking the cache).
  bool use_cache = true;
};

/// Where generation starts: prompts and what PEFT methods add before them.
struct GenerationInputs {
  at::Tensor input_ids;       ///< [B, T], left-padded for batches
  at::Tensor attention_mask;  ///< [B, T]; undefined = all ones
  /// A past no token produced (prefix tuning's per-layer keys and values),
  /// seen by every position, or null. Copied, not changed.
  const KeyValueCache* prefix = nullptr;
  /// Embeddings put in front of the prompt's (prompt tuning), [B, P,
  /// hidden], or undefined. With them, positions count every column from
  /// the first virtual token, padding included (PEFT drops the
  /// mask-derived position ids for prompt tuning).
  at::Tensor prompt_embeds;
};

/// What generate returns.
struct GenerationOutput {
  /// [B, T + n]: the prompts then the generated tokens (pad after a stop).
  at::Tensor sequences;
  /// Tokens generated per row, the stop token included.
  std::vector<int64_t> num_generated;
};

/// Generates up to max_new_tokens for each row. `on_step` (optional) is
/// called after each step with the number of steps done. Throws
/// std::invalid_argument for inconsistent inputs (mask shape, missing pad
/// token, a prompt longer than a learned position table allows).
GenerationOutput generate(CausalLMImpl& model, const GenerationInputs& inputs,
                          const GenerationOptions& options,
                          const std::function<void(int64_t)>& on_step = {});

/// Shorthand for prompts alone.
GenerationOutput generate(CausalLMImpl& model, const at::Tensor& input_ids,
                          const at::Tensor& attention_mask,
                          const GenerationOptions& options);

/// The next-token logits transformers' processors produce before sampling:
/// temperature, then top-k, then top-p (filtered entries -inf). [B, V].
at::Tensor warp_logits(const at::Tensor& logits,
                       const GenerationOptions& options);

/// Sum over positions t with target_mask[b, t] == 1 of log p(ids[b, t] |
/// ids[b, < t]), per row: [B] float32. `attention_mask` marks padding
/// (undefined = none); position 0 cannot be a target.
at::Tensor continuation_log_likelihood(CausalLMImpl& model,
                                       const at::Tensor& input_ids,
                                       const at::Tensor& attention_mask,
                                       const at::Tensor& target_mask);

}  // namespace peftcpp::models
