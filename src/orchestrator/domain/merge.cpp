// Three-way merge of a proposal into a draft (merge.hpp).
#include "orchestrator/domain/merge.hpp"

namespace orchestrator::domain {

namespace {

bool same(const std::optional<FileEntry>& a, const FileEntry* b) {
  if (!a) return b == nullptr;
  return b != nullptr && a->same_content(*b);
}

}  // namespace

FileChanges proposal_changes(const FileMap& base, const FileMap& generated) {
  FileChanges out;
  for (const auto& [path, f] : generated) {
    const auto b = base.find(path);
    if (b == base.end() || !b->second.same_content(f)) out[path] = f;
  }
  return out;
}

MergeResult merge_proposal(const FileMap& base, const FileMap& generated, const FileMap& current) {
  MergeResult r;
  r.changes = proposal_changes(base, generated);
  for (const auto& [path, change] : r.changes) {
    const auto b = base.find(path);
    const auto c = current.find(path);
    const FileEntry* base_f = b == base.end() ? nullptr : &b->second;
    const FileEntry* cur_f = c == current.end() ? nullptr : &c->second;
    const bool draft_changed = base_f ? !same(*base_f, cur_f) : cur_f != nullptr;
    if (!draft_changed) continue;
    if (!same(change, cur_f)) r.conflicts.push_back(path);  // both changed, differently
  }
  r.merged = current;
  for (const auto& [path, change] : r.changes) {
    if (change) r.merged[path] = *change;
    else r.merged.erase(path);
  }
  return r;
}

}  // namespace orchestrator::domain
