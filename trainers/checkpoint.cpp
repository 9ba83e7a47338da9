#include "trainers/checkpoint.h"

#include <ATen/Context.h>
#include <ATen/core/Generator.h>
#include <torch/serialize.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <stdexcept>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/text_file.h"
#include "models/checkpoint/safetensors.h"
#include "trainers/optimizer.h"

namespace peftcpp::trainers {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kStateFile = "trainer_state.json";
constexpr const char* kTrainableFile = "trainable.safetensors";
constexpr const char* kOptimizerFile = "optimizer.pt";
constexpr const char* kRngFile = "rng_state.safetensors";
constexpr const char* kAdapterFolder = "adapter";
constexpr const char* kTempMarker = ".partial-";

json state_to_json(const TrainerState& s) {
  json best = json::object();
  for (const auto& [k, v] : s.best_metrics)
    best[k] = std::isfinite(v) ? json(v) : json(nullptr);  // NaN: null
  return json{{"best_metrics", best},
              {"global_step", s.global_step},
              {"epoch", s.epoch},
              {"batches_in_epoch", s.batches_in_epoch},
              {"examples_seen", s.examples_seen},
              {"padded_tokens_seen", s.padded_tokens_seen},
              {"skipped_steps", s.skipped_steps},
              {"has_best", s.has_best},
              {"best_metric", s.best_metric},
              {"best_step", s.best_step},
              {"best_epoch", s.best_epoch},
              {"evals_without_improvement", s.evals_without_improvement},
              {"train_seconds", s.train_seconds},
              {"loss_sum", s.loss_sum},
              {"loss_count", s.loss_count},
              {"run_fingerprint", s.run_fingerprint}};
}

TrainerState state_from_json(const json& j, const std::string& where) {
  TrainerState s;
  try {
    j.at("global_step").get_to(s.global_step);
    j.at("epoch").get_to(s.epoch);
    j.at("batches_in_epoch").get_to(s.batches_in_epoch);
    j.at("examples_seen").get_to(s.examples_seen);
    j.at("padded_tokens_seen").get_to(s.padded_tokens_seen);
    j.at("skipped_steps").get_to(s.skipped_steps);
    j.at("has_best").get_to(s.has_best);
    j.at("best_metric").get_to(s.best_metric);
    j.at("best_step").get_to(s.best_step);
    j.at("best_epoch").get_to(s.best_epoch);
    j.at("evals_without_improvement").get_to(s.evals_without_improvement);
    j.at("train_seconds").get_to(s.train_seconds);
    j.at("loss_sum").get_to(s.loss_sum);
    j.at("loss_count").get_to(s.loss_count);
    j.at("run_fingerprint").get_to(s.run_fingerprint);
    for (const auto& [k, v] : j.at("best_metrics").items())
      s.best_metrics[k] = v.is_number() ? v.get<double>() : std::nan("");
  } catch (const json::exception& e) {
    throw std::runtime_error(error_message(
        where, "a complete trainer state", e.what(),
        "the checkpoint is damaged; delete it to resume from an older one"));
  }
  return s;
}

// The generators whose state a resumed run must continue from: dropout and
// any random init draw from the default CPU generator (and CUDA's on GPU).
std::vector<std::pair<std::string, at::Generator>> default_generators() {
  std::vector<std::pair<std::string, at::Generator>> gens;
  gens.emplace_back("cpu", at::globalContext().defaultGenerator(c10::kCPU));
  if (at::globalContext().hasCUDA()) {
    gens.emplace_back("cuda", at::globalContext().defaultGenerator(
                                  c10::Device(c10::kCUDA, 0)));
  }
  return gens;
}

int64_t step_of(const fs::path& dir) {
  static const std::regex pattern(R"(checkpoint-(\d+))");
  std::smatch m;
  const std::string name = dir.filename().string();
  if (!std::regex_match(name, m, pattern))
    return -1;
  return std::stoll(m[1].str());
}

}  // namespace

namespace {
fs::path moved_aside(const fs::path& to) {
  return to.parent_path() / (to.filename().string() + kTempMarker + "old");
}

// A kill between write_folder_atomically's two renames leaves only the old
// folder, moved aside: put it back.
void recover_folder(const fs::path& to) {
  std::error_code ec;
  if (!fs::exists(to) && fs::exists(moved_aside(to)))
    fs::rename(moved_aside(to), to, ec);
}
}  // namespace

void write_folder_atomically(
    const fs::path& to, const std::function<void(const fs::path&)>& write) {
  recover_folder(to);
  const fs::path tmp =
      to.parent_path() / (to.filename().string() + kTempMarker +
                          std::to_string(static_cast<long>(::getpid())));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    write(tmp);
    // rename() cannot replace a non-empty folder: move the old one aside
    // first, so `to` is always either the old or the new complete folder
    // (or, for an instant, absent).
    if (fs::exists(to)) {
      const fs::path old =
          to.parent_path() / (to.filename().string() + kTempMarker + "old");
      fs::remove_all(old);
      fs::rename(to, old);
      fs::rename(tmp, to);
      fs::remove_all(old);
    } else {
      fs::rename(tmp, to);
    }
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(tmp, ignored);
    throw;
  }
}

void replace_folder(const fs::path& from, const fs::path& to) {
  write_folder_atomically(to, [&](const fs::path& tmp) {
    fs::copy(from, tmp, fs::copy_options::recursive);
  });
}

fs::path save_checkpoint(const fs::path& output_dir, TrainableModel& model,
                         const torch::optim::Optimizer& optimizer,
                         const TrainerState& state) {
  const fs::path dir =
      output_dir / ("checkpoint-" + std::to_string(state.global_step));
  write_folder_atomically(dir, [&](const fs::path& tmp) {
    models::save_safetensors(tmp / kTrainableFile,
                             model.trainable_parameters());
    std::vector<std::pair<std::string, at::Tensor>> rng;
    for (auto& [name, gen] : default_generators()) {
      std::lock_guard<std::mutex> lock(gen.mutex());
      rng.emplace_back(name, gen.get_state());
    }
    models::save_safetensors(tmp / kRngFile, rng);
    write_file_atomically(tmp / kOptimizerFile, [&](std::ostream& out) {
      save_optimizer_state(optimizer, out);
    });
    model.save_adapter(tmp / kAdapterFolder);
    // The state goes last: its presence marks the folder complete even if
    // someone copies a half-renamed tree.
    write_file_atomically(tmp / kStateFile, [&](std::ostream& out) {
      out << state_to_json(state).dump(2) << "\n";
    });
  });
  return dir;
}

std::optional<fs::path> latest_checkpoint(const fs::path& output_dir) {
  std::optional<fs::path> best;
  int64_t best_step = -1;
  std::error_code ec;
  if (!fs::is_directory(output_dir, ec))
    return best;
  for (const auto& entry : fs::directory_iterator(output_dir)) {
    const int64_t step = step_of(entry.path());
    if (step > best_step && fs::exists(entry.path() / kStateFile)) {
      best_step = step;
      best = entry.path();
    }
  }
  return best;
}

TrainerState load_checkpoint(const fs::path& checkpoint, TrainableModel& model,
                             torch::optim::Optimizer& optimizer,
                             const std::string& expected_fingerprint) {
  const std::string where = "resume(" + checkpoint.string() + ")";
  const fs::path state_path = checkpoint / kStateFile;
  json j;
  try {
    j = json::parse(read_text_file(state_path, where,
                                   "is this a peftcpp checkpoint folder?"));
  } catch (const json::parse_error& e) {
    throw std::runtime_error(
        error_message(where, "valid JSON in " + state_path.string(), e.what()));
  }
  TrainerState state = state_from_json(j, where);
  if (state.run_fingerprint != expected_fingerprint) {
    throw std::runtime_error(error_message(
        where,
        "a checkpoint of this run configuration (fingerprint " +
            expected_fingerprint + ")",
        "one written by another configuration (fingerprint " +
            state.run_fingerprint + ")",
        "the model, data, method or optimizer settings changed since it was "
        "written; use a new output_dir, or restore the old configuration "
        "(saved as run_config.yaml in the output folder)"));
  }

  // Check every parameter before touching any, so a mismatch changes
  // nothing.
  auto file = models::SafetensorsFile::open(checkpoint / kTrainableFile);
  auto params = model.trainable_parameters();
  if (file->size() != params.size()) {
    throw std::runtime_error(error_message(
        where, std::to_string(params.size()) + " trainable tensors",
        std::to_string(file->size()) + " in " +
            (checkpoint / kTrainableFile).string()));
  }
  std::vector<at::Tensor> values;
  for (const auto& [name, p] : params) {
    if (!file->contains(name)) {
      throw std::runtime_error(error_message(
          where,
          "tensor \"" + name + "\" in " +
              (checkpoint / kTrainableFile).string(),
          "none", "the checkpoint belongs to another method or model"));
    }
    at::Tensor v = file->tensor(name);
    if (v.sizes() != p.sizes()) {
      throw std::runtime_error(error_message(
          where, "\"" + name + "\" of shape " + c10::str(p.sizes()),
          c10::str(v.sizes())));
    }
    values.push_back(v);
  }
  auto rng = models::SafetensorsFile::open(checkpoint / kRngFile);
  // The optimizer first: it checks its state against the parameters and
  // restores itself on failure, so nothing has changed if it throws.
  {
    std::ifstream in(checkpoint / kOptimizerFile, std::ios::binary);
    if (!in) {
      throw std::runtime_error(error_message(
          where, "a readable " + (checkpoint / kOptimizerFile).string(), "none",
          "the checkpoint is incomplete; delete it to resume from an "
          "older one"));
    }
    load_optimizer_state(optimizer, in);
  }
  {
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i)
      params[i].second.copy_(values[i]);
  }
  for (auto& [name, gen] : default_generators()) {
    if (!rng->contains(name))
      continue;  // a CPU-only checkpoint resumed on a GPU machine
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(rng->tensor(name).clone());
  }
  return state;
}

void prune_checkpoints(const fs::path& output_dir, int64_t keep,
                       int64_t protect_step) {
  std::error_code ec;
  if (!fs::is_directory(output_dir, ec))
    return;
  std::vector<std::pair<int64_t, fs::path>> complete;
  for (const auto& entry : fs::directory_iterator(output_dir)) {
    const std::string name = entry.path().filename().string();
    if (const size_t at = name.find(kTempMarker); at != std::string::npos) {
      // Left by a killed run: a folder moved aside whose replacement never
      // arrived goes back; anything else is an unfinished write.
      recover_folder(output_dir / name.substr(0, at));
      fs::remove_all(entry.path(), ec);
      continue;
    }
    const int64_t step = step_of(entry.path());
    if (step >= 0)
      complete.emplace_back(step, entry.path());
  }
  std::sort(complete.begin(), complete.end());
  int64_t excess =
      static_cast<int64_t>(complete.size()) - std::max<int64_t>(keep, 1);
  for (const auto& [step, path] : complete) {
    if (excess <= 0)
      break;
    if (step == protect_step)
      continue;
    fs::remove_all(path, ec);
    --excess;
  }
}

}  // namespace peftcpp::trainers
