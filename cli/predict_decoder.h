#pragma once
// `peftcpp predict` on a decoder-only model (folder or GGUF): a
// ...ForSequenceClassification gives logits [N, num_labels]; a causal LM
// gives, per input, the log-likelihood of its tokens (each given the ones
// before) and the logits after its last token.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "data/tokenizer/encoding.h"

namespace peftcpp::peft {
class PeftModelImpl;
}

namespace peftcpp::cli {

/// What predict hands the decoder path.
struct DecoderPredictRequest {
  std::string model;
  std::vector<data::Encoding> encodings;
  std::string device = "cpu";
  std::string dtype = "float32";
  int64_t batch_size = 32;
  /// Loads and activates the --adapter folders; empty: no adapters.
  std::function<void(peft::PeftModelImpl&)> load_adapters;
};

/// Runs the model over the encodings; returns the tensors to save (by name)
/// and fills `metadata` (labels of a classifier).
std::vector<std::pair<std::string, at::Tensor>> predict_decoder(
    const DecoderPredictRequest& request,
    std::map<std::string, std::string>& metadata);

}  // namespace peftcpp::cli
