#pragma once
// Reading `pytorch_model.bin`: the zip format of torch.save (torch >= 1.6),
// which is what transformers writes with safe_serialization=False.
//
// Not through torch::pickle_load: LibTorch 2.11's unpickler turns every
// collections.OrderedDict into None, so it fails on the state dict of any
// nn.Module saved as is (`torch.save(model.state_dict())`, and transformers
// before 4.35 did exactly that), and it does not know _rebuild_tensor_v3
// (float8, uint16/32/64 tensors). So pickle.{h,cpp} has a small pickle
// machine for what torch.save writes, and torch_bin.cpp feeds it the tensor
// records read with caffe2::serialize::PyTorchStreamReader.

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <map>
#include <string>

namespace peftcpp::models {

/// Reads a torch.save zip archive whose top-level object is a dict (or
/// OrderedDict) of name -> tensor into CPU tensors. Tensors that shared a
/// storage in Python share it here too (tied weights, views). Throws
/// std::runtime_error naming the file: for the legacy pre-1.6 format (with
/// the hint to re-save or convert to safetensors), for a damaged archive, and
/// for content other than name -> tensor.
std::map<std::string, at::Tensor> load_torch_bin(
    const std::filesystem::path& path);

}  // namespace peftcpp::models
