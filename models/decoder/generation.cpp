#include "models/decoder/generation.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

#include <limits>
#include <stdexcept>
#include <string>

#include "common/error.h"
#include "models/tensor_format.h"

namespace peftcpp::models {

namespace {

// Positions as transformers' generate derives them from the mask: the
// running count of real tokens, 0 on padding.
at::Tensor positions_from_mask(const at::Tensor& mask) {
  return (mask.cumsum(-1) - 1).masked_fill(mask.eq(0), 0);
}

at::Generator make_generator(uint64_t seed, const c10::Device& device) {
  at::Generator gen;
  if (device.is_cpu()) {
    gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  } else {
    gen = at::globalContext().defaultGenerator(device).clone();
    gen.set_current_seed(seed);
  }
  return gen;
}

void check_inputs(const CausalLMImpl& model, const GenerationInputs& in,
                  const GenerationOptions& o) {
  const char* where = "generate";
  if (!in.input_ids.defined() || in.input_ids.dim() != 2) {
    throw std::invalid_argument(error_message(
        where, "input_ids [B, T]",
        in.input_ids.defined() ? shape_string(in.input_ids) : "undefined"));
  }
  if (in.attention_mask.defined() &&
      in.attention_mask.sizes() != in.input_ids.sizes()) {
    throw std::invalid_argument(error_message(
        where,
        "attention_mask of input_ids' shape " + shape_string(in.input_ids),
        shape_string(in.attention_mask)));
  }
  if (o.max_new_tokens < 0 || o.min_new_tokens < 0) {
    throw std::invalid_argument(
        error_message(where, "max_new_tokens and min_new_tokens >= 0",
                      std::to_string(o.max_new_tokens) + " and " +
                          std::to_string(o.min_new_tokens)));
  }
  if (o.do_sample && !(o.temperature > 0.0)) {
    throw std::invalid_argument(error_message(
        where, "a temperature > 0 when sampling", std::to_string(o.temperature),
        "use do_sample = false for greedy decoding"));
  }
  if (!(o.top_p > 0.0 && o.top_p <= 1.0) || o.top_k < 0) {
    throw std::invalid_argument(
        error_message(where, "top_p in (0, 1] and top_k >= 0",
                      "top_p " + std::to_string(o.top_p) + ", top_k " +
                          std::to_string(o.top_k)));
  }
  if (!o.stop_token_ids.empty() && !o.pad_token_id.has_value() &&
      in.input_ids.size(0) > 1) {
    throw std::invalid_argument(
        error_message(where, "a pad_token_id to fill rows that stopped early",
                      "none, with stop tokens and a batch of " +
                          std::to_string(in.input_ids.size(0)),
                      "the eos token is the usual choice"));
  }
  const int64_t vocab = model.config().vocab_size;
  for (int64_t id : o.stop_token_ids) {
    if (id < 0 || id >= vocab) {
      throw std::invalid_argument(error_message(
          where,
          "stop token ids below the vocabulary size " + std::to_string(vocab),
          std::to_string(id)));
    }
  }
}

}  // namespace

at::Tensor warp_logits(const at::Tensor& logits,
                       const GenerationOptions& options) {
  const double neg_inf = -std::numeric_limits<double>::infinity();
  at::Tensor out = logits;
  if (options.temperature != 1.0)
    out = out / options.temperature;
  if (options.top_k > 0 && options.top_k < out.size(-1)) {
    const at::Tensor kth = std::get<0>(out.topk(options.top_k, -1))
                               .narrow(-1, options.top_k - 1, 1);
    out = out.masked_fill(out < kth, neg_inf);
  }
  if (options.top_p < 1.0) {
    // As transformers' TopPLogitsWarper: drop the smallest tokens whose
    // cumulative probability stays within 1 - top_p, keep at least one.
    auto [sorted, index] = out.sort(/*dim=*/-1, /*descending=*/false);
    const at::Tensor cumulative = sorted.softmax(-1).cumsum(-1);
    at::Tensor remove = cumulative <= (1.0 - options.top_p);
    remove.narrow(-1, remove.size(-1) - 1, 1).fill_(false);
    const at::Tensor remove_original = remove.scatter(-1, index, remove);
    out = out.masked_fill(remove_original, neg_inf);
  }
  return out;
}

GenerationOutput generate(CausalLMImpl& model, const GenerationInputs& in,
                          const GenerationOptions& o,
                          const std::function<void(int64_t)>& on_step) {
  check_inputs(model, in, o);
  c10::InferenceMode inference;
  const c10::Device device = in.input_ids.device();
  const int64_t batch = in.input_ids.size(0);
  const int64_t prompt_length = in.input_ids.size(1);
  const auto long_opts = at::TensorOptions().dtype(at::kLong).device(device);

  // The mask over everything the model attends to: prefix, prompt
  // embeddings, prompt; it grows by one column per step.
  at::Tensor mask = in.attention_mask.defined()
                        ? in.attention_mask.to(long_opts)
                        : at::ones({batch, prompt_length}, long_opts);
  const int64_t prefix_length = in.prefix != nullptr ? in.prefix->length() : 0;
  const int64_t virtual_length =
      in.prompt_embeds.defined() ? in.prompt_embeds.size(1) : 0;
  at::Tensor full_mask = at::cat(
      {at::ones({batch, prefix_length + virtual_length}, long_opts), mask}, 1);
  // Checked once: without padding the cached steps pass no mask at all, so
  // the model need not look at one (a device sync per step on a GPU).
  const bool padded = !mask.all().item<bool>();
  at::Tensor all_positions = positions_from_mask(full_mask);
  // PEFT drops position ids when it puts prompt embeddings in front
  // (prepare_inputs_for_generation), so the model counts positions from
  // the first virtual token, padding included; a prefix keeps the
  // mask-derived positions, moved on by its length.
  const bool counted_positions = in.prompt_embeds.defined();

  const int64_t num_layers = model.config().num_hidden_layers;
  if (in.prefix != nullptr && in.prefix->num_layers() != num_layers) {
    throw std::invalid_argument(error_message(
        "generate", "a prefix of " + std::to_string(num_layers) + " layers",
        std::to_string(in.prefix->num_layers()) + " layers"));
  }
  const KeyValueCache start =
      in.prefix != nullptr ? *in.prefix : KeyValueCache(num_layers);
  KeyValueCache cache = start;
  const auto prompt_inputs = [&](const at::Tensor& ids) {
    DecoderInputs step;
    if (in.prompt_embeds.defined()) {
      step.inputs_embeds =
          at::cat({in.prompt_embeds.to(device),
                   model.backbone->input_embeddings()->forward(ids)},
                  /*dim=*/1);
    } else {
      step.input_ids = ids;
    }
    return step;
  };

  // Prefill.
  DecoderInputs first = prompt_inputs(in.input_ids);
  first.attention_mask = full_mask;
  if (!counted_positions)
    first.position_ids = all_positions.slice(1, prefix_length);
  KeyValueCache scratch = start;
  first.cache = o.use_cache ? &cache : &scratch;
  at::Tensor logits = model.forward(first, /*logits_to_keep=*/1);

  at::Tensor sequences = in.input_ids.to(at::kLong);
  at::Tensor finished = at::zeros({batch}, long_opts.dtype(at::kBool));
  const at::Tensor stops =
      at::tensor(o.stop_token_ids, at::TensorOptions().dtype(at::kLong))
          .to(device);
  std::optional<at::Generator> generator;
  if (o.do_sample)
    generator = make_generator(o.seed, device);
  at::Tensor generated = at::zeros({batch}, long_opts);

  for (int64_t step = 0; step < o.max_new_tokens; ++step) {
    at::Tensor next_logits =
        logits.select(1, logits.size(1) - 1).to(at::kFloat);
    if (step < o.min_new_tokens && stops.numel() > 0) {
      next_logits = next_logits.index_fill(
          1, stops, -std::numeric_limits<double>::infinity());
    }
    at::Tensor next;
    if (o.do_sample) {
      const at::Tensor probs = warp_logits(next_logits, o).softmax(-1);
      next = at::multinomial(probs, 1, /*replacement=*/false, *generator)
                 .squeeze(1);
    } else {
      next = next_logits.argmax(-1);
    }
    if (o.pad_token_id.has_value())
      next = at::where(finished, at::full_like(next, *o.pad_token_id), next);
    generated += finished.logical_not().to(at::kLong);
    sequences = at::cat({sequences, next.unsqueeze(1)}, /*dim=*/1);
    if (stops.numel() > 0)
      finished = finished | at::isin(next, stops);
    if (on_step)
      on_step(step + 1);
    if (step + 1 == o.max_new_tokens)
      break;
    // Nothing can have stopped while stop tokens are suppressed; skipping
    // the check there saves a device sync per step.
    if (stops.numel() > 0 && step + 1 >= o.min_new_tokens &&
        finished.all().item<bool>())
      break;

    full_mask = at::cat({full_mask, at::ones({batch, 1}, long_opts)}, 1);
    const at::Tensor last_position =
        all_positions.narrow(1, all_positions.size(1) - 1, 1) + 1;
    all_positions = at::cat({all_positions, last_position}, 1);
    DecoderInputs next_inputs;
    if (o.use_cache) {
      next_inputs.input_ids = next.unsqueeze(1);
      if (padded)
        next_inputs.attention_mask = full_mask;
      if (!counted_positions)
        next_inputs.position_ids = last_position;
      next_inputs.cache = &cache;
    } else {
      // Everything again from the prefix on: the check that the cache
      // changes nothing.
      scratch = start;
      next_inputs = prompt_inputs(sequences);
      next_inputs.attention_mask = full_mask;
      if (!counted_positions)
        next_inputs.position_ids = all_positions.slice(1, prefix_length);
      next_inputs.cache = &scratch;
    }
    logits = model.forward(next_inputs, /*logits_to_keep=*/1);
  }
  GenerationOutput out;
  out.sequences = sequences;
  const at::Tensor counts = generated.to(at::kCPU);
  out.num_generated.assign(counts.data_ptr<int64_t>(),
                           counts.data_ptr<int64_t>() + batch);
  return out;
}

GenerationOutput generate(CausalLMImpl& model, const at::Tensor& input_ids,
                          const at::Tensor& attention_mask,
                          const GenerationOptions& options) {
  GenerationInputs in;
  in.input_ids = input_ids;
  in.attention_mask = attention_mask;
  return generate(model, in, options);
}

at::Tensor continuation_log_likelihood(CausalLMImpl& model,
                                       const at::Tensor& input_ids,
                                       const at::Tensor& attention_mask,
                                       const at::Tensor& target_mask) {
  if (input_ids.dim() != 2 || target_mask.sizes() != input_ids.sizes() ||
      (attention_mask.defined() &&
       attention_mask.sizes() != input_ids.sizes())) {
    throw std::invalid_argument(error_message(
        "continuation_log_likelihood",
        "input_ids [B, T] with target_mask (and attention_mask) of the same "
        "shape",
        "input_ids " + shape_string(input_ids) + ", target_mask " +
            shape_string(target_mask) +
            (attention_mask.defined()
                 ? ", attention_mask " + shape_string(attention_mask)
                 : "")));
  }
  const at::Tensor mask = attention_mask.defined()
                              ? attention_mask.to(at::kLong)
                              : at::ones_like(input_ids, at::kLong);
  DecoderInputs in;
  in.input_ids = input_ids;
  in.attention_mask = mask;
  // Padding-aware positions, so a left-padded row scores as it would alone.
  in.position_ids = positions_from_mask(mask);
  const at::Tensor logits = model.forward(in).to(at::kFloat);  // [B, T, V]
  const int64_t length = input_ids.size(1);
  const at::Tensor log_probs = logits.narrow(1, 0, length - 1).log_softmax(-1);
  const at::Tensor targets = input_ids.narrow(1, 1, length - 1);
  const at::Tensor picked =
      log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1);  // [B, T-1]
  const at::Tensor weights =
      target_mask.narrow(1, 1, length - 1).to(picked.device(), at::kFloat);
  return (picked * weights).sum(-1);
}

}  // namespace peftcpp::models
