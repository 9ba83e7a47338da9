#pragma once
// Chat templates: the Jinja templates instruct models ship
// (tokenizer_config.json "chat_template", GGUF tokenizer.chat_template),
// rendered as transformers' tokenizer.apply_chat_template(messages,
// tokenize=False, add_generation_prompt=...) renders them, without Python.
//
// A small Jinja interpreter for the subset chat templates use, under
// transformers' environment (ImmutableSandboxedEnvironment, trim_blocks,
// lstrip_blocks, loopcontrols, its tojson/raise_exception/strftime_now/
// namespace): {{ }}, {% %}, {# #}, whitespace control, if/elif/else,
// for/else with loop.*, break/continue, set (also namespace attributes and
// set blocks), macros, generation blocks, Python-like expressions, str and
// dict methods, and the usual filters and tests. Parsing happens once in the
// constructor; render() walks the tree and is safe to call from many
// threads.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace peftcpp::data {

/// One turn of a conversation.
struct ChatMessage {
  std::string role;
  std::string content;
};

namespace jinja {
struct Stmt;
}

/// A parsed template; parse once, render many times; thread-safe render.
class ChatTemplate {
 public:
  /// Parses `source`. Throws std::runtime_error "[chat_template] expected
  /// ..., got ... at line L column C" for syntax it cannot parse and
  /// constructs it does not support (named: unknown filter, test or
  /// statement, recursive loops, ...).
  explicit ChatTemplate(std::string_view source);
  ~ChatTemplate();
  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;

  /// apply_chat_template(messages, tokenize=False, add_generation_prompt):
  /// the variables messages, add_generation_prompt, bos_token, eos_token,
  /// tools and documents (None), then each key of `extra` (a JSON object)
  /// over them. raise_exception('msg') in the template throws
  /// std::runtime_error with exactly msg; other failures name their
  /// position.
  std::string render(
      const std::vector<ChatMessage>& messages, bool add_generation_prompt,
      const std::string& bos_token, const std::string& eos_token,
      const nlohmann::json& extra = nlohmann::json::object()) const;

  /// Renders with the keys of a JSON object as the variables, e.g.
  /// {"messages": [{"role": ..., "content": ..., "tool_calls": ...}],
  /// "add_generation_prompt": true, "bos_token": "<s>"}, for templates that
  /// read more than role and content. Keys are seen in sorted order
  /// (nlohmann::json objects sort them), which only shows in tojson and dict
  /// iteration.
  std::string render_json(const nlohmann::json& context) const;

  /// The template source as given.
  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::string normalized_;
  std::vector<std::unique_ptr<jinja::Stmt>> body_;
};

}  // namespace peftcpp::data
