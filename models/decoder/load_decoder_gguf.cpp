// load_decoder for .gguf files: the GGUF reader gives the config and the
// Hugging Face-named weights transformers' gguf_file= loading builds; the
// model is then built like any checkpoint's.

#include <nlohmann/json.hpp>

#include "models/checkpoint/gguf_checkpoint.h"
#include "models/decoder/load_decoder.h"

namespace peftcpp::models {

LoadedDecoder load_decoder_gguf(const std::filesystem::path& path,
                                const LoadDecoderOptions& options) {
  GgufCheckpoint checkpoint = load_gguf_checkpoint(path, options.dtype);
  DecoderConfig config =
      DecoderConfig::from_json(checkpoint.config, path.string());
  StateDict weights(std::make_move_iterator(checkpoint.state_dict.begin()),
                    std::make_move_iterator(checkpoint.state_dict.end()));
  return build_decoder(std::move(config), std::move(weights), options,
                       path.string());
}

}  // namespace peftcpp::models
