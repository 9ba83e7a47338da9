#include "cli/predict_decoder.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include "common/error.h"
#include "common/progress.h"
#include "models/decoder/load_decoder.h"
#include "models/encoder/load_encoder.h"
#include "peft/peft_model.h"

namespace peftcpp::cli {

namespace {

// The inputs of rows [begin, end), right-padded with `pad`.
models::DecoderInputs batch_inputs(const std::vector<data::Encoding>& encs,
                                   size_t begin, size_t end, int64_t pad,
                                   const c10::Device& device) {
  size_t length = 0;
  for (size_t i = begin; i < end; ++i)
    length = std::max(length, encs[i].ids.size());
  const auto rows = static_cast<int64_t>(end - begin);
  at::Tensor ids =
      at::full({rows, static_cast<int64_t>(length)}, pad, at::kLong);
  at::Tensor mask = at::zeros({rows, static_cast<int64_t>(length)}, at::kLong);
  for (size_t i = begin; i < end; ++i) {
    const auto n = static_cast<int64_t>(encs[i].ids.size());
    const auto r = static_cast<int64_t>(i - begin);
    ids[r].slice(0, 0, n).copy_(at::tensor(encs[i].ids, at::kLong));
    mask[r].slice(0, 0, n).fill_(1);
  }
  models::DecoderInputs in;
  in.input_ids = ids.to(device);
  in.attention_mask = mask.to(device);
  return in;
}

}  // namespace

std::vector<std::pair<std::string, at::Tensor>> predict_decoder(
    const DecoderPredictRequest& r,
    std::map<std::string, std::string>& metadata) {
  torch::NoGradGuard no_grad;
  models::LoadDecoderOptions load;
  load.device = c10::Device(r.device);
  load.dtype = models::parse_dtype(r.dtype);
  models::LoadedDecoder loaded = models::load_decoder(r.model, load);
  if (const auto body = loaded.missing_body_keys(); !body.empty()) {
    throw std::runtime_error(error_message(
        "predict --model " + r.model, "every decoder weight in the checkpoint",
        std::to_string(body.size()) + " missing: " + join_names(body),
        "does config.json's model_type match the checkpoint?"));
  }
  const bool classifier = loaded.has_classifier();
  const models::DecoderConfig config = loaded.config;
  // A classifier reads the last non-pad token, so batching needs a pad id;
  // without one, inputs go one at a time (transformers refuses batches).
  const std::optional<int64_t> pad = config.pad_token_id;
  const int64_t batch_size = classifier && !pad.has_value() ? 1 : r.batch_size;
  peft::PeftModel adapted{nullptr};
  if (r.load_adapters) {
    adapted = peft::PeftModel(std::move(loaded));
    r.load_adapters(*adapted);
    adapted->to(load.device);
    adapted->eval();
  }
  const auto forward = [&](const models::DecoderInputs& in) {
    if (!adapted.is_empty())
      return adapted->forward(in);
    return classifier ? loaded.classifier->forward(in)
                      : loaded.causal_lm->forward(in);
  };

  std::vector<at::Tensor> logits, likelihood, last_logits, counts;
  const size_t n = r.encodings.size();
  ProgressBar bar("predict", static_cast<int64_t>(n), "inputs");
  for (size_t begin = 0; begin < n; begin += batch_size) {
    const size_t end = std::min(n, begin + static_cast<size_t>(batch_size));
    const models::DecoderInputs in =
        batch_inputs(r.encodings, begin, end, pad.value_or(0), load.device);
    at::Tensor out = forward(in).to(at::kCPU, at::kFloat);
    if (classifier) {
      logits.push_back(out);
    } else {
      // Prompt tuning puts virtual tokens in front: keep the real ones.
      out = out.slice(1, out.size(1) - in.input_ids.size(1));
      const at::Tensor ids = in.input_ids.cpu();
      const at::Tensor mask = in.attention_mask.cpu();
      const at::Tensor lengths = mask.sum(1);
      const at::Tensor log_probs = out.slice(1, 0, -1).log_softmax(-1);
      const at::Tensor picked =
          log_probs.gather(-1, ids.slice(1, 1).unsqueeze(-1)).squeeze(-1);
      likelihood.push_back((picked * mask.slice(1, 1).to(at::kFloat)).sum(1));
      const at::Tensor rows = at::arange(out.size(0), at::kLong);
      last_logits.push_back(out.index({rows, lengths - 1}));
      counts.push_back(lengths);
    }
    bar.advance(static_cast<int64_t>(end - begin));
  }
  bar.finish();
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  if (classifier) {
    tensors.emplace_back("logits", at::cat(logits));
    std::string labels;
    for (const auto& l : config.id2label)
      labels += (labels.empty() ? "" : ",") + l;
    metadata["labels"] = labels;
  } else {
    tensors.emplace_back("log_likelihood", at::cat(likelihood));
    tensors.emplace_back("num_tokens", at::cat(counts));
    tensors.emplace_back("last_token_logits", at::cat(last_logits));
  }
  return tensors;
}

}  // namespace peftcpp::cli
