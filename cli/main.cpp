// peftcpp: the command-line front door.
//
// Exit codes: 0 success; 1 the input, a file or the model was wrong (the
// message says which, what was expected and what was found); 2 the command
// line itself was wrong.

#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{
      "peftcpp: parameter-efficient fine-tuning of Hugging Face models in C++"};
  app.set_version_flag("--version", "peftcpp " PEFTCPP_VERSION);
  app.require_subcommand(1);
  peftcpp::cli::add_info_command(app);
  peftcpp::cli::add_predict_command(app);
  peftcpp::cli::add_tokenize_command(app);
  try {
    app.parse(argc, argv);  // runs the chosen subcommand's callback
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints help / version / the usage error
    return code == 0 ? 0 : 2;
  } catch (const std::exception& e) {
    const auto* sub = app.get_subcommands().empty() ? nullptr
                                                    : app.get_subcommands()[0];
    std::fprintf(stderr, "peftcpp%s%s: error: %s\n", sub ? " " : "",
                 sub ? sub->get_name().c_str() : "", e.what());
    return 1;
  }
  return 0;
}
