#pragma once
// Command-line options of our binaries (CLI11): a setting is a flag with a matching environment
// variable, documented in --help with its default (README "Configuration").

#include <algorithm>
#include <iostream>
#include <optional>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>

namespace apps {

/// Parses the command line like CLI11_PARSE, except that a word where a subcommand belongs and
/// that names none is reported as such ("unknown subcommand 'user frob'; expected one of: add,
/// list, ...") instead of CLI11's "A subcommand is required". Returns the exit code when the
/// program should end now (--help: 0; errors: CLI11's non-zero code, message on stderr), or
/// nullopt to go on.
inline std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    return std::nullopt;
  } catch (const CLI::ParseError& e) {
    // The deepest subcommand given, and what was left over after it.
    CLI::App* at = &app;
    std::string path;
    for (auto subs = at->get_subcommands(); !subs.empty(); subs = at->get_subcommands()) {
      at = subs.front();
      path += at->get_name() + " ";
    }
    const auto choices = at->get_subcommands([](CLI::App*) { return true; });
    const auto left = app.remaining(true);  // with fallthrough, a subcommand's leftover lands in its parent
    const bool not_an_option = !left.empty() && !left.front().empty() && left.front().front() != '-';
    if (!choices.empty() && not_an_option && (e.get_name() == "RequiredError" || e.get_name() == "ExtrasError")) {
      std::string names;
      for (const auto* c : choices) names += (names.empty() ? "" : ", ") + c->get_name();
      std::cerr << app.get_name() << ": unknown subcommand '" << path << left.front() << "'; expected one of: " << names
                << " (see " << app.get_name() << " " << path << "--help)\n";
      return static_cast<int>(CLI::ExitCodes::ExtrasError);
    }
    return app.exit(e);
  }
}

/// Adds option `flag` (e.g. "--port") to `app`, bound to `value`, also read from the environment
/// variable `env` (a flag given on the command line wins over it), with `help` and the current
/// content of `value` shown as its default in --help (nothing for an empty string). Returns the
/// option, for what only some options have: `->check(CLI::Range(0, 65535))`.
template <class T>
CLI::Option* env_option(CLI::App& app, const std::string& flag, const std::string& env, T& value,
                        const std::string& help) {
  return app.add_option(flag, value, help)->envname(env)->capture_default_str();
}

/// The `--io-threads` value 0 resolves to: half the processors the OS reports online
/// (std::thread::hardware_concurrency, not a cgroup CPU quota), at least 1. Both services run two
/// I/O contexts of that many threads (the HTTP server's and the runtime's), so together they use
/// one I/O thread per processor; more threads than processors only add wake-ups and context
/// switches between them (docs/benchmarks.md "I/O threads").
inline int auto_io_threads() { return std::max(1, static_cast<int>(std::thread::hardware_concurrency() / 2)); }

}  // namespace apps
