#include "trainers/training_report.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <vector>

#include "common/atomic_file.h"
#include "common/error.h"

namespace peftcpp::trainers {

namespace fs = std::filesystem;
using nlohmann::json;

MetricsLog::MetricsLog(const fs::path& path, int64_t resume_step)
    : path_(path) {
  std::vector<std::string> kept;
  if (resume_step >= 0 && fs::exists(path)) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      // A line cut short by the kill does not parse: dropped with the rest
      // of what came after the checkpoint.
      const json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_object() && j.value("step", int64_t{-1}) <= resume_step)
        kept.push_back(line);
    }
  }
  write_file_atomically(path, [&](std::ostream& out) {
    for (const auto& line : kept)
      out << line << "\n";
  });
  out_.open(path, std::ios::app);
  if (!out_) {
    throw std::runtime_error(
        error_message("metrics log", "a writable file", path.string()));
  }
}

void MetricsLog::write(const json& record) {
  out_ << record.dump() << "\n";
  out_.flush();
}

namespace {

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string with_commas(int64_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3)
    s.insert(static_cast<size_t>(i), ",");
  return s;
}

std::string duration(double seconds) {
  const int t = static_cast<int>(seconds + 0.5);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%dh%02dm%02ds", t / 3600, t / 60 % 60,
                  t % 60);
  else if (t >= 60)
    std::snprintf(buf, sizeof buf, "%dm%02ds", t / 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%.1fs", seconds);
  return buf;
}

}  // namespace

std::string format_summary_table(const TrainResult& r) {
  std::vector<std::pair<std::string, std::string>> rows;
  if (r.best_eval) {
    // The metric that picked the best checkpoint first, then the others.
    const auto& m = r.best_eval->metrics;
    if (const auto it = m.find(r.metric_for_best_model); it != m.end())
      rows.emplace_back("best eval " + it->first, fixed(it->second, 4));
    for (const auto& [name, value] : m) {
      if (name != r.metric_for_best_model)
        rows.emplace_back("  eval " + name, fixed(value, 4));
    }
    rows.emplace_back("best at", "epoch " + fixed(r.best_epoch, 2) + ", step " +
                                     std::to_string(r.best_step));
  }
  rows.emplace_back("steps", std::to_string(r.global_step) + " (" +
                                 fixed(r.epochs_done, 2) + " epochs" +
                                 (r.early_stopped ? ", stopped early" : "") +
                                 ")");
  rows.emplace_back("train loss (mean)", fixed(r.final_train_loss, 4));
  if (r.skipped_steps > 0)
    rows.emplace_back("skipped steps (non-finite loss)",
                      std::to_string(r.skipped_steps));
  rows.emplace_back("training time", duration(r.train_seconds));
  rows.emplace_back("train examples/s", fixed(r.train_examples_per_second, 1));
  rows.emplace_back("trainable params", with_commas(r.trainable_parameters));
  rows.emplace_back(
      "peak memory (RSS)",
      fixed(static_cast<double>(r.peak_rss_bytes) / (1 << 20), 0) + " MiB");
  rows.emplace_back("adapter", r.adapter_dir.string());

  size_t w0 = 0, w1 = 0;
  for (const auto& [k, v] : rows) {
    w0 = std::max(w0, k.size());
    w1 = std::max(w1, v.size());
  }
  std::ostringstream out;
  const std::string rule =
      "+" + std::string(w0 + 2, '-') + "+" + std::string(w1 + 2, '-') + "+\n";
  out << rule;
  for (const auto& [k, v] : rows) {
    out << "| " << k << std::string(w0 - k.size(), ' ') << " | " << v
        << std::string(w1 - v.size(), ' ') << " |\n";
  }
  out << rule;
  return out.str();
}

namespace {

// gnuplot's single-quoted strings escape a quote by doubling it.
std::string gnuplot_quoted(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    out += c;
    if (c == '\'')
      out += '\'';
  }
  return out + "'";
}

bool have_gnuplot() {
  return std::system("command -v gnuplot >/dev/null 2>&1") == 0;
}

}  // namespace

bool plot_training_curves(const fs::path& metrics_jsonl,
                          const std::string& metric, const fs::path& png,
                          std::string* why) {
  auto fail = [&](const std::string& reason) {
    if (why)
      *why = reason;
    return false;
  };
  if (!have_gnuplot())
    return fail("gnuplot not found (hint: apt-get install gnuplot-nox)");
  std::ifstream in(metrics_jsonl);
  std::ostringstream loss_rows, eval_rows;
  size_t n_loss = 0, n_eval = 0;
  std::string line;
  const std::string eval_key = "eval_" + metric;
  while (std::getline(in, line)) {
    const json j = json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("step"))
      continue;
    const double step = j["step"].get<double>();
    if (j.contains("loss") && j["loss"].is_number()) {
      loss_rows << step << " " << j["loss"].get<double>() << "\n";
      ++n_loss;
    }
    if (j.contains(eval_key) && j[eval_key].is_number()) {
      const double v = j[eval_key].get<double>();
      if (std::isfinite(v)) {
        eval_rows << step << " " << v << "\n";
        ++n_eval;
      }
    }
  }
  if (n_loss == 0 && n_eval == 0)
    return fail("no loss or eval records in " + metrics_jsonl.string());

  // Data go inline ($loss << EOD), so the plot needs no temporary files.
  std::ostringstream script;
  script << "set terminal pngcairo size 900,500 enhanced font 'Sans,10'\n"
         << "set output " << gnuplot_quoted(png.string()) << "\n"
         << "set title " << gnuplot_quoted("training loss and eval " + metric)
         << "\n"
         << "set xlabel 'optimizer step'\nset ylabel 'training loss'\n"
         << "set grid\nset key outside bottom center horizontal\n"
         << "$loss << EOD\n"
         << loss_rows.str() << "EOD\n"
         << "$eval << EOD\n"
         << eval_rows.str() << "EOD\n";
  std::string plot = "plot ";
  if (n_loss > 0)
    plot +=
        "$loss using 1:2 with lines lw 1.5 lc rgb '#1f77b4' title "
        "'training loss'";
  if (n_eval > 0) {
    script << "set y2label " << gnuplot_quoted("eval " + metric)
           << "\nset y2tics\n"
           << "set ytics nomirror\n";
    if (n_loss > 0)
      plot += ", ";
    plot +=
        "$eval using 1:2 axes x1y2 with linespoints pt 7 lw 2 lc rgb "
        "'#d62728' title 'eval " +
        metric + "'";
  }
  script << plot << "\n";

  const fs::path tmp_png = png.string() + ".tmp.png";
  std::string text = script.str();
  const std::string marker = "set output " + gnuplot_quoted(png.string());
  text.replace(text.find(marker), marker.size(),
               "set output " + gnuplot_quoted(tmp_png.string()));
  // A gnuplot that exits early must not kill the run with SIGPIPE.
  void (*previous)(int) = std::signal(SIGPIPE, SIG_IGN);
  FILE* pipe = ::popen("gnuplot 2>/dev/null", "w");
  if (!pipe) {
    std::signal(SIGPIPE, previous);
    return fail("could not start gnuplot");
  }
  std::fwrite(text.data(), 1, text.size(), pipe);
  const int status = ::pclose(pipe);
  std::signal(SIGPIPE, previous);
  if (status != 0 || !fs::exists(tmp_png)) {
    std::error_code ec;
    fs::remove(tmp_png, ec);
    return fail("gnuplot failed (exit status " + std::to_string(status) + ")");
  }
  std::error_code ec;
  fs::rename(tmp_png, png, ec);
  if (ec)
    return fail("could not move the plot into place: " + ec.message());
  return true;
}

json summary_to_json(const TrainResult& r) {
  json j{{"global_step", r.global_step},
         {"epochs", r.epochs_done},
         {"early_stopped", r.early_stopped},
         {"skipped_steps", r.skipped_steps},
         {"best_step", r.best_step},
         {"best_epoch", r.best_epoch},
         {"metric_for_best_model", r.metric_for_best_model},
         {"train_seconds", r.train_seconds},
         {"total_seconds", r.total_seconds},
         {"train_examples", r.train_examples},
         {"train_examples_per_second", r.train_examples_per_second},
         {"train_padded_tokens", r.train_padded_tokens},
         {"train_loss", std::isfinite(r.final_train_loss)
                            ? json(r.final_train_loss)
                            : json(nullptr)},
         {"trainable_parameters", r.trainable_parameters},
         {"peak_rss_bytes", r.peak_rss_bytes},
         {"adapter_dir", r.adapter_dir.string()}};
  if (r.best_eval) {
    json m;
    for (const auto& [k, v] : r.best_eval->metrics)
      m[k] = std::isfinite(v) ? json(v) : json(nullptr);
    j["best_eval"] = m;
  }
  return j;
}

int64_t peak_rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0)
      return std::stoll(line.substr(6)) * 1024;  // reported in kB
  }
  return 0;
}

}  // namespace peftcpp::trainers
