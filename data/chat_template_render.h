#pragma once
// Walks a parsed chat template with a set of variables and writes the text.

#include <string>

#include "data/chat_template_ast.h"

namespace peftcpp::data::jinja {

/// Checks that every filter and test the template names exists, as jinja2
/// does when it compiles; throws "[chat_template] expected a known filter,
/// got 'name' at line L column C".
void check_names(const Body& body, const std::string& source);

/// Renders `body` with `variables` (messages, bos_token, ...) as the top
/// scope. Errors carry the position of the expression that failed, except
/// raise_exception's TemplateRaised, whose message is the template's own.
std::string render_body(const Body& body, const std::string& source,
                        const Dict& variables);

}  // namespace peftcpp::data::jinja
