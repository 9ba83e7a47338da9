#include "peft/peft_model.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cstdio>
#include <set>
#include <stdexcept>
#include <unordered_set>

#include "common/error.h"
#include "peft/bottleneck.h"
#include "peft/ia3.h"
#include "peft/lora.h"
#include "peft/modules_to_save.h"
#include "peft/peft_model_entry.h"
#include "peft/prompt_learning.h"
#include "peft/wrapped_model.h"

namespace peftcpp::peft {

namespace {

void check_adapter_name(const std::string& name) {
  if (name.empty() || name.find('.') != std::string::npos) {
    throw std::invalid_argument(error_message(
        "add_adapter", "a non-empty adapter name without '.'",
        "\"" + name + "\"", "the name becomes part of parameter names"));
  }
}

std::string with_thousands(int64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  const int start = static_cast<int>(digits.size()) % 3;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (static_cast<int>(i) - start) % 3 == 0)
      out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace

// --- disabled scope ---------------------------------------------------------

AdaptersDisabled::AdaptersDisabled(PeftModelImpl& model) : model_(model) {
  if (model_.merged()) {
    merged_adapter_ = model_.active_;
    model_.unmerge_adapter();
  }
  if (model_.disabled_++ == 0)
    model_.set_all_enabled(false);
}

AdaptersDisabled::~AdaptersDisabled() {
  if (--model_.disabled_ > 0)
    return;  // an outer scope still holds the adapters off
  model_.set_all_enabled(true);
  if (!merged_adapter_.empty() && merged_adapter_ == model_.active_) {
    try {
      model_.merge_adapter();
    } catch (const std::exception& e) {
      // A destructor must not throw; the merge succeeded before, so this
      // only happens if the weights changed inside the scope.
      std::fprintf(stderr, "warning: re-merging after the disabled scope: %s\n",
                   e.what());
    }
  }
}

// --- construction and management --------------------------------------------

PeftModelImpl::PeftModelImpl(models::LoadedEncoder base)
    : PeftModelImpl(std::make_unique<WrappedEncoder>(std::move(base))) {}

PeftModelImpl::PeftModelImpl(models::LoadedDecoder base)
    : PeftModelImpl(std::make_unique<WrappedDecoder>(std::move(base))) {}

PeftModelImpl::PeftModelImpl(std::unique_ptr<WrappedModel> base)
    : base_(std::move(base)), info_(base_->info()) {
  register_module("base_model", base_->module());
  prompt_encoder_ = register_module("prompt_encoder", torch::nn::ModuleDict());
  for (auto& p : base_->module()->parameters())
    p.set_requires_grad(false);
}

PeftModelImpl::~PeftModelImpl() = default;

void PeftModelImpl::add_adapter(const std::string& name,
                                const AdapterConfig& config) {
  check_adapter_name(name);
  if (has_adapter(name)) {
    throw std::invalid_argument(error_message(
        "add_adapter", "a new adapter name", "\"" + name + "\" (in use)",
        "delete_adapter it first or pick another name"));
  }
  auto entry = std::make_unique<Entry>();
  entry->name = name;
  entry->config = config;
  AdapterConfig& cfg = entry->config;

  // PEFT's PeftModelForSequenceClassification trains and saves the head:
  // "classifier" and "score" join modules_to_save.
  bool head_required = cfg.modules_to_save.has_value();
  if (cfg.task_type == "CAUSAL_LM" && !base_->is_causal_lm()) {
    throw std::invalid_argument(error_message(
        "add_adapter", "a causal language model for task_type CAUSAL_LM",
        base_->model_class(),
        base_->has_classifier() ? "use task_type SEQ_CLS for a classifier"
                                : "use task_type FEATURE_EXTRACTION"));
  }
  if (cfg.task_type == "SEQ_CLS") {
    if (!base_->has_classifier()) {
      throw std::invalid_argument(error_message(
          "add_adapter",
          "a model with a classification head for task_type SEQ_CLS",
          base_->model_class(),
          is_decoder() ? "load a ...ForSequenceClassification, or use "
                         "task_type CAUSAL_LM"
                       : "load the model with a head, or use task_type "
                         "FEATURE_EXTRACTION"));
    }
    std::vector<std::string> names =
        cfg.modules_to_save.value_or(std::vector<std::string>{});
    for (const char* head : {"classifier", "score"}) {
      if (std::find(names.begin(), names.end(), head) == names.end())
        names.push_back(head);
    }
    cfg.modules_to_save = names;
  }

  AdapterContext ctx;
  ctx.root = base_->module().get();
  ctx.info = info_;
  ctx.modules_to_save =
      cfg.modules_to_save.value_or(std::vector<std::string>{});
  ctx.word_embeddings = base_->word_embeddings();
  ctx.prompt_encoders = prompt_encoder_;
  ctx.inference_mode = cfg.inference_mode;

  std::visit(
      [&](auto& method) {
        using T = std::decay_t<decltype(method)>;
        if constexpr (std::is_same_v<T, LoraConfig>)
          entry->method = add_lora(ctx, name, method);
        else if constexpr (std::is_same_v<T, Ia3Config>)
          entry->method = add_ia3(ctx, name, method);
        else if constexpr (std::is_same_v<T, PromptTuningConfig>)
          entry->method = add_prompt_tuning(ctx, name, method);
        else if constexpr (std::is_same_v<T, PromptEncoderConfig>)
          entry->method = add_p_tuning(ctx, name, method);
        else if constexpr (std::is_same_v<T, PrefixTuningConfig>)
          entry->method = add_prefix_tuning(ctx, name, method);
        else
          entry->method = add_bottleneck(ctx, name, method);
      },
      cfg.method);
  if (!ctx.modules_to_save.empty()) {
    try {
      entry->head =
          add_modules_to_save(ctx, name, ctx.modules_to_save, head_required);
    } catch (...) {
      entry->method->remove();
      throw;
    }
  }
  // Every part of a new adapter starts disabled and frozen.
  for (Adapter* part : entry->parts())
    part->set_enabled(false);
  entries_.push_back(std::move(entry));
  if (active_.empty())
    set_adapter(name);
  else
    update_trainable();
}

void PeftModelImpl::set_adapter(const std::string& name) {
  entry(name, "set_adapter");  // unknown name: out_of_range
  if (merged()) {
    // As PEFT: switching adapters needs the base weights back.
    unmerge_adapter();
  }
  active_ = name;
  set_all_enabled(disabled_ == 0);
  update_trainable();
}

std::vector<std::string> PeftModelImpl::adapter_names() const {
  std::vector<std::string> out;
  for (const auto& e : entries_)
    out.push_back(e->name);
  return out;
}

bool PeftModelImpl::has_adapter(const std::string& name) const {
  for (const auto& e : entries_) {
    if (e->name == name)
      return true;
  }
  return false;
}

const AdapterConfig& PeftModelImpl::adapter_config(
    const std::string& name) const {
  return entry(name, "adapter_config").config;
}

PeftModelImpl::Entry& PeftModelImpl::entry(const std::string& name,
                                           const std::string& where) {
  return const_cast<Entry&>(
      static_cast<const PeftModelImpl&>(*this).entry(name, where));
}

const PeftModelImpl::Entry& PeftModelImpl::entry(
    const std::string& name, const std::string& where) const {
  for (const auto& e : entries_) {
    if (e->name == name)
      return *e;
  }
  throw std::out_of_range(error_message(
      where, "one of the adapters [" + join_names(adapter_names()) + "]",
      "\"" + name + "\""));
}

void PeftModelImpl::delete_adapter(const std::string& name) {
  entry(name, "delete_adapter");  // unknown name: out_of_range
  if (name == active_) {
    throw std::invalid_argument(
        error_message("delete_adapter", "an adapter that is not active",
                      "\"" + name + "\", the active adapter",
                      "set_adapter another adapter first"));
  }
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if ((*it)->name != name)
      continue;
    for (Adapter* part : (*it)->parts()) {
      if (part->merged())
        part->unmerge();
      part->remove();
    }
    entries_.erase(it);
    break;
  }
  update_trainable();
}

void PeftModelImpl::set_all_enabled(bool enabled) {
  for (auto& e : entries_) {
    for (Adapter* part : e->parts())
      part->set_enabled(enabled && e->name == active_);
  }
}

void PeftModelImpl::update_trainable() {
  for (auto& p : parameters())
    p.set_requires_grad(false);
  if (active_.empty())
    return;
  const Entry& e = entry(active_, "update_trainable");
  if (e.config.inference_mode)
    return;  // loaded to run, not to train (PEFT's is_trainable=False)
  for (Adapter* part : e.parts()) {
    for (auto& [name, tensor] : part->named_parameters())
      tensor.set_requires_grad(true);
  }
}

// --- forward ----------------------------------------------------------------

const Adapter* PeftModelImpl::active_prompt_method() const {
  if (disabled_ || active_.empty())
    return nullptr;
  const Adapter& method = *entry(active_, "forward").method;
  return method.num_virtual_tokens() > 0 ? &method : nullptr;
}

models::EncoderInputs PeftModelImpl::with_prompt(
    const models::EncoderInputs& inputs) {
  const Adapter* active = active_prompt_method();
  if (active == nullptr)
    return inputs;
  const Adapter& method = *active;
  const int64_t p = method.num_virtual_tokens();
  const at::Tensor& ref =
      inputs.input_ids.defined() ? inputs.input_ids : inputs.inputs_embeds;
  TORCH_CHECK(ref.defined(),
              "[PeftModel::forward] expected input_ids or "
              "inputs_embeds, got neither");
  const int64_t batch = ref.size(0);
  models::EncoderInputs out = inputs;
  const at::Tensor prompts = method.virtual_token_embeddings(batch);
  if (prompts.defined()) {
    // PEFT drops explicit position ids for prompt tuning (they would not
    // cover the virtual tokens).
    out.position_ids = at::Tensor();
    // Prompt tuning / P-tuning: [B, P, H] in front of the token
    // embeddings; the mask gets P ones, the token types P zeros.
    at::Tensor embeds =
        inputs.inputs_embeds.defined()
            ? inputs.inputs_embeds
            : base_->word_embeddings()->forward(inputs.input_ids);
    out.inputs_embeds =
        at::cat({prompts.to(embeds.scalar_type()), embeds}, /*dim=*/1);
    out.input_ids = at::Tensor();
    if (inputs.attention_mask.defined()) {
      out.attention_mask =
          at::cat({at::ones({batch, p}, inputs.attention_mask.options()),
                   inputs.attention_mask},
                  /*dim=*/1);
    }
    if (inputs.token_type_ids.defined()) {
      out.token_type_ids =
          at::cat({at::zeros({batch, p}, inputs.token_type_ids.options()),
                   inputs.token_type_ids},
                  /*dim=*/1);
    }
    return out;
  }
  // Prefix tuning: per-layer keys/values; the encoder keeps the prefix
  // visible and shifts derived positions as transformers does for a past;
  // explicit position ids move on by P, as PEFT moves them.
  out.prefix = method.key_value_prefix(batch);
  if (inputs.position_ids.defined())
    out.position_ids = inputs.position_ids + p;
  return out;
}

at::Tensor PeftModelImpl::forward(const models::EncoderInputs& inputs) {
  models::LoadedEncoder& encoder = encoder_for("PeftModel::forward");
  if (!encoder.has_classifier()) {
    throw std::invalid_argument(error_message(
        "PeftModel::forward", "a model with a classification head",
        "a bare encoder", "use encode() for hidden states"));
  }
  return encoder.classifier->forward(with_prompt(inputs));
}

models::EncoderOutput PeftModelImpl::encode(
    const models::EncoderInputs& inputs) {
  return encoder_for("PeftModel::encode").base()->forward(with_prompt(inputs));
}

// --- merging
// ------------------------------------------------------------------

void PeftModelImpl::merge_adapter(bool safe) {
  if (disabled_ > 0) {
    throw std::invalid_argument(error_message(
        "merge_adapter", "adapters enabled", "a disable_adapters() scope",
        "merge after the scope ends"));
  }
  if (active_.empty()) {
    throw std::invalid_argument(
        error_message("merge_adapter", "an active adapter", "none"));
  }
  Entry& e = entry(active_, "merge_adapter");
  for (Adapter* part : e.parts()) {
    if (!part->mergeable())
      part->merge(safe);  // throws the method's explanation
  }
  e.method->merge(safe);
  if (e.head) {
    try {
      e.head->merge(safe);
    } catch (...) {
      e.method->unmerge();
      throw;
    }
  }
}

void PeftModelImpl::unmerge_adapter() {
  if (active_.empty())
    return;
  for (Adapter* part : entry(active_, "unmerge_adapter").parts()) {
    if (part->merged())
      part->unmerge();
  }
}

bool PeftModelImpl::merged() const {
  return !active_.empty() && entry(active_, "merged").method->merged();
}

void PeftModelImpl::merge_and_remove_all(bool safe) {
  if (!active_.empty() && !merged())
    merge_adapter(safe);
  for (auto& e : entries_) {
    for (Adapter* part : e->parts())
      part->remove();  // merged weights stay in the base
  }
  entries_.clear();
  active_.clear();
}

models::LoadedEncoder PeftModelImpl::merge_and_unload(bool safe) {
  models::LoadedEncoder& encoder = encoder_for("merge_and_unload");
  merge_and_remove_all(safe);
  return encoder;
}

// --- the wrapped model
// --------------------------------------------------------

models::LoadedEncoder& PeftModelImpl::encoder_for(
    const std::string& where) const {
  auto* wrapped = dynamic_cast<WrappedEncoder*>(base_.get());
  if (wrapped == nullptr) {
    throw std::invalid_argument(
        error_message(where, "a PeftModel of an encoder",
                      base_->model_class() + " (a decoder-only model)",
                      "use the decoder overloads (DecoderInputs, "
                      "merge_and_unload_decoder, decoder())"));
  }
  return wrapped->loaded;
}

models::LoadedDecoder& PeftModelImpl::decoder_for(
    const std::string& where) const {
  auto* wrapped = dynamic_cast<WrappedDecoder*>(base_.get());
  if (wrapped == nullptr) {
    throw std::invalid_argument(error_message(
        where, "a PeftModel of a decoder-only model",
        base_->model_class() + " (an encoder)",
        "use the encoder overloads (EncoderInputs, merge_and_unload, "
        "base())"));
  }
  return wrapped->loaded;
}

models::LoadedEncoder& PeftModelImpl::base() {
  return encoder_for("PeftModel::base");
}
const models::LoadedEncoder& PeftModelImpl::base() const {
  return encoder_for("PeftModel::base");
}
models::LoadedDecoder& PeftModelImpl::decoder() {
  return decoder_for("PeftModel::decoder");
}
const models::LoadedDecoder& PeftModelImpl::decoder() const {
  return decoder_for("PeftModel::decoder");
}
bool PeftModelImpl::is_decoder() const {
  return dynamic_cast<const WrappedDecoder*>(base_.get()) != nullptr;
}

// --- parameters
// ---------------------------------------------------------------

ParameterCount PeftModelImpl::count_parameters() const {
  ParameterCount count;
  // A tied tensor (an lm_head that is the embedding table) is registered
  // twice; count it once, as PyTorch's parameters() does.
  std::unordered_set<const c10::TensorImpl*> seen;
  for (const auto& p : parameters()) {
    if (!seen.insert(p.unsafeGetTensorImpl()).second)
      continue;
    count.total += p.numel();
    if (p.requires_grad())
      count.trainable += p.numel();
  }
  return count;
}

std::string PeftModelImpl::trainable_parameters_report() const {
  const ParameterCount c = count_parameters();
  char percent[32];
  std::snprintf(percent, sizeof(percent), "%.4f",
                c.total ? 100.0 * static_cast<double>(c.trainable) /
                              static_cast<double>(c.total)
                        : 0.0);
  return "trainable params: " + with_thousands(c.trainable) +
         " || all params: " + with_thousands(c.total) +
         " || trainable%: " + percent;
}

}  // namespace peftcpp::peft
