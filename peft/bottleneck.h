#pragma once
// Bottleneck adapters as AdapterHub (`adapters` 1.3.0) builds them: Houlsby
// et al. 2019 (double_seq_bn), Pfeiffer et al. 2020 (seq_bn), He et al.
// 2021 (par_bn), in the per-layer adapter slots of the encoders
// (models::SublayerAdapter after attention.output and after output) and of
// GPT-2 / LLaMA-family decoder blocks (models::DecoderAdapterSlot in the two
// residual connections; see peft/bottleneck_decoder.cpp). With h
// the sub-layer's projected output, x its input and LN its LayerNorm, one
// adapter computes (docs/bottleneck_reference.md, every flag):
//
//   sequential: z = original_ln_before ? LN(h + x) : h
//               r = residual_before_ln ? h : z
//               u = s * up(act(down(ln_before ? norm_before(z) : z)))
//               o = dropout(u) [* mean_T(sigmoid(gate(z)))]
//               o = ln_after ? norm_after(o) + r : o + r  (adapter_residual_
//                   before_ln: norm_after(o + r))
//   parallel:   o = dropout(s * up(act(down(x)))) [gated, normed] + h
//   then        original_ln_after ? LN(o + x) : o
//
// so seq_bn = LN(h + up(relu(down(LN(h + x)))) + x), double_seq_bn = LN(h +
// up(swish(down(h))) + x) at both places, par_bn = LN(h + 4 up(relu(down(x)))
// + x). A slot with no enabled adapter computes LN(h + x), the base model.
// Several adapters enabled in one slot run as AdapterHub's Stack, in the
// order they were added. Decoders are pre-norm and AdapterHub passes them no
// LayerNorm: LN is the identity there (h = sub-layer output, x = its input).
//
// Parameters carry AdapterHub's names, so its files load key for key:
// "bert.encoder.layer.0.output.adapters.<name>.adapter_down.0.weight",
// "transformer.h.0.output_adapters.adapters.<name>.adapter_up.weight".

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "models/layers/activation.h"
#include "peft/adapter.h"
#include "peft/adapter_config.h"
#include "peft/adapterhub_folder.h"

namespace peftcpp::peft {

/// The activation a non_linearity name stands for, as AdapterHub reads it
/// ("leakyrelu", else transformers' get_activation(name.lower())); throws
/// std::invalid_argument naming `where` for an unknown name.
models::Activation bottleneck_activation(const std::string& name,
                                         const std::string& where);

/// Throws std::invalid_argument naming `where` for options AdapterHub would
/// not accept (activation, init_weights, scaling_mode, dropout,
/// stochastic_depth).
void validate_bottleneck_config(const BottleneckConfig& config,
                                const std::string& where);

/// The bottleneck size AdapterHub gives layer `layer` of a model with
/// `hidden_size`: max(1, int(hidden_size // reduction_factor)), the factor
/// from reduction_factor_by_layer when the layer is listed. Throws
/// std::invalid_argument for a factor that is not positive.
int64_t bottleneck_size(const BottleneckConfig& config, int64_t hidden_size,
                        int64_t layer);

/// Adds bottleneck adapter `name` to every encoder layer of `ctx.root`
/// (attention.output for mh_adapter, output for output_adapter, layers in
/// leave_out skipped), or to every decoder block (attention_adapters,
/// output_adapters), initialised as AdapterHub initialises it
/// (init_weights) on the device and dtype of the layer. The adapter starts
/// disabled. Throws std::invalid_argument for an unknown non_linearity,
/// init_weights or scaling_mode, a dropout outside [0, 1), a factor that is
/// not positive, a config that puts the adapter nowhere, a name an adapter
/// in the same slots already has, or a root without encoder layers or
/// decoder blocks.
std::unique_ptr<Adapter> add_bottleneck(const AdapterContext& ctx,
                                        const std::string& name,
                                        BottleneckConfig& config);

}  // namespace peftcpp::peft
