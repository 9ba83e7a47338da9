#pragma once
// Parses chat template tokens into statements (jinja2's grammar: operator
// precedence, filters and tests, the block tags transformers' environment
// knows). Unsupported syntax fails here, by name, with its position.

#include <string>

#include "data/chat_template_ast.h"

namespace peftcpp::data::jinja {

/// The statements of a normalized template source
/// (normalize_template_source); throws std::runtime_error
/// "[chat_template] expected ..., got ... at line L column C".
Body parse_template(const std::string& source);

}  // namespace peftcpp::data::jinja
