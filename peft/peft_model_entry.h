#pragma once
// PeftModelImpl's per-adapter record, shared by peft_model.cpp (management,
// forward, merging) and peft_model_io.cpp (adapter folders). Not part of the
// public API.

#include <memory>
#include <string>
#include <vector>

#include "peft/adapter.h"
#include "peft/peft_model.h"

namespace peftcpp::peft {

/// One adapter: its config (completed with the defaults it was given), the
/// method and, when it has modules_to_save, the copies of those modules.
struct PeftModelImpl::Entry {
  std::string name;
  AdapterConfig config;
  std::unique_ptr<Adapter> method;
  std::unique_ptr<Adapter> head;  // modules_to_save; may be null

  std::vector<Adapter*> parts() const {
    std::vector<Adapter*> out{method.get()};
    if (head)
      out.push_back(head.get());
    return out;
  }
};

}  // namespace peftcpp::peft
