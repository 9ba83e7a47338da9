#pragma once
// A GGUF model file as a Hugging Face checkpoint: the config.json and the
// state dict that transformers' `from_pretrained(dir, gguf_file=name)`
// builds (modeling_gguf_pytorch_utils.load_gguf_checkpoint), so the decoder
// models load a llama.cpp file like a model folder.
//
// Per architecture one table maps llama.cpp's tensor names back to HF's and
// one maps the metadata keys to config fields; the values are dequantized
// (models/gguf/dequantize.h) and the ggml shapes reversed to torch order.
// Two layouts differ from HF's and are undone: llama.cpp's converter
// interleaves the rotary halves of LLaMA's q_proj/k_proj rows, and GPT-2's
// Conv1D weights are stored as linear [out, in] matrices.

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace peftcpp::gguf {
class GgufFile;
}

namespace peftcpp::models {

/// What load_gguf_checkpoint reads from a GGUF file.
struct GgufCheckpoint {
  /// The config transformers builds from the GGUF metadata (model_type,
  /// hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
  /// num_key_value_heads, rms_norm_eps, rope_theta, max_position_embeddings,
  /// vocab_size, tie_word_embeddings, bos/eos/pad/unk ids, ...), the same
  /// keys and values, plus "architectures" (["LlamaForCausalLM"], ...).
  nlohmann::json config;
  /// Hugging Face names ("model.layers.0.self_attn.q_proj.weight") -> CPU
  /// tensors of the requested dtype. With tied embeddings (no output.weight
  /// in the file; config.tie_word_embeddings) lm_head.weight is absent, as
  /// in a saved HF checkpoint.
  std::map<std::string, at::Tensor> state_dict;
};

/// The GGUF architectures this loader maps ("gpt2", "llama", "qwen2").
std::vector<std::string> gguf_supported_architectures();

/// The config transformers builds from `file`'s metadata (see
/// GgufCheckpoint::config), without reading tensors. std::runtime_error
/// for an architecture outside gguf_supported_architectures().
nlohmann::json gguf_config(const gguf::GgufFile& file);

/// Reads a GGUF model file: its config and every weight dequantized to
/// float32 and converted to `dtype`. Throws std::runtime_error naming the
/// file for an unsupported architecture, a tensor the architecture's table
/// does not know, or a tensor type that cannot be dequantized.
GgufCheckpoint load_gguf_checkpoint(const std::filesystem::path& path,
                                    c10::ScalarType dtype = c10::kFloat);

}  // namespace peftcpp::models
