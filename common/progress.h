#pragma once
// A progress bar for long work: items done, rate, ETA. Drawn on stderr and
// redrawn in place when stderr is a terminal; otherwise a line every few
// seconds, so logs of CI or batch jobs stay readable.

#include <chrono>
#include <cstdint>
#include <string>

namespace peftcpp {

/// Shows progress of `total` items of work named `label` ("predict", ...).
class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, std::string unit = "it");
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  /// Marks `n` more items done and redraws when due.
  void advance(int64_t n = 1);
  /// Items already done before this process started (a resumed run): shown
  /// in the count, left out of the rate and ETA.
  void set_initial(int64_t done);
  /// Text drawn after the bar ("loss 0.412  lr 4.8e-04"), until replaced.
  void set_postfix(std::string text);
  /// Prints `line` on its own line above the bar (which is redrawn below
  /// it on a terminal).
  void print_above(const std::string& line);
  /// Draws the final state with the total time and rate; idempotent.
  void finish();

  /// Seconds since construction.
  double elapsed() const;

 private:
  void draw(bool final);

  std::string label_;
  std::string unit_;
  int64_t total_;
  int64_t done_ = 0;
  int64_t initial_ = 0;
  std::string postfix_;
  bool tty_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace peftcpp
