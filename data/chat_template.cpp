#include "data/chat_template.h"

#include <stdexcept>

#include "common/error.h"
#include "data/chat_template_ast.h"
#include "data/chat_template_builtins.h"
#include "data/chat_template_lexer.h"
#include "data/chat_template_parser.h"
#include "data/chat_template_render.h"

namespace peftcpp::data {

ChatTemplate::ChatTemplate(std::string_view source)
    : source_(source), normalized_(jinja::normalize_template_source(source)) {
  body_ = jinja::parse_template(normalized_);
  jinja::check_names(body_, normalized_);
}

ChatTemplate::~ChatTemplate() = default;
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages,
                                 bool add_generation_prompt,
                                 const std::string& bos_token,
                                 const std::string& eos_token,
                                 const nlohmann::json& extra) const {
  if (!extra.is_object())
    throw std::invalid_argument(
        error_message("chat_template", "a JSON object of extra variables",
                      std::string(extra.type_name())));
  using jinja::Value;
  jinja::List list;
  list.reserve(messages.size());
  for (const ChatMessage& m : messages) {
    auto d = std::make_shared<jinja::Dict>();
    d->items = {{"role", Value::string(m.role)},
                {"content", Value::string(m.content)}};
    list.push_back(Value::dict(std::move(d)));
  }
  // What transformers' render_jinja_template passes: tools and documents
  // are None unless given.
  jinja::Dict vars;
  vars.items = {
      {"messages", Value::list(std::move(list))},
      {"tools", Value::none()},
      {"documents", Value::none()},
      {"add_generation_prompt", Value::boolean(add_generation_prompt)},
      {"bos_token", Value::string(bos_token)},
      {"eos_token", Value::string(eos_token)}};
  for (const auto& [k, v] : extra.items())
    vars.set(k, jinja::from_json(v));
  return jinja::render_body(body_, normalized_, vars);
}

std::string ChatTemplate::render_json(const nlohmann::json& context) const {
  if (!context.is_object())
    throw std::invalid_argument(
        error_message("chat_template", "a JSON object of variables",
                      std::string(context.type_name())));
  const jinja::Value vars = jinja::from_json(context);
  return jinja::render_body(body_, normalized_, vars.as_dict());
}

}  // namespace peftcpp::data
