#include "peft/hook_containers.h"

namespace peftcpp::peft {

std::shared_ptr<torch::nn::Module> container_of(torch::nn::Module& owner,
                                                const std::string& container) {
  const auto children = owner.named_children();
  if (const auto* found = children.find(container))
    return *found;
  return owner.register_module(container,
                               std::make_shared<torch::nn::Module>(container));
}

void add_to_container(torch::nn::Module& owner, const std::string& container,
                      const std::string& name,
                      std::shared_ptr<torch::nn::Module> module) {
  container_of(owner, container)->register_module(name, std::move(module));
}

at::Tensor add_parameter_to_container(torch::nn::Module& owner,
                                      const std::string& container,
                                      const std::string& name,
                                      const at::Tensor& value) {
  return container_of(owner, container)
      ->register_parameter(name, value, value.requires_grad());
}

void remove_from_container(torch::nn::Module& owner,
                           const std::string& container,
                           const std::string& name) {
  const auto children = owner.named_children();
  const auto* found = children.find(container);
  if (!found)
    return;
  auto& box = **found;
  if (box.named_children().find(name) != nullptr)
    box.unregister_module(name);
  // A Module has no unregister_parameter: parameters are kept in an
  // OrderedDict we can only reach through named_parameters(false); rebuild
  // the container without `name` instead.
  const auto params = box.named_parameters(/*recurse=*/false);
  if (params.find(name) != nullptr) {
    auto rebuilt = std::make_shared<torch::nn::Module>(container);
    for (const auto& item : params) {
      if (item.key() != name)
        rebuilt->register_parameter(item.key(), item.value(),
                                    item.value().requires_grad());
    }
    owner.replace_module(container, rebuilt);
  }
  const auto after = owner.named_children();  // find() points into it
  const auto* now = after.find(container);
  if (now && (*now)->named_children().is_empty() &&
      (*now)->named_parameters(/*recurse=*/false).is_empty())
    owner.unregister_module(container);
}

}  // namespace peftcpp::peft
