#include "models/checkpoint/gguf_checkpoint.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <stdexcept>
#include <utility>

#include "common/error.h"
#include "models/gguf/dequantize.h"
#include "models/gguf/gguf_file.h"

namespace peftcpp::models {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

/// A name (or metadata key) in llama.cpp's spelling and in HF's.
struct NamePair {
  const char* gguf;
  const char* hf;
};

/// How an architecture's stored weights differ from HF's layout.
enum class Layout {
  kPlain,
  /// llama.cpp's LLaMA converter interleaves the rotary halves of the q/k
  /// rows (convert_hf_to_gguf.py `permute`); undone as transformers'
  /// LlamaTensorProcessor does.
  kLlamaRope,
  /// HF GPT-2 keeps Conv1D weights as [in, out]; llama.cpp stores them as
  /// linear [out, in] (transformers' GPT2TensorProcessor transposes back).
  kGpt2Conv1D,
};

/// Everything the loader knows about one GGUF architecture: the one table
/// of its tensor names and of its metadata keys (transformers'
/// GGUF_CONFIG_MAPPING), with `{arch}.` stripped from the keys.
struct Architecture {
  const char* gguf_name;
  const char* hf_class;
  /// HF prefix of block N's modules, N appended ("model.layers.").
  const char* layer_prefix;
  /// Tensors outside the blocks, name without ".weight"/".bias".
  std::vector<NamePair> globals;
  /// Tensors of block N ("blk.N.<gguf>" -> "<layer_prefix>N.<hf>").
  std::vector<NamePair> block;
  /// "<arch>.<gguf key>" -> config field.
  std::vector<NamePair> config;
  Layout layout;
};

const std::vector<NamePair> kDecoderBlock = {
    {"attn_norm", "input_layernorm"},
    {"attn_q", "self_attn.q_proj"},
    {"attn_k", "self_attn.k_proj"},
    {"attn_v", "self_attn.v_proj"},
    {"attn_output", "self_attn.o_proj"},
    {"ffn_norm", "post_attention_layernorm"},
    {"ffn_gate", "mlp.gate_proj"},
    {"ffn_up", "mlp.up_proj"},
    {"ffn_down", "mlp.down_proj"},
};

const std::vector<NamePair> kDecoderGlobals = {
    {"token_embd", "model.embed_tokens"},
    {"output_norm", "model.norm"},
    {"output", "lm_head"},
};

// transformers leaves head_dim out for qwen2 ("rope.dimension_count": None).
std::vector<NamePair> decoder_config(bool with_head_dim) {
  std::vector<NamePair> keys = {
      {"context_length", "max_position_embeddings"},
      {"block_count", "num_hidden_layers"},
      {"feed_forward_length", "intermediate_size"},
      {"embedding_length", "hidden_size"},
      {"rope.freq_base", "rope_theta"},
      {"attention.head_count", "num_attention_heads"},
      {"attention.head_count_kv", "num_key_value_heads"},
      {"attention.layer_norm_rms_epsilon", "rms_norm_eps"},
      {"vocab_size", "vocab_size"},
  };
  if (with_head_dim) {
    keys.push_back({"rope.dimension_count", "head_dim"});
  }
  return keys;
}

const std::vector<Architecture>& architectures() {
  static const std::vector<Architecture> kArchitectures = {
      {"gpt2",
       "GPT2LMHeadModel",
       "transformer.h.",
       {{"token_embd", "transformer.wte"},
        {"position_embd", "transformer.wpe"},
        {"output_norm", "transformer.ln_f"},
        {"output", "lm_head"}},
       {{"attn_norm", "ln_1"},
        {"attn_qkv", "attn.c_attn"},
        {"attn_output", "attn.c_proj"},
        {"ffn_norm", "ln_2"},
        {"ffn_up", "mlp.c_fc"},
        {"ffn_down", "mlp.c_proj"}},
       {{"block_count", "n_layer"},
        {"context_length", "n_ctx"},
        {"embedding_length", "n_embd"},
        {"feed_forward_length", "feed_forward_length"},
        {"attention.head_count", "n_head"},
        {"attention.layer_norm_epsilon", "layer_norm_epsilon"}},
       Layout::kGpt2Conv1D},
      {"llama", "LlamaForCausalLM", "model.layers.", kDecoderGlobals,
       kDecoderBlock, decoder_config(true), Layout::kLlamaRope},
      {"qwen2", "Qwen2ForCausalLM", "model.layers.", kDecoderGlobals,
       kDecoderBlock, decoder_config(false), Layout::kPlain},
  };
  return kArchitectures;
}

// Metadata outside the architecture's own keys that transformers copies.
constexpr NamePair kCommonConfig[] = {
    {"general.architecture", "model_type"},
    {"general.name", "_model_name_or_path"},
    {"tokenizer.ggml.bos_token_id", "bos_token_id"},
    {"tokenizer.ggml.eos_token_id", "eos_token_id"},
    {"tokenizer.ggml.unknown_token_id", "unk_token_id"},
    {"tokenizer.ggml.padding_token_id", "pad_token_id"},
};

// Tensors llama.cpp writes that are no weights of the HF model (precomputed
// rotary frequencies); transformers skips them too.
constexpr const char* kIgnoredTensors[] = {"rope_freqs.weight"};

std::string where_of(const gguf::GgufFile& file) {
  return "gguf '" + file.path().string() + "'";
}

const Architecture& find_architecture(const gguf::GgufFile& file,
                                      const std::string& arch) {
  for (const Architecture& a : architectures()) {
    if (arch == a.gguf_name) {
      return a;
    }
  }
  throw std::runtime_error(error_message(
      where_of(file),
      "general.architecture one of " +
          join_names(gguf_supported_architectures()),
      "'" + arch + "'",
      "the decoder models implement these families; Mistral files are "
      "'llama' files named 'mistral'"));
}

// transformers collapses a one-element array to its element.
json config_value(const json& v) {
  return v.is_array() && v.size() == 1 ? v.front() : v;
}

void replace_all(std::string& s, const std::string& from,
                 const std::string& to) {
  for (size_t pos = s.find(from); pos != std::string::npos;
       pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
}

// The HF name of a GGUF tensor name; "" when the table has none.
std::string hf_name(const Architecture& arch, const std::string& name) {
  const size_t dot = name.rfind('.');
  if (dot == std::string::npos) {
    return "";
  }
  const std::string stem = name.substr(0, dot);
  const std::string suffix = name.substr(dot);  // ".weight" / ".bias"
  if (suffix != ".weight" && suffix != ".bias") {
    return "";
  }
  for (const NamePair& p : arch.globals) {
    if (stem == p.gguf) {
      return p.hf + suffix;
    }
  }
  // "blk.<N>.<block name>"
  if (stem.rfind("blk.", 0) != 0) {
    return "";
  }
  const size_t end = stem.find('.', 4);
  if (end == std::string::npos || end == 4 ||
      stem.find_first_not_of("0123456789", 4) != end) {
    return "";
  }
  const std::string layer = stem.substr(4, end - 4);
  const std::string rest = stem.substr(end + 1);
  for (const NamePair& p : arch.block) {
    if (rest == p.gguf) {
      return arch.layer_prefix + layer + "." + p.hf + suffix;
    }
  }
  return "";
}

// [n_head * 2 * d, ...] with rows (head, half, i) -> rows (head, i, half):
// the inverse of llama.cpp's permute, which interleaves the two rotary
// halves of every head.
at::Tensor unpermute_rope_rows(const at::Tensor& w, int64_t n_head,
                               const std::string& where) {
  const int64_t rows = w.size(0);
  if (n_head <= 0 || rows % (2 * n_head) != 0) {
    throw std::runtime_error(error_message(
        where,
        "a first dimension divisible by 2 x " + std::to_string(n_head) +
            " heads",
        std::to_string(rows), "the head counts in the metadata are wrong"));
  }
  std::vector<int64_t> split = {n_head, rows / n_head / 2, 2};
  split.insert(split.end(), w.sizes().begin() + 1, w.sizes().end());
  return w.reshape(split).transpose(1, 2).reshape(w.sizes()).contiguous();
}

// Dequantizes on LibTorch's intra-op (OpenMP) threads, in pieces small
// enough that dequantize() starts no threads of its own: its std::threads
// would compete with OpenMP workers still spinning after the previous
// tensor's reshape, which doubled the load time of SmolLM2 on two cores.
void dequantize_parallel(const gguf::TensorInfo& info, const uint8_t* data,
                         float* out, const std::string& where) {
  const auto traits = gguf::ggml_type_traits(info.type);
  if (!traits || !gguf::can_dequantize(info.type)) {
    gguf::dequantize(info.type, data, info.num_elements(), out, where);
    return;  // unreachable: dequantize refused the type
  }
  constexpr int64_t kPieceElements = int64_t{1} << 18;
  const int64_t piece =
      std::max<int64_t>(1, kPieceElements / traits->block_size);
  const int64_t n_blocks = info.num_elements() / traits->block_size;
  at::parallel_for(0, n_blocks, piece, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; b += piece) {
      const int64_t e = std::min(end, b + piece);
      gguf::dequantize(info.type, data + b * traits->type_size,
                       (e - b) * traits->block_size,
                       out + b * traits->block_size, where);
    }
  });
}

}  // namespace

std::vector<std::string> gguf_supported_architectures() {
  std::vector<std::string> names;
  for (const Architecture& a : architectures()) {
    names.emplace_back(a.gguf_name);
  }
  return names;
}

json gguf_config(const gguf::GgufFile& file) {
  const std::string arch = file.get_string("general.architecture");
  const Architecture& spec = find_architecture(file, arch);
  // transformers tells Mistral from LLaMA (both "llama" in llama.cpp) only
  // by the model's name, and then renames the keys and string values.
  std::string model_type = arch;
  if (arch == "llama" && file.find_string("general.name") == "mistral") {
    model_type = "mistral";
  }

  json config = json::object();
  bool has_output = false;
  for (const gguf::TensorInfo& t : file.tensors()) {
    has_output = has_output || t.name == "output.weight";
  }
  config["tie_word_embeddings"] = !has_output;
  auto copy = [&](const std::string& key, const char* field) {
    if (!file.has(key)) {
      return;
    }
    json value = config_value(file.get(key));
    if (value.is_string() && model_type != arch) {
      std::string s = value.get<std::string>();
      replace_all(s, arch, model_type);
      value = s;
    }
    config[field] = std::move(value);
  };
  for (const NamePair& p : kCommonConfig) {
    copy(p.gguf, p.hf);
  }
  for (const NamePair& p : spec.config) {
    copy(arch + "." + p.gguf, p.hf);
  }
  // GPT-2 files carry no vocab_size: transformers counts the tokens.
  if (!config.contains("vocab_size") && file.has("tokenizer.ggml.tokens")) {
    config["vocab_size"] = file.get("tokenizer.ggml.tokens").size();
  }
  config["architectures"] = json::array(
      {model_type == "mistral" ? "MistralForCausalLM" : spec.hf_class});
  return config;
}

GgufCheckpoint load_gguf_checkpoint(const fs::path& path,
                                    c10::ScalarType dtype) {
  const gguf::GgufFile file = gguf::GgufFile::open(path);
  const std::string where = where_of(file);
  GgufCheckpoint out;
  out.config = gguf_config(file);
  const Architecture& spec =
      find_architecture(file, file.get_string("general.architecture"));
  auto config_int = [&](const char* key) -> int64_t {
    if (!out.config.contains(key)) {
      return 0;
    }
    const json& v = out.config[key];
    if (!v.is_number_integer()) {
      throw std::runtime_error(
          error_message(where, std::string(key) + " as one integer", v.dump(),
                        "per-layer head counts are not supported"));
    }
    return v.get<int64_t>();
  };
  const int64_t n_head = config_int("num_attention_heads");
  const int64_t n_kv_head = config_int("num_key_value_heads");

  for (const gguf::TensorInfo& info : file.tensors()) {
    if (std::find(std::begin(kIgnoredTensors), std::end(kIgnoredTensors),
                  info.name) != std::end(kIgnoredTensors)) {
      continue;
    }
    const std::string name = hf_name(spec, info.name);
    const std::string tensor_where = where + " tensor '" + info.name + "'";
    if (name.empty()) {
      throw std::runtime_error(error_message(
          where,
          "tensor names of the '" + std::string(spec.gguf_name) +
              "' architecture (token_embd, blk.N.attn_q, ...)",
          "'" + info.name + "'",
          "the file holds a variant of the architecture this loader does "
          "not map"));
    }
    const int64_t n = info.num_elements();
    at::Tensor t = at::empty({n}, at::kFloat);
    dequantize_parallel(info, file.tensor_data(info), t.data_ptr<float>(),
                        tensor_where);
    // ggml lists ne[0] (contiguous) first; torch the other way round.
    const std::vector<int64_t> shape(info.shape.rbegin(), info.shape.rend());
    t = t.view(shape);

    const bool is_q = info.name.find(".attn_q.") != std::string::npos;
    const bool is_k = info.name.find(".attn_k.") != std::string::npos;
    // transformers un-permutes only when both head counts are known.
    if (spec.layout == Layout::kLlamaRope && (is_q || is_k) && n_head > 0 &&
        n_kv_head > 0) {
      t = unpermute_rope_rows(t, is_q ? n_head : n_kv_head, tensor_where);
    }
    if (spec.layout == Layout::kGpt2Conv1D && t.dim() == 2 &&
        (name.find(".attn.c_") != std::string::npos ||
         name.find(".mlp.c_") != std::string::npos)) {
      t = t.t().contiguous();
    }
    if (dtype != at::kFloat) {
      t = t.to(dtype);
    }
    out.state_dict.emplace(name, std::move(t));
  }
  return out;
}

}  // namespace peftcpp::models
