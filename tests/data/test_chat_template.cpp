// Chat templates against transformers' apply_chat_template(tokenize=False)
// byte for byte: SmolLM2-135M-Instruct's real template (from its GGUF),
// templates in the published shapes of ChatML/Qwen2, Qwen2.5 (tools),
// Llama-3, Llama-2, Mistral, Zephyr and Gemma, one small template per Jinja
// construct, and the errors (tests/fixtures/make_chat_template.py).

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <future>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/chat_template.h"
#include "tests/test_paths.h"

using nlohmann::json;
using peftcpp::data::ChatMessage;
using peftcpp::data::ChatTemplate;

namespace {

const json& fixture() {
  static const json f = [] {
    const auto path =
        peftcpp::testing::fixture_dir() / "chat_template" / "cases.json";
    std::ifstream in(path);
    if (!in)
      throw std::runtime_error("cannot read fixture " + path.string() +
                               " (run tests/fixtures/make_chat_template.py)");
    return json::parse(in);
  }();
  return f;
}

std::vector<ChatMessage> to_messages(const json& j) {
  std::vector<ChatMessage> out;
  for (const auto& m : j)
    out.push_back(
        {m.at("role").get<std::string>(), m.at("content").get<std::string>()});
  return out;
}

// Renders one fixture case; the rendered text, or "ERROR: <message>".
std::string render_case(const ChatTemplate& t, const json& c) {
  try {
    return t.render(to_messages(c.at("messages")),
                    c.at("add_generation_prompt").get<bool>(),
                    c.at("bos_token").get<std::string>(),
                    c.at("eos_token").get<std::string>());
  } catch (const std::runtime_error& e) {
    return std::string("ERROR: ") + e.what();
  }
}

std::string expected_of(const json& c) {
  return c.contains("expected") ? c.at("expected").get<std::string>()
                                : "ERROR: " + c.at("error").get<std::string>();
}

// Checks every case of one template; returns how many it compared.
int check_template_cases(const std::string& name) {
  const ChatTemplate t(fixture().at("templates").at(name).get<std::string>());
  int n = 0;
  for (const auto& c : fixture().at("cases")) {
    if (c.at("template") != name || c.at("conversation") == "tools")
      continue;
    INFO(name << " / " << c.at("conversation").get<std::string>()
              << " / add_generation_prompt="
              << c.at("add_generation_prompt").get<bool>());
    CHECK(render_case(t, c) == expected_of(c));
    ++n;
  }
  return n;
}

}  // namespace

TEST_CASE(
    "SmolLM2's real chat template renders every conversation as "
    "transformers does",
    "[data][chat_template]") {
  const std::string source =
      fixture().at("templates").at("smollm2").get<std::string>();
  REQUIRE(source.find("SmolLM") != std::string::npos);
  CHECK(check_template_cases("smollm2") == 16);
}

TEST_CASE(
    "ChatML, Llama-3, Llama-2, Mistral, Zephyr, Gemma and Qwen2.5 "
    "shaped templates render as transformers does",
    "[data][chat_template]") {
  for (const char* name : {"chatml", "qwen2_5", "llama3", "llama2", "mistral",
                           "zephyr", "gemma"}) {
    INFO(name);
    CHECK(check_template_cases(name) == 16);
  }
}

TEST_CASE("raise_exception in a template throws its own message",
          "[data][chat_template]") {
  const ChatTemplate llama2(
      fixture().at("templates").at("llama2").get<std::string>());
  const std::vector<ChatMessage> bad = {{"user", "one"}, {"user", "two"}};
  CHECK_THROWS_WITH(
      llama2.render(bad, false, "<s>", "</s>"),
      "Conversation roles must alternate user/assistant/user/assistant/...");
  const ChatTemplate gemma(
      fixture().at("templates").at("gemma").get<std::string>());
  CHECK_THROWS_WITH(
      gemma.render({{"system", "s"}, {"user", "u"}}, true, "<bos>", "<eos>"),
      "System role not supported");
  // The fixture holds transformers' message for each refused conversation.
  int refused = 0;
  for (const auto& c : fixture().at("cases"))
    refused += c.contains("error") ? 1 : 0;
  CHECK(refused == 14);
}

TEST_CASE(
    "a Qwen2.5 shaped template renders tools and tool calls from JSON "
    "messages as transformers does",
    "[data][chat_template]") {
  const ChatTemplate t(
      fixture().at("templates").at("qwen2_5").get<std::string>());
  int n = 0;
  for (const auto& c : fixture().at("cases")) {
    if (c.at("conversation") != "tools")
      continue;
    json context = {{"messages", c.at("messages")},
                    {"tools", c.at("tools")},
                    {"documents", nullptr},
                    {"add_generation_prompt", c.at("add_generation_prompt")},
                    {"bos_token", c.at("bos_token")},
                    {"eos_token", c.at("eos_token")}};
    CHECK(t.render_json(context) == c.at("expected").get<std::string>());
    ++n;
  }
  CHECK(n == 2);
}

TEST_CASE("render passes extra variables and tools/documents as None",
          "[data][chat_template]") {
  const ChatTemplate t(
      "{{ tools is none }} {{ documents is none }} {{ custom }} "
      "{{ bos_token }}{{ messages | length }}{{ add_generation_prompt }}");
  CHECK(t.render({{"user", "x"}}, true, "<s>", "</s>") ==
        "True True  <s>1True");
  CHECK(t.render({}, false, "", "", json{{"custom", {1, "a"}}}) ==
        "True True [1, 'a'] 0False");
  CHECK(t.render({}, false, "", "", json{{"tools", json::array()}}) ==
        "False True  0False");
  CHECK_THROWS_AS(t.render({}, false, "", "", json::array()),
                  std::invalid_argument);
}

TEST_CASE(
    "each Jinja construct renders as jinja2 in transformers' "
    "environment does",
    "[data][chat_template]") {
  int compared = 0;
  for (const auto& f : fixture().at("features")) {
    const std::string name = f.at("name");
    INFO("feature " << name << "\ntemplate: " << f.at("template").dump());
    std::string got;
    try {
      const ChatTemplate t(f.at("template").get<std::string>());
      got = t.render_json(f.at("context"));
    } catch (const std::runtime_error& e) {
      got = std::string("ERROR: ") + e.what();
    }
    if (f.contains("expected")) {
      CHECK(got == f.at("expected").get<std::string>());
    } else if (name == "raise_exception") {
      CHECK(got == "ERROR: " + f.at("error").get<std::string>());
    } else {
      // Other failures carry peftcpp's own message with a position.
      CHECK(got.rfind("ERROR: [chat_template] expected", 0) == 0);
      CHECK(got.find(" at line 1 column ") != std::string::npos);
    }
    ++compared;
  }
  CHECK(compared == 49);
}

TEST_CASE(
    "templates jinja2 refuses are refused with a named reason and "
    "position",
    "[data][chat_template]") {
  for (const auto& e : fixture().at("syntax_errors")) {
    const std::string expect = e.at("expect");
    INFO("case " << e.at("name").get<std::string>()
                 << "; jinja2 said: " << e.at("jinja").get<std::string>());
    std::string message = "no error";
    try {
      ChatTemplate t(e.at("template").get<std::string>());
    } catch (const std::runtime_error& err) {
      message = err.what();
    }
    CHECK(message.rfind("[chat_template] expected ", 0) == 0);
    CHECK_THAT(message, Catch::Contains(expect));
  }
}

TEST_CASE("undefined values fail by name when used beyond printing",
          "[data][chat_template]") {
  const ChatTemplate t("{{ messages[0].content.missing.deeper }}");
  CHECK_THROWS_WITH(t.render({{"user", "hi"}}, false, "", ""),
                    Catch::Contains("'str object' has no attribute "
                                    "'missing'") &&
                        Catch::Contains("at line 1 column"));
  const ChatTemplate call("{{ nothing() }}");
  CHECK_THROWS_WITH(call.render({}, false, "", ""),
                    Catch::Contains("'nothing' is undefined"));
}

TEST_CASE("one parsed template renders on several threads at once",
          "[data][chat_template]") {
  const ChatTemplate t(
      fixture().at("templates").at("qwen2_5").get<std::string>());
  const std::vector<ChatMessage> conv = {{"user", "a"}, {"assistant", "b"}};
  const std::string once = t.render(conv, true, "", "");
  std::vector<std::future<bool>> runs;
  for (int i = 0; i < 4; ++i) {
    runs.push_back(std::async(std::launch::async, [&] {
      for (int k = 0; k < 50; ++k) {
        if (t.render(conv, true, "", "") != once)
          return false;
      }
      return true;
    }));
  }
  for (auto& r : runs)
    CHECK(r.get());
}
