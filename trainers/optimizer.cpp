#include "trainers/optimizer.h"

#include <c10/util/Exception.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <unordered_set>
#include <vector>

#include "common/error.h"

namespace peftcpp::trainers {

namespace {

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<std::string> split_dots(const std::string& s) {
  std::vector<std::string> out;
  std::string part;
  std::istringstream in(s);
  while (std::getline(in, part, '.'))
    out.push_back(part);
  return out;
}

std::string shape_of(const at::Tensor& t) {
  std::ostringstream os;
  os << t.sizes();
  return os.str();
}

void check_settings(const AdamWSettings& s) {
  const auto fail = [](const std::string& field, const std::string& expected,
                       double got) {
    throw std::invalid_argument(
        error_message("make_adamw", field + " " + expected,
                      field + " = " + std::to_string(got)));
  };
  if (!(s.learning_rate >= 0.0) || !std::isfinite(s.learning_rate))
    fail("learning_rate", ">= 0 and finite", s.learning_rate);
  if (!(s.weight_decay >= 0.0) || !std::isfinite(s.weight_decay))
    fail("weight_decay", ">= 0 and finite", s.weight_decay);
  if (!(s.adam_beta1 >= 0.0 && s.adam_beta1 < 1.0))
    fail("adam_beta1", "in [0, 1)", s.adam_beta1);
  if (!(s.adam_beta2 >= 0.0 && s.adam_beta2 < 1.0))
    fail("adam_beta2", "in [0, 1)", s.adam_beta2);
  if (!(s.adam_epsilon >= 0.0) || !std::isfinite(s.adam_epsilon))
    fail("adam_epsilon", ">= 0 and finite", s.adam_epsilon);
}

void check_parameter(const std::string& name, const at::Tensor& p) {
  if (!p.defined())
    throw std::invalid_argument(
        error_message("make_adamw", "a defined tensor for every parameter",
                      "an undefined tensor for \"" + name + "\""));
  if (!p.requires_grad())
    throw std::invalid_argument(error_message(
        "make_adamw", "trainable parameters (requires_grad)",
        "frozen parameter \"" + name + "\"",
        "pass only the trainable parameters, e.g. the names and tensors "
        "whose requires_grad() is true"));
  if (!p.is_leaf())
    throw std::invalid_argument(error_message(
        "make_adamw", "leaf tensors (a module's own parameters)",
        "a computed tensor for \"" + name + "\"",
        "its gradient would never be filled in; pass the parameter it was "
        "computed from"));
}

torch::optim::AdamWOptions group_options(const AdamWSettings& s,
                                         double weight_decay) {
  torch::optim::AdamWOptions o(s.learning_rate);
  o.betas(std::make_tuple(s.adam_beta1, s.adam_beta2));
  o.eps(s.adam_epsilon);
  // LibTorch's AdamWOptions default weight decay is 1e-2 (PyTorch's), so it
  // is always set explicitly, 0 included.
  o.weight_decay(weight_decay);
  o.amsgrad(false);
  return o;
}

// The AdamW moments of each parameter must have its shape: LibTorch's load
// matches state to parameters by position only, so a state saved for other
// parameters would otherwise surface later as a broadcasting error in step().
void check_adamw_state(const torch::optim::Optimizer& optimizer) {
  const auto& state = optimizer.state();
  for (size_t g = 0; g < optimizer.param_groups().size(); ++g) {
    const auto& params = optimizer.param_groups()[g].params();
    for (size_t i = 0; i < params.size(); ++i) {
      const auto it = state.find(params[i].unsafeGetTensorImpl());
      if (it == state.end())
        continue;
      const auto* adamw =
          dynamic_cast<const torch::optim::AdamWParamState*>(it->second.get());
      if (adamw == nullptr)
        continue;
      for (const at::Tensor& moment : {adamw->exp_avg(), adamw->exp_avg_sq()}) {
        if (moment.defined() && moment.sizes() != params[i].sizes())
          throw std::runtime_error(error_message(
              "load_optimizer_state",
              "moments shaped like parameter " + std::to_string(i) +
                  " of group " + std::to_string(g) + " " + shape_of(params[i]),
              "a moment of shape " + shape_of(moment),
              "the state was saved for other parameters (another adapter "
              "configuration or model)"));
      }
    }
  }
}

}  // namespace

bool is_no_decay_parameter(const std::string& name) {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  // transformers' substring patterns on the lower-cased name.
  for (const char* pattern : {"bias", "layernorm", "rmsnorm"}) {
    if (lower.find(pattern) != std::string::npos)
      return true;
  }
  for (const std::string& segment : split_dots(lower)) {
    // transformers: (?:^|\.)norm(?:$|\.) and _norm(?:$|\.)
    if (segment == "norm" || ends_with(segment, "_norm"))
      return true;
    // LayerNorm modules transformers finds by type (see the header).
    if (segment == "ln" || starts_with(segment, "ln_") ||
        starts_with(segment, "norm_") ||
        segment.find("_norm_") != std::string::npos)
      return true;
  }
  return false;
}

std::unique_ptr<torch::optim::AdamW> make_adamw(
    const std::vector<std::pair<std::string, at::Tensor>>& named_parameters,
    const AdamWSettings& settings) {
  check_settings(settings);
  if (named_parameters.empty())
    throw std::invalid_argument(error_message(
        "make_adamw", "at least one trainable parameter", "none",
        "was an adapter added (and its parameters made trainable) before "
        "the optimizer was made?"));
  std::vector<at::Tensor> decay;
  std::vector<at::Tensor> no_decay;
  std::unordered_set<std::string> names;
  std::unordered_set<const void*> tensors;
  for (const auto& [name, p] : named_parameters) {
    check_parameter(name, p);
    if (!names.insert(name).second)
      throw std::invalid_argument(error_message(
          "make_adamw", "unique parameter names", "\"" + name + "\" twice"));
    if (!tensors.insert(p.unsafeGetTensorImpl()).second)
      throw std::invalid_argument(error_message(
          "make_adamw", "each parameter once",
          "\"" + name + "\" is a tensor already listed under another name",
          "a parameter in two groups would be stepped twice"));
    (is_no_decay_parameter(name) ? no_decay : decay).push_back(p);
  }
  // Group order as transformers' Trainer.create_optimizer: decay first.
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay,
                      std::make_unique<torch::optim::AdamWOptions>(
                          group_options(settings, settings.weight_decay)));
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(
                                    group_options(settings, 0.0)));
  return std::make_unique<torch::optim::AdamW>(
      groups, group_options(settings, settings.weight_decay));
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  if (!(lr >= 0.0) || !std::isfinite(lr))
    throw std::invalid_argument(error_message(
        "set_learning_rate", "a learning rate >= 0 and finite",
        std::to_string(lr), "check the schedule's peak learning rate"));
  for (auto& group : optimizer.param_groups())
    group.options().set_lr(lr);
}

void save_optimizer_state(const torch::optim::Optimizer& optimizer,
                          std::ostream& stream) {
  torch::serialize::OutputArchive archive;
  optimizer.save(archive);
  archive.save_to(stream);
  if (!stream)
    throw std::runtime_error(error_message("save_optimizer_state",
                                           "a writable stream", "a write error",
                                           "is the disk full?"));
}

void load_optimizer_state(torch::optim::Optimizer& optimizer,
                          std::istream& stream) {
  // Keep the current state so that a refused load leaves it unchanged:
  // LibTorch's load overwrites group options before it can fail.
  std::stringstream backup;
  {
    torch::serialize::OutputArchive archive;
    optimizer.save(archive);
    archive.save_to(backup);
  }
  const auto restore = [&] {
    // load() only adds and overwrites entries: drop what a failed load left.
    optimizer.state().clear();
    torch::serialize::InputArchive archive;
    archive.load_from(backup);
    optimizer.load(archive);
  };
  std::string sizes;
  for (const auto& group : optimizer.param_groups())
    sizes +=
        (sizes.empty() ? "" : ", ") + std::to_string(group.params().size());
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(stream);
    optimizer.load(archive);
  } catch (const c10::Error& e) {
    restore();
    throw std::runtime_error(error_message(
        "load_optimizer_state",
        "an optimizer state saved for parameter groups of sizes [" + sizes +
            "]",
        e.what_without_backtrace(),
        "the state comes from another optimizer or parameter set"));
  }
  try {
    check_adamw_state(optimizer);
  } catch (...) {
    restore();
    throw;
  }
}

}  // namespace peftcpp::trainers
