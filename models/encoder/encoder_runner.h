#pragma once
// Batched inference over many tokenized inputs: sorts by length so each
// batch pads only to its own longest row (padding is wasted compute),
// runs the model under inference mode, and returns the outputs in the
// original order.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "data/tokenizer/encoding.h"
#include "models/encoder/load_encoder.h"

namespace peftcpp::models {

/// How to run.
struct RunEncoderOptions {
  int64_t batch_size = 32;
  /// Also return last_hidden_state [N, T, H] + attention_mask [N, T]
  /// (large: N * T * H floats).
  bool with_hidden_states = true;
  /// Draw a progress bar on stderr.
  bool show_progress = false;
  /// Runs the encoder instead of model.base() (a model with adapters). For
  /// a bare encoder its last_hidden_state must cover exactly the batch's T
  /// tokens (virtual tokens removed); with a head it is passed to the head
  /// as is.
  std::function<EncoderOutput(const EncoderInputs&)> encode;
};

/// What comes back; tensors are float32 on the CPU, rows in input order.
struct EncoderRunOutputs {
  at::Tensor logits;              ///< [N, num_labels], models with a head
  at::Tensor sentence_embedding;  ///< [N, H] mean over real tokens, no head
  at::Tensor pooler_output;       ///< [N, H] when the encoder has a pooler
  at::Tensor last_hidden_state;   ///< [N, T_max, H] zero-padded
  at::Tensor attention_mask;      ///< [N, T_max] int64
  int64_t tokens = 0;             ///< real tokens processed
};

/// Runs `model` over `encodings` (ids and type ids; any padding in them is
/// ignored, lengths come from attention_mask when set, else ids).
/// Throws std::invalid_argument for an empty input list or an input longer
/// than the model accepts (naming the input's index).
EncoderRunOutputs run_encoder(LoadedEncoder& model,
                              const std::vector<data::Encoding>& encodings,
                              const RunEncoderOptions& options = {});

}  // namespace peftcpp::models
