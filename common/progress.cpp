#include "common/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace peftcpp {

namespace {
std::string format_seconds(double s) {
  char buf[32];
  const int t = static_cast<int>(s + 0.5);
  if (t >= 3600) {
    std::snprintf(buf, sizeof buf, "%d:%02d:%02d", t / 3600, t / 60 % 60,
                  t % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%02d:%02d", t / 60, t % 60);
  }
  return buf;
}
}  // namespace

ProgressBar::ProgressBar(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      tty_(isatty(fileno(stderr)) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

ProgressBar::~ProgressBar() {
  if (!finished_ && tty_)
    std::fputc('\n', stderr);
}

double ProgressBar::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                       start_)
      .count();
}

void ProgressBar::advance(int64_t n) {
  done_ += n;
  const auto now = std::chrono::steady_clock::now();
  // A terminal redraws 10 times a second; a log gets a line every 10 s.
  const double every = tty_ ? 0.1 : 10.0;
  if (std::chrono::duration<double>(now - last_draw_).count() >= every) {
    last_draw_ = now;
    draw(false);
  }
}

void ProgressBar::set_initial(int64_t done) {
  initial_ = done;
  done_ = std::max(done_, done);
}

void ProgressBar::set_postfix(std::string text) {
  postfix_ = std::move(text);
}

void ProgressBar::print_above(const std::string& line) {
  std::fprintf(stderr, "%s%s\n", tty_ ? "\r\033[K" : "", line.c_str());
  if (tty_ && !finished_)
    draw(false);
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (finished_)
    return;
  finished_ = true;
  draw(true);
}

void ProgressBar::draw(bool final) {
  const double t = elapsed();
  const double rate = t > 0 ? (done_ - initial_) / t : 0.0;
  const double frac = total_ > 0 ? static_cast<double>(done_) / total_ : 1.0;
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(frac * kWidth);
  std::string bar(filled, '#');
  bar.resize(kWidth, '.');
  const double eta = rate > 0 ? (total_ - done_) / rate : 0.0;
  // "\033[K" clears what a longer previous line left on a terminal.
  std::fprintf(stderr, "%s%s [%s] %lld/%lld %s  %.2f %s/s  %s %s%s%s%s%s",
               tty_ ? "\r" : "", label_.c_str(), bar.c_str(),
               static_cast<long long>(done_), static_cast<long long>(total_),
               unit_.c_str(), rate, unit_.c_str(), final ? "took" : "ETA",
               format_seconds(final ? t : eta).c_str(),
               postfix_.empty() ? "" : "  ", postfix_.c_str(),
               tty_ ? "\033[K" : "", (final || !tty_) ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace peftcpp
