#include "data/tokenizer/truncation.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <utility>

#include "common/error.h"

namespace peftcpp::data {

const char* truncation_name(TruncationStrategy strategy) {
  switch (strategy) {
    case TruncationStrategy::kLongestFirst:
      return "longest_first";
    case TruncationStrategy::kOnlyFirst:
      return "only_first";
    case TruncationStrategy::kOnlySecond:
      return "only_second";
    case TruncationStrategy::kDoNotTruncate:
      return "do_not_truncate";
  }
  return "?";
}

void truncate_encodings(Encoding& first, std::optional<Encoding>& second,
                        size_t max_length, TruncationStrategy strategy,
                        Side side) {
  if (strategy == TruncationStrategy::kDoNotTruncate)
    return;
  if (max_length == 0) {
    first.truncate(0, side);
    if (second)
      second->truncate(0, side);
    return;
  }
  const size_t total = first.size() + (second ? second->size() : 0);
  if (total <= max_length)
    return;
  const size_t to_remove = total - max_length;

  if (strategy == TruncationStrategy::kLongestFirst) {
    if (!second) {
      first.truncate(max_length, side);
      return;
    }
    // n1 is the shorter length. If the shorter one fits in half the budget
    // it is kept whole and the longer one gets the rest; otherwise both get
    // half and an odd token goes to the longer one (the second on a tie).
    size_t n1 = first.size(), n2 = second->size();
    const bool swap = n1 > n2;
    if (swap)
      std::swap(n1, n2);
    n2 = n1 > max_length ? n1 : std::max(n1, max_length - n1);
    if (n1 + n2 > max_length) {
      n1 = max_length / 2;
      n2 = n1 + max_length % 2;
    }
    if (swap)
      std::swap(n1, n2);
    first.truncate(n1, side);
    second->truncate(n2, side);
    return;
  }

  const bool only_first = strategy == TruncationStrategy::kOnlyFirst;
  if (!only_first && !second) {
    throw std::invalid_argument(error_message(
        "Tokenizer::encode", "a pair of sequences for truncation only_second",
        "a single sequence of " + std::to_string(total) +
            " tokens over max_length",
        "use longest_first or only_first for single sequences"));
  }
  Encoding& target = only_first ? first : *second;
  if (target.size() <= to_remove) {
    throw std::invalid_argument(error_message(
        "Tokenizer::encode",
        std::string("the sequence cut by ") + truncation_name(strategy) +
            " to be longer than the " + std::to_string(to_remove) +
            " tokens to remove",
        std::to_string(target.size()) + " tokens",
        "use longest_first or a larger max_length"));
  }
  target.truncate(target.size() - to_remove, side);
}

}  // namespace peftcpp::data
