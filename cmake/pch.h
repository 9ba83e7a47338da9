// Precompiled header for LibTorch-heavy translation units (library sources
// and tests). Parsing <torch/torch.h> takes tens of seconds on a small
// machine; compiling it once per target family keeps the build short.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>
