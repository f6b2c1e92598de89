#include "orchestrator/domain/templates.hpp"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "core/util.hpp"
#include "orchestrator/domain/error.hpp"

namespace orchestrator::domain {

namespace fs = std::filesystem;

fs::path find_config_dir() {
  std::vector<fs::path> tried;
  if (const char* env = std::getenv("CONFIG_DIR"); env && *env) tried.emplace_back(env);
  std::error_code ec;
  const auto exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) tried.push_back(exe.parent_path() / ".." / ".." / "config");
  tried.emplace_back("config");
  tried.emplace_back("/usr/share/agentic-ide/config");
  std::string list;
  for (const auto& p : tried) {
    if (fs::is_directory(p, ec)) return fs::weakly_canonical(p, ec);
    list += (list.empty() ? "" : ", ") + p.string();
  }
  throw std::runtime_error("config directory not found (set CONFIG_DIR); tried: " + list);
}

TemplateLibrary::TemplateLibrary(const fs::path& dir) {
  if (!fs::is_directory(dir)) throw std::runtime_error("templates directory not found: " + dir.string());
  const std::string now = core::now_rfc3339();
  for (const auto& t : fs::directory_iterator(dir)) {
    if (!t.is_directory()) continue;
    FileMap files;
    for (const auto& f : fs::recursive_directory_iterator(t.path())) {
      if (!f.is_regular_file()) continue;
      const std::string path = "/" + fs::relative(f.path(), t.path()).generic_string();
      validate_path(path, "template");
      std::ifstream in(f.path(), std::ios::binary);
      if (!in) throw std::runtime_error("cannot read template file " + f.path().string());
      std::ostringstream text;
      text << in.rdbuf();
      FileEntry e;
      e.content = core::files::split_lines(text.str());  // the shared line model: a final '\n' is a final ""
      if (auto why = core::files::check_content(e.content); !why.empty())
        throw std::runtime_error("template file " + f.path().string() + ": " + why);
      e.created_at = e.modified_at = now;
      files.emplace(path, std::move(e));
    }
    templates_.emplace(t.path().filename().string(), std::move(files));
  }
}

TemplateLibrary TemplateLibrary::load_default() { return TemplateLibrary(find_config_dir() / "templates"); }

std::vector<std::string> TemplateLibrary::names() const {
  std::vector<std::string> n;
  for (const auto& [k, v] : templates_) n.push_back(k);
  return n;
}

const FileMap& TemplateLibrary::files(const std::string& name) const {
  const auto it = templates_.find(name);
  if (it == templates_.end()) {
    std::string known;
    for (const auto& n : names()) known += (known.empty() ? "" : ", ") + n;
    throw InvalidError("template", "unknown template '" + name + "'; known templates: " + known);
  }
  return it->second;
}

}  // namespace orchestrator::domain
