#include <stdexcept>

#include "common/error.h"
#include "models/decoder/load_decoder.h"

namespace peftcpp::models {

// Interim: the GGUF reader (models/checkpoint/gguf_checkpoint) is being
// written; until it lands a .gguf path is refused clearly.
LoadedDecoder load_decoder_gguf(const std::filesystem::path& path,
                                const LoadDecoderOptions& options) {
  throw std::runtime_error(error_message(
      "load_decoder(" + path.string() + ")", "a Hugging Face model folder",
      "a GGUF file", "GGUF loading is not built into this version yet"));
}

}  // namespace peftcpp::models
