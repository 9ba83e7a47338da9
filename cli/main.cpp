// peftcpp: the command-line front door.
//
// Exit codes: 0 success; 1 the input, a file or the model was wrong (the
// message says which, what was expected and what was found); 2 the command
// line itself was wrong.

#include <c10/util/Exception.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "cli/commands.h"

namespace {
int report(const CLI::App& app, const char* message) {
  const auto subs = app.get_subcommands();
  std::fprintf(stderr, "peftcpp%s%s: error: %s\n", subs.empty() ? "" : " ",
               subs.empty() ? "" : subs[0]->get_name().c_str(), message);
  return 1;
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "peftcpp: parameter-efficient fine-tuning of Hugging Face models in C++"};
  app.set_version_flag("--version", "peftcpp " PEFTCPP_VERSION);
  app.require_subcommand(1);
  peftcpp::cli::add_info_command(app);
  peftcpp::cli::add_predict_command(app);
  peftcpp::cli::add_merge_command(app);
  peftcpp::cli::add_tokenize_command(app);
  peftcpp::cli::add_train_command(app);
  peftcpp::cli::add_eval_command(app);
  peftcpp::cli::add_generate_command(app);
  try {
    app.parse(argc, argv);  // runs the chosen subcommand's callback
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints help / version / the usage error
    return code == 0 ? 0 : 2;
  } catch (const c10::Error& e) {
    // LibTorch's own checks: the message without the C++ backtrace.
    return report(app, e.what_without_backtrace());
  } catch (const std::exception& e) {
    return report(app, e.what());
  }
  return 0;
}
