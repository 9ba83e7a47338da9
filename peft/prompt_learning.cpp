#include "peft/prompt_learning.h"

#include <torch/torch.h>

#include <stdexcept>
#include <utility>
#include <vector>

#include "common/error.h"
#include "peft/prompt_tuning_text.h"

namespace peftcpp::peft {

namespace {

/// The one tensor a saved prompt adapter holds (PEFT writes it without the
/// "base_model.model." prefix).
constexpr const char* kSavedKey = "prompt_embeddings";

std::string shape_of(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i)
    s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

std::string quoted(const std::string& s) {
  return "\"" + s + "\"";
}

// --- the modules, named as PEFT names them -----------------------------------

/// What the three prompt encoders share: PEFT's BasePromptEncoder, whose
/// `embedding` table is what a saved adapter holds in inference mode.
class PromptModuleImpl : public torch::nn::Module {
 public:
  /// Virtual token ids [B, P] -> [B, P, features].
  virtual at::Tensor forward(const at::Tensor& indices) = 0;
  /// Whether forward runs a trained encoder over the table (then the table
  /// is the encoder's input, and what PEFT saves is the encoder's output).
  virtual bool has_encoder() const = 0;

  torch::nn::Embedding embedding{nullptr};
};

/// peft.tuners.prompt_tuning.PromptEmbedding: the table itself.
class PromptEmbeddingImpl : public PromptModuleImpl {
 public:
  PromptEmbeddingImpl(int64_t num_tokens, int64_t token_dim) {
    embedding = register_module("embedding",
                                torch::nn::Embedding(num_tokens, token_dim));
  }
  at::Tensor forward(const at::Tensor& indices) override {
    return embedding(indices);
  }
  bool has_encoder() const override { return false; }
};

/// peft.tuners.p_tuning.PromptEncoder with the MLP reparameterization:
/// mlp_head = Linear(D, E), ReLU, Linear(E, E), ReLU, Linear(E, D). Without
/// `with_head` (inference mode) only the table [P, D] exists. PEFT applies
/// no dropout in the MLP (encoder_dropout is the LSTM's).
class PromptEncoderImpl : public PromptModuleImpl {
 public:
  PromptEncoderImpl(int64_t num_tokens, int64_t token_dim,
                    int64_t encoder_hidden_size, bool with_head) {
    embedding = register_module("embedding",
                                torch::nn::Embedding(num_tokens, token_dim));
    if (with_head) {
      mlp_head = register_module(
          "mlp_head",
          torch::nn::Sequential(
              torch::nn::Linear(token_dim, encoder_hidden_size),
              torch::nn::ReLU(),
              torch::nn::Linear(encoder_hidden_size, encoder_hidden_size),
              torch::nn::ReLU(),
              torch::nn::Linear(encoder_hidden_size, token_dim)));
    }
  }
  at::Tensor forward(const at::Tensor& indices) override {
    at::Tensor x = embedding(indices);
    return mlp_head ? mlp_head->forward(x) : x;
  }
  bool has_encoder() const override { return !mlp_head.is_empty(); }

  torch::nn::Sequential mlp_head{nullptr};
};

/// peft.tuners.prefix_tuning.PrefixEncoder: a table [P, L * 2 * D], or with
/// the projection (training only) a table [P, D] and
/// transform = Linear(D, E), Tanh, Linear(E, L * 2 * D).
class PrefixEncoderImpl : public PromptModuleImpl {
 public:
  PrefixEncoderImpl(int64_t num_tokens, int64_t token_dim, int64_t num_layers,
                    int64_t encoder_hidden_size, bool with_projection) {
    const int64_t flat = num_layers * 2 * token_dim;
    if (with_projection) {
      embedding = register_module("embedding",
                                  torch::nn::Embedding(num_tokens, token_dim));
      transform = register_module(
          "transform",
          torch::nn::Sequential(
              torch::nn::Linear(token_dim, encoder_hidden_size),
              torch::nn::Tanh(), torch::nn::Linear(encoder_hidden_size, flat)));
    } else {
      embedding =
          register_module("embedding", torch::nn::Embedding(num_tokens, flat));
    }
  }
  at::Tensor forward(const at::Tensor& indices) override {
    at::Tensor x = embedding(indices);
    return transform ? transform->forward(x) : x;
  }
  bool has_encoder() const override { return !transform.is_empty(); }

  torch::nn::Sequential transform{nullptr};
};

// --- the adapter -------------------------------------------------------------

enum class Method { kPromptTuning, kPTuning, kPrefixTuning };

const char* method_name(Method m) {
  switch (m) {
    case Method::kPromptTuning:
      return "prompt tuning";
    case Method::kPTuning:
      return "P-tuning";
    case Method::kPrefixTuning:
      return "prefix tuning";
  }
  return "?";
}

/// The dimensions get_prompt works with (from the completed config).
struct PromptShape {
  int64_t num_virtual_tokens = 0;
  int64_t token_dim = 0;
  int64_t num_layers = 0;
  int64_t num_attention_heads = 0;
};

class PromptLearningAdapter final : public Adapter {
 public:
  PromptLearningAdapter(std::string name, Method method,
                        std::shared_ptr<PromptModuleImpl> module,
                        const AdapterContext& ctx, PromptShape shape)
      : Adapter(std::move(name)),
        method_(method),
        module_(std::move(module)),
        dict_(ctx.prompt_encoders),
        word_embeddings_(ctx.word_embeddings),
        shape_(shape),
        inference_mode_(ctx.inference_mode) {}

  NamedTensors named_parameters() const override {
    NamedTensors out;
    const std::string prefix = "prompt_encoder." + name() + ".";
    for (const auto& item : module_->named_parameters(/*recurse=*/true))
      out.emplace_back(prefix + item.key(), item.value());
    return out;
  }

  void set_enabled(bool enabled) override { enabled_ = enabled; }

  void remove() override {
    // ModuleDict::pop keeps the child registered (LibTorch mirrors an old
    // Python behaviour), so the parameters would stay in the model's
    // named_parameters() and the name could not be used again.
    if (dict_->contains(name()) && (*dict_)[name()].get() == module_.get()) {
      dict_->pop(name());
      dict_->unregister_module(name());
    }
    enabled_ = false;
  }

  TensorMap state_dict_to_save(const std::string& /*prefix*/) const override {
    at::NoGradGuard no_grad;
    // PEFT's get_prompt_embedding_to_save: prompt_encoder(arange(P))[0], i.e.
    // the encoder's output where one runs; the table in inference mode.
    return {{kSavedKey, saved_table().detach().to(at::kCPU).clone()}};
  }

  std::vector<std::string> load_saved(const TensorMap& saved,
                                      const std::string& /*prefix*/,
                                      const std::string& where) override {
    if (encoder_runs()) {
      // PEFT refuses to load a prompt adapter as trainable ("Cannot set a
      // prompt learning adapter to trainable when loading pretrained
      // adapter"): the saved tensor is the encoder's output, from which the
      // encoder's own parameters cannot be recovered.
      throw std::invalid_argument(error_message(
          "load_adapter",
          "a table to load saved prompt_embeddings into (an adapter built "
          "for inference, or prompt tuning / prefix tuning without "
          "projection)",
          std::string(method_name(method_)) + " adapter " + quoted(name()) +
              " with its training encoder, for " + where,
          "the saved tensor is the encoder's output: load the adapter for "
          "inference (not trainable), as PEFT does"));
    }
    const auto it = saved.find(kSavedKey);
    if (it == saved.end()) {
      throw std::runtime_error(error_message(
          "load_adapter", "tensor " + quoted(kSavedKey) + " in " + where,
          "none"));
    }
    const at::Tensor& value = it->second;
    const at::Tensor& table = module_->embedding->weight;
    if (value.sizes() != table.sizes()) {
      throw std::runtime_error(error_message(
          "load_adapter",
          "tensor " + quoted(kSavedKey) + " of shape " + shape_of(table) +
              " (" + table_layout() + ")",
          shape_of(value) + " in " + where,
          "maybe wrong base model? The adapter does not fit this model's "
          "dimensions or its num_virtual_tokens"));
    }
    if (!value.is_floating_point()) {
      throw std::runtime_error(error_message(
          "load_adapter",
          "floating-point tensor " + quoted(kSavedKey) + " in " + where,
          std::string(c10::toString(value.scalar_type()))));
    }
    at::NoGradGuard no_grad;
    module_->embedding->weight.copy_(value);
    return {kSavedKey};
  }

  at::Tensor virtual_token_embeddings(int64_t batch) const override {
    if (method_ == Method::kPrefixTuning || !enabled_)
      return {};
    check_batch(batch, "virtual_token_embeddings");
    // PEFT's get_prompt: the table in inference mode, else the encoder run
    // once on one row of token ids [1, P] and repeated over the batch.
    at::Tensor prompts = encoder_runs()
                             ? module_->forward(token_ids().unsqueeze(0))
                             : module_->embedding->weight;
    return prompts.repeat({batch, 1, 1}).to(output_dtype());  // [B, P, D]
  }

  std::vector<models::KeyValuePrefix> key_value_prefix(
      int64_t batch) const override {
    if (method_ != Method::kPrefixTuning || !enabled_)
      return {};
    check_batch(batch, "key_value_prefix");
    const int64_t P = shape_.num_virtual_tokens;
    const int64_t L = shape_.num_layers;
    const int64_t H = shape_.num_attention_heads;
    // PEFT's get_prompt for PREFIX_TUNING: [B, P, L * 2 * D] (the table
    // repeated in inference mode, else the encoder over [B, P] ids) ->
    // view [B, P, L * 2, H, D / H] -> permute [L * 2, B, H, P, D / H] ->
    // pairs: layer l's key is entry 2 l, its value entry 2 l + 1.
    at::Tensor flat =
        encoder_runs()
            ? module_->forward(token_ids().unsqueeze(0).expand({batch, P}))
            : module_->embedding->weight.repeat({batch, 1, 1});
    const at::Tensor kv = flat.to(output_dtype())
                              .view({batch, P, L * 2, H, shape_.token_dim / H})
                              .permute({2, 0, 3, 1, 4});
    std::vector<models::KeyValuePrefix> out;
    out.reserve(static_cast<size_t>(L));
    for (int64_t l = 0; l < L; ++l)
      out.push_back({kv[2 * l], kv[2 * l + 1]});  // each [B, H, P, D / H]
    return out;
  }

  int64_t num_virtual_tokens() const override {
    return shape_.num_virtual_tokens;
  }

 private:
  /// Whether the prompts come out of a trained encoder rather than the table
  /// (P-tuning and prefix projection while training).
  bool encoder_runs() const {
    return !inference_mode_ && module_->has_encoder();
  }

  /// PEFT's prompt_tokens: arange(P) on the table's device.
  at::Tensor token_ids() const {
    return torch::arange(shape_.num_virtual_tokens,
                         torch::TensorOptions().dtype(at::kLong).device(
                             module_->embedding->weight.device()));
  }

  /// What PEFT saves: the encoder's output [P, D or L * 2 * D] where one
  /// runs, the table otherwise.
  at::Tensor saved_table() const {
    if (!encoder_runs())
      return module_->embedding->weight;
    return module_->forward(token_ids().unsqueeze(0))[0];
  }

  /// The base model's dtype (PEFT casts prompts to the input embeddings'
  /// dtype and prefixes to the model's dtype); the tables stay float32.
  at::ScalarType output_dtype() const {
    return word_embeddings_ ? word_embeddings_->weight.scalar_type()
                            : module_->embedding->weight.scalar_type();
  }

  std::string table_layout() const {
    const std::string P = std::to_string(shape_.num_virtual_tokens);
    if (method_ == Method::kPrefixTuning) {
      return "num_virtual_tokens " + P + " x num_layers " +
             std::to_string(shape_.num_layers) + " * 2 * token_dim " +
             std::to_string(shape_.token_dim);
    }
    return "num_virtual_tokens " + P + " x token_dim " +
           std::to_string(shape_.token_dim);
  }

  static void check_batch(int64_t batch, const char* where) {
    if (batch < 1) {
      throw std::invalid_argument(
          error_message(where, "batch >= 1", std::to_string(batch)));
    }
  }

  Method method_;
  std::shared_ptr<PromptModuleImpl> module_;
  torch::nn::ModuleDict dict_;
  torch::nn::Embedding word_embeddings_;
  PromptShape shape_;
  bool inference_mode_;
  bool enabled_ = false;
};

// --- config completion and checks --------------------------------------------

/// PEFT's _prepare_prompt_learning_config: unset dimensions from the model.
void complete(PromptLearningConfig& c, const ModelInfo& info) {
  if (c.token_dim == 0)
    c.token_dim = info.hidden_size;
  if (c.num_layers == 0)
    c.num_layers = info.num_layers;
  if (c.num_attention_heads == 0)
    c.num_attention_heads = info.num_attention_heads;
}

/// What every prompt method needs of its options and context. `token_dim`
/// is the width the model needs, described by `token_dim_name` (the hidden
/// size, or the key/value width of a grouped-query prefix).
void check_common(const char* where, const AdapterContext& ctx,
                  const std::string& name, const PromptLearningConfig& c,
                  int64_t token_dim,
                  const char* token_dim_name = "hidden size") {
  if (!ctx.prompt_encoders) {
    throw std::invalid_argument(error_message(
        where, "a context with prompt_encoders (the model's ModuleDict)",
        "none"));
  }
  if (ctx.prompt_encoders->contains(name)) {
    throw std::invalid_argument(error_message(
        where, "a new adapter name", quoted(name) + " (already in use)"));
  }
  if (c.num_virtual_tokens < 1) {
    throw std::invalid_argument(
        error_message(where, "num_virtual_tokens >= 1",
                      std::to_string(c.num_virtual_tokens)));
  }
  if (c.num_transformer_submodules != 1) {
    throw std::invalid_argument(error_message(
        where, "num_transformer_submodules 1 (an encoder model)",
        std::to_string(c.num_transformer_submodules),
        "2 is for encoder-decoder models, which peftcpp does not have"));
  }
  if (c.token_dim != token_dim || c.token_dim < 1) {
    throw std::invalid_argument(
        error_message(where,
                      std::string("token_dim equal to the model's ") +
                          token_dim_name + " " + std::to_string(token_dim),
                      std::to_string(c.token_dim),
                      "leave token_dim 0 to take it from the model"));
  }
}

/// The device the model lives on (PEFT moves the prompt encoder there).
torch::Device model_device(const AdapterContext& ctx) {
  if (ctx.word_embeddings)
    return ctx.word_embeddings->weight.device();
  if (ctx.root) {
    const auto params = ctx.root->parameters();
    if (!params.empty())
      return params.front().device();
  }
  return torch::kCPU;
}

std::unique_ptr<Adapter> install(const AdapterContext& ctx,
                                 const std::string& name, Method method,
                                 std::shared_ptr<PromptModuleImpl> module,
                                 const PromptLearningConfig& c) {
  module->to(model_device(ctx));
  torch::nn::ModuleDict dict = ctx.prompt_encoders;  // a non-const holder
  dict->update({{name, module}});
  return std::make_unique<PromptLearningAdapter>(
      name, method, std::move(module), ctx,
      PromptShape{c.num_virtual_tokens, c.token_dim, c.num_layers,
                  c.num_attention_heads});
}

// --- prompt tuning initialisation --------------------------------------------

/// The input embedding table's rows for prompt tuning's TEXT / SAMPLE_VOCAB.
const at::Tensor& vocabulary_table(const AdapterContext& ctx,
                                   const char* init) {
  if (!ctx.word_embeddings) {
    throw std::invalid_argument(error_message(
        "add_prompt_tuning",
        std::string("the model's word embeddings for prompt_tuning_init ") +
            init,
        "none"));
  }
  return ctx.word_embeddings->weight;
}

/// Copies the given vocabulary rows into the prompt table (detached, as
/// float32 like PEFT's `.to(torch.float32)`).
void copy_rows(torch::nn::Embedding& table, const at::Tensor& vocabulary,
               const at::Tensor& ids) {
  at::NoGradGuard no_grad;
  const at::Tensor rows =
      vocabulary.index_select(0, ids.to(vocabulary.device()));  // [P, D]
  table->weight.copy_(rows.to(at::kFloat));
}

}  // namespace

std::unique_ptr<Adapter> add_prompt_tuning(const AdapterContext& ctx,
                                           const std::string& name,
                                           PromptTuningConfig& config) {
  constexpr const char* where = "add_prompt_tuning";
  complete(config, ctx.info);
  check_common(where, ctx, name, config, ctx.info.hidden_size);
  const int64_t total =
      config.num_virtual_tokens * config.num_transformer_submodules;
  // nn.Embedding's N(0, 1) first, as PEFT (the draws below come after it).
  auto module = std::make_shared<PromptEmbeddingImpl>(total, config.token_dim);
  // In inference mode PEFT skips the init: the saved table replaces it.
  if (!ctx.inference_mode) {
    switch (config.prompt_tuning_init) {
      case PromptTuningInit::kRandom:
        break;
      case PromptTuningInit::kSampleVocab: {
        const at::Tensor& vocab = vocabulary_table(ctx, "SAMPLE_VOCAB");
        const at::Tensor ids =
            torch::randint(0, vocab.size(0), {total}, torch::dtype(at::kLong));
        copy_rows(module->embedding, vocab, ids);
        break;
      }
      case PromptTuningInit::kText: {
        const at::Tensor& vocab = vocabulary_table(ctx, "TEXT");
        const auto ids = prompt_init_text_ids(config, total, vocab.size(0));
        copy_rows(module->embedding, vocab,
                  torch::tensor(ids, torch::dtype(at::kLong)));
        break;
      }
    }
  }
  return install(ctx, name, Method::kPromptTuning, std::move(module), config);
}

std::unique_ptr<Adapter> add_p_tuning(const AdapterContext& ctx,
                                      const std::string& name,
                                      PromptEncoderConfig& config) {
  constexpr const char* where = "add_p_tuning";
  complete(config, ctx.info);
  if (config.encoder_hidden_size == 0)
    config.encoder_hidden_size = config.token_dim;
  check_common(where, ctx, name, config, ctx.info.hidden_size);
  const std::string& type = config.encoder_reparameterization_type;
  if (type == "LSTM" && !ctx.inference_mode) {
    // A saved LSTM adapter still runs: inference needs only its table.
    throw std::invalid_argument(error_message(
        where, "encoder_reparameterization_type \"MLP\"", "\"LSTM\"",
        "the LSTM encoder is not supported yet; use \"MLP\" (PEFT's "
        "recommended default)"));
  }
  if (type != "MLP" && type != "LSTM") {
    throw std::invalid_argument(
        error_message(where, "encoder_reparameterization_type \"MLP\"",
                      quoted(type), "PEFT knows \"MLP\" and \"LSTM\""));
  }
  if (config.encoder_hidden_size < 1) {
    throw std::invalid_argument(
        error_message(where, "encoder_hidden_size >= 1 (0: token_dim)",
                      std::to_string(config.encoder_hidden_size)));
  }
  // PEFT ignores encoder_num_layers for the MLP (exactly 3 Linear layers)
  // and uses encoder_dropout only in the LSTM.
  const int64_t total =
      config.num_virtual_tokens * config.num_transformer_submodules;
  auto module = std::make_shared<PromptEncoderImpl>(
      total, config.token_dim, config.encoder_hidden_size,
      /*with_head=*/!ctx.inference_mode);
  return install(ctx, name, Method::kPTuning, std::move(module), config);
}

std::unique_ptr<Adapter> add_prefix_tuning(const AdapterContext& ctx,
                                           const std::string& name,
                                           PrefixTuningConfig& config) {
  constexpr const char* where = "add_prefix_tuning";
  complete(config, ctx.info);
  // PEFT's grouped-query rule: a model with num_key_value_heads gets a
  // prefix of its key/value heads, whatever the config said.
  const int64_t kv_heads = ctx.info.num_key_value_heads;
  if (kv_heads > 0) {
    config.num_attention_heads = kv_heads;
    config.token_dim = kv_heads * ctx.info.head_dim;
  }
  const int64_t heads = kv_heads > 0 ? kv_heads : ctx.info.num_attention_heads;
  if (config.encoder_hidden_size == 0)
    config.encoder_hidden_size = config.token_dim;
  if (kv_heads > 0) {
    check_common(where, ctx, name, config, config.token_dim,
                 "key/value width (num_key_value_heads x head_dim)");
  } else {
    check_common(where, ctx, name, config, ctx.info.hidden_size);
  }
  if (config.num_layers != ctx.info.num_layers) {
    throw std::invalid_argument(
        error_message(where,
                      "num_layers equal to the model's " +
                          std::to_string(ctx.info.num_layers) +
                          " layers (one key/value prefix per layer)",
                      std::to_string(config.num_layers),
                      "leave num_layers 0 to take it from the model"));
  }
  if (config.num_attention_heads < 1 ||
      config.token_dim % config.num_attention_heads != 0) {
    throw std::invalid_argument(
        error_message(where,
                      "num_attention_heads dividing token_dim " +
                          std::to_string(config.token_dim),
                      std::to_string(config.num_attention_heads)));
  }
  if (config.num_attention_heads != heads) {
    throw std::invalid_argument(error_message(
        where,
        "num_attention_heads equal to the model's " + std::to_string(heads),
        std::to_string(config.num_attention_heads),
        "leave num_attention_heads 0 to take it from the model"));
  }
  const bool projection = config.prefix_projection && !ctx.inference_mode;
  if (projection && config.encoder_hidden_size < 1) {
    throw std::invalid_argument(
        error_message(where, "encoder_hidden_size >= 1 (0: token_dim)",
                      std::to_string(config.encoder_hidden_size)));
  }
  auto module = std::make_shared<PrefixEncoderImpl>(
      config.num_virtual_tokens, config.token_dim, config.num_layers,
      config.encoder_hidden_size, /*with_projection=*/projection);
  return install(ctx, name, Method::kPrefixTuning, std::move(module), config);
}

}  // namespace peftcpp::peft
