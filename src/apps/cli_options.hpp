#pragma once
// Command-line options of our binaries (CLI11): a setting is a flag with a matching environment
// variable, documented in --help with its default (README "Configuration").

#include <string>

#include <CLI/CLI.hpp>

namespace apps {

/// Adds option `flag` (e.g. "--port") to `app`, bound to `value`, also read from the environment
/// variable `env` (a flag given on the command line wins over it), with `help` and the current
/// content of `value` shown as its default in --help (nothing for an empty string). Returns the
/// option, for what only some options have: `->check(CLI::Range(0, 65535))`.
template <class T>
CLI::Option* env_option(CLI::App& app, const std::string& flag, const std::string& env, T& value,
                        const std::string& help) {
  return app.add_option(flag, value, help)->envname(env)->capture_default_str();
}

}  // namespace apps
