#pragma once
// Workflow templates: directories under <config>/templates/<name>/ whose files become a
// new workflow's draft (path "/<relative path>"). Shipped: "single-agent", "multi-agent".

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "orchestrator/domain/files.hpp"

namespace orchestrator::domain {

/// Finds the config directory: $CONFIG_DIR, <exe>/../../config, ./config,
/// /usr/share/agentic-ide/config (first that exists). Throws std::runtime_error listing
/// the places tried when none exists.
std::filesystem::path find_config_dir();

/// Immutable set of templates loaded at construction. Thread-safe.
class TemplateLibrary {
 public:
  /// Loads every subdirectory of `templates_dir` (regular files only, UTF-8 text; file
  /// timestamps = load time). Throws std::runtime_error if the directory is unreadable or a
  /// file path is invalid.
  explicit TemplateLibrary(const std::filesystem::path& templates_dir);
  /// From find_config_dir() / "templates".
  static TemplateLibrary load_default();

  /// Sorted template names.
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const { return templates_.count(name) != 0; }
  /// Files of template `name`; throws InvalidError("template", ...) naming the known ones.
  const FileMap& files(const std::string& name) const;

 private:
  std::map<std::string, FileMap> templates_;
};

}  // namespace orchestrator::domain
