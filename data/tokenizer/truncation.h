#pragma once
// Truncation of one sequence or a pair to a token budget, with the exact
// rules of HF tokenizers' utils/truncation.rs (including how longest_first
// shares the budget between the two sequences).

#include <cstddef>
#include <optional>

#include "data/tokenizer/encoding.h"

namespace peftcpp::data {

/// How a pair (or a single sequence) is cut down to max_length.
enum class TruncationStrategy {
  /// Cut the longer sequence first; both end up about max_length / 2.
  kLongestFirst,
  /// Cut only the first sequence.
  kOnlyFirst,
  /// Cut only the second sequence (needs a pair).
  kOnlySecond,
  /// Never cut.
  kDoNotTruncate,
};

/// The name HF uses for `strategy` ("longest_first", ...).
const char* truncation_name(TruncationStrategy strategy);

/// Truncates `first` and `second` so that together they hold at most
/// `max_length` tokens (special tokens not counted: the caller subtracts
/// them). Throws std::invalid_argument where HF errors: only_second without
/// a pair, or a target sequence shorter than what must be removed.
void truncate_encodings(Encoding& first, std::optional<Encoding>& second,
                        size_t max_length, TruncationStrategy strategy,
                        Side side);

}  // namespace peftcpp::data
