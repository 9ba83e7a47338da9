#include "data/dataset/batching.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <stdexcept>

#include "common/error.h"

namespace peftcpp::data {

namespace {

/// splitmix64's finalizer: spreads (seed, epoch) over all 64 bits so that
/// neighbouring seeds or epochs start far apart in mt19937_64.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/// Uniform in [0, n) by rejection: std::uniform_int_distribution's
/// algorithm is up to the standard library, mt19937_64's output is not.
uint64_t draw_below(std::mt19937_64& rng, uint64_t n) {
  const uint64_t threshold = (0 - n) % n;  // 2^64 mod n
  for (;;) {
    const uint64_t r = rng();
    if (r >= threshold)
      return r % n;
  }
}

}  // namespace

std::vector<int64_t> shuffled_rows(size_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), int64_t{0});
  std::mt19937_64 rng(mix(seed ^ mix(static_cast<uint64_t>(epoch))));
  // Fisher-Yates, from the back.
  for (size_t i = n; i > 1; --i) {
    const auto j = static_cast<size_t>(draw_below(rng, i));
    std::swap(order[i - 1], order[j]);
  }
  return order;
}

std::vector<std::vector<int64_t>> plan_epoch(const TokenizedDataset& dataset,
                                             const BatchPlanOptions& options,
                                             int64_t epoch) {
  if (options.batch_size <= 0) {
    throw std::invalid_argument(error_message(
        "plan_epoch", "batch_size > 0", std::to_string(options.batch_size)));
  }
  const size_t n = dataset.size();
  const auto batch = static_cast<size_t>(options.batch_size);
  std::vector<int64_t> order;
  if (options.shuffle) {
    order = shuffled_rows(n, options.seed, epoch);
  } else {
    order.resize(n);
    std::iota(order.begin(), order.end(), int64_t{0});
  }
  if (options.group_by_length && n > 0) {
    // transformers' get_length_grouped_indices: mega-batches of up to 50
    // batches (fewer on small sets, so there are at least ~4 of them),
    // each sorted by length, longest first (stable, as Python's sorted).
    size_t mult = std::min<size_t>(n / (batch * 4), 50);
    if (mult == 0)
      mult = 1;
    const size_t mega = mult * batch;
    auto longer = [&](int64_t a, int64_t b) {
      return dataset.length(static_cast<size_t>(a)) >
             dataset.length(static_cast<size_t>(b));
    };
    size_t longest_mega = 0;
    int64_t longest = -1;
    for (size_t begin = 0; begin < n; begin += mega) {
      const auto first = order.begin() + static_cast<std::ptrdiff_t>(begin);
      const auto last = order.begin() +
                        static_cast<std::ptrdiff_t>(std::min(n, begin + mega));
      std::stable_sort(first, last, longer);
      const int64_t len = dataset.length(static_cast<size_t>(*first));
      if (len > longest) {
        longest = len;
        longest_mega = begin;
      }
    }
    // The mega-batch holding the longest row goes first, so a batch that
    // does not fit in memory fails at the first step, not hours in. A full
    // mega-batch (a whole number of batches) moves as a block, which keeps
    // every mega-batch sorted and aligned to batch boundaries; the short
    // last one would shift those boundaries, so there, as transformers
    // always does, only its longest row swaps with the first row.
    if (longest_mega != 0) {
      const auto first = order.begin();
      const auto mid =
          order.begin() + static_cast<std::ptrdiff_t>(longest_mega);
      if (longest_mega + mega <= n) {
        std::rotate(first, mid, mid + static_cast<std::ptrdiff_t>(mega));
      } else {
        std::iter_swap(first, mid);
      }
    }
  }
  std::vector<std::vector<int64_t>> batches;
  for (size_t begin = 0; begin < n; begin += batch) {
    const size_t end = std::min(n, begin + batch);
    if (end - begin < batch && options.drop_last)
      break;
    batches.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(begin),
                         order.begin() + static_cast<std::ptrdiff_t>(end));
  }
  return batches;
}

}  // namespace peftcpp::data
