#include "models/encoder/encoder_runner.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <numeric>
#include <optional>
#include <stdexcept>

#include "common/error.h"
#include "common/progress.h"

namespace peftcpp::models {

namespace {

int64_t real_length(const data::Encoding& e) {
  if (e.attention_mask.empty())
    return static_cast<int64_t>(e.ids.size());
  return std::accumulate(e.attention_mask.begin(), e.attention_mask.end(),
                         int64_t{0});
}

// Out-of-range ids would fail deep inside an embedding lookup ("index out
// of range in self"; on CUDA a device-side assert that poisons the context),
// so they are checked here, where the input can still be named.
void check_ids(const data::Encoding& e, int64_t index,
               const EncoderConfig& config) {
  const auto check = [&](const std::vector<int64_t>& ids, int64_t limit,
                         const char* what, const char* field) {
    for (size_t k = 0; k < ids.size(); ++k) {
      if (ids[k] < 0 || ids[k] >= limit) {
        throw std::invalid_argument(error_message(
            "run_encoder",
            std::string(what) + " in [0, " + std::to_string(limit) + ")",
            "input " + std::to_string(index) + " position " +
                std::to_string(k) + " with " + std::to_string(ids[k]),
            std::string("is this input for this model? (config ") + field +
                " " + std::to_string(limit) + ")"));
      }
    }
  };
  check(e.ids, config.vocab_size, "token ids", "vocab_size");
  check(e.type_ids, config.type_vocab_size, "token type ids",
        "type_vocab_size");
}

// Puts a module in eval mode for a scope and restores its mode after:
// predictions never see dropout, whatever mode the caller left it in.
class EvalModeGuard {
 public:
  explicit EvalModeGuard(torch::nn::Module& m)
      : m_(m), was_training_(m.is_training()) {
    m_.eval();
  }
  ~EvalModeGuard() { m_.train(was_training_); }
  EvalModeGuard(const EvalModeGuard&) = delete;
  EvalModeGuard& operator=(const EvalModeGuard&) = delete;

 private:
  torch::nn::Module& m_;
  bool was_training_;
};

}  // namespace

EncoderRunOutputs run_encoder(LoadedEncoder& model,
                              const std::vector<data::Encoding>& encodings,
                              const RunEncoderOptions& options) {
  const int64_t n = static_cast<int64_t>(encodings.size());
  if (n == 0) {
    throw std::invalid_argument(
        error_message("run_encoder", "at least one input", "none"));
  }
  if (options.batch_size < 1) {
    throw std::invalid_argument(error_message(
        "run_encoder", "batch_size >= 1", std::to_string(options.batch_size)));
  }
  const EncoderConfig& config = model.config;
  std::vector<int64_t> lengths(n);
  for (int64_t i = 0; i < n; ++i) {
    check_ids(encodings[i], i, config);
    lengths[i] = real_length(encodings[i]);
    if (lengths[i] > config.max_sequence_length()) {
      throw std::invalid_argument(error_message(
          "run_encoder",
          "inputs of at most " + std::to_string(config.max_sequence_length()) +
              " tokens (the model's positions)",
          "input " + std::to_string(i) + " with " + std::to_string(lengths[i]) +
              " tokens",
          "truncate with --max-length " +
              std::to_string(config.max_sequence_length())));
    }
    if (lengths[i] == 0) {
      throw std::invalid_argument(
          error_message("run_encoder", "at least one token per input",
                        "input " + std::to_string(i) + " with none"));
    }
  }
  // Longest first: the first batch shows the peak memory straight away.
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return lengths[a] > lengths[b];
  });

  const int64_t max_len = lengths[order.front()];
  const c10::Device device = model.module().parameters().front().device();
  const bool head = model.has_classifier();
  const int64_t hidden = config.hidden_size;
  EncoderRunOutputs out;
  auto f32 = at::TensorOptions().dtype(at::kFloat);
  if (head)
    out.logits = at::empty({n, config.num_labels()}, f32);
  else
    out.sentence_embedding = at::empty({n, hidden}, f32);
  if (!head && model.encoder->has_pooler())
    out.pooler_output = at::empty({n, hidden}, f32);
  if (options.with_hidden_states) {
    out.last_hidden_state = at::zeros({n, max_len, hidden}, f32);
    out.attention_mask = at::zeros({n, max_len}, at::kLong);
  }

  std::optional<ProgressBar> bar;
  if (options.show_progress)
    bar.emplace("predict", n, "inputs");
  const EvalModeGuard eval_mode(model.module());
  c10::InferenceMode inference;
  for (int64_t start = 0; start < n; start += options.batch_size) {
    const int64_t end = std::min(n, start + options.batch_size);
    const int64_t b = end - start;
    const int64_t t = lengths[order[start]];  // sorted: first is longest
    at::Tensor ids = at::full({b, t}, config.pad_token_id, at::kLong);
    at::Tensor types = at::zeros({b, t}, at::kLong);
    at::Tensor mask = at::zeros({b, t}, at::kLong);
    auto ids_a = ids.accessor<int64_t, 2>();
    auto types_a = types.accessor<int64_t, 2>();
    auto mask_a = mask.accessor<int64_t, 2>();
    for (int64_t r = 0; r < b; ++r) {
      const data::Encoding& e = encodings[order[start + r]];
      const int64_t len = lengths[order[start + r]];
      // Real tokens are those the mask keeps, in order (right or left padding).
      int64_t col = 0;
      for (size_t k = 0; k < e.ids.size() && col < len; ++k) {
        if (!e.attention_mask.empty() && e.attention_mask[k] == 0)
          continue;
        ids_a[r][col] = e.ids[k];
        types_a[r][col] = e.type_ids.empty() ? 0 : e.type_ids[k];
        mask_a[r][col] = 1;
        ++col;
      }
    }
    EncoderInputs in;
    in.input_ids = ids.to(device);
    in.token_type_ids = types.to(device);
    in.attention_mask = mask.to(device);
    const at::Tensor rows = at::tensor(
        std::vector<int64_t>(order.begin() + start, order.begin() + end));
    EncoderOutput enc =
        options.encode ? options.encode(in) : model.base()->forward(in);
    if (head) {
      out.logits.index_copy_(
          0, rows, model.classifier->head(enc).to(at::kCPU, at::kFloat));
    } else {
      out.sentence_embedding.index_copy_(
          0, rows,
          mean_pool(enc.last_hidden_state, in.attention_mask)
              .to(at::kCPU, at::kFloat));
      if (out.pooler_output.defined()) {
        out.pooler_output.index_copy_(
            0, rows, enc.pooler_output.to(at::kCPU, at::kFloat));
      }
    }
    if (options.with_hidden_states) {
      out.last_hidden_state.slice(1, 0, t).index_copy_(
          0, rows,
          (enc.last_hidden_state * in.attention_mask.unsqueeze(-1))
              .to(at::kCPU, at::kFloat));
      out.attention_mask.slice(1, 0, t).index_copy_(0, rows, mask);
    }
    out.tokens += mask.sum().item<int64_t>();
    if (bar)
      bar->advance(b);
  }
  if (bar)
    bar->finish();
  return out;
}

}  // namespace peftcpp::models
