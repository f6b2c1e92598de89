// The three-way merge that applies a proposal to a draft:
// orchestrator::domain::merge_proposal and proposal_changes
// (src/orchestrator/domain/merge.hpp). Properties: the changes are exactly the generated
// files that are new or differ from the base; a path conflicts exactly when the draft and
// the proposal both changed it, differently; the merged tree is the draft with every
// change applied; merging into an unchanged draft never conflicts; merging again into the
// merged tree is conflict-free and changes nothing.
// Input: three small file trees (base, generated, current) decoded with FuzzedDataProvider.
#include <algorithm>

#include <fuzzer/FuzzedDataProvider.h>

#include "core/files.hpp"
#include "fuzz_common.hpp"
#include "orchestrator/domain/merge.hpp"

namespace {

using orchestrator::domain::FileEntry;
using orchestrator::domain::FileMap;

const char* const kPaths[] = {"/THE_SPEC/plan.md", "/THE_CAST/Writer.md", "/definition.json", "/a", "/b"};
const char* const kTexts[] = {"", "a\n", "a\nb\n", "a\nb", "b\n", "# Plan\n"};

FileMap tree(FuzzedDataProvider& in) {
  FileMap m;
  const int n = in.ConsumeIntegralInRange<int>(0, 5);
  for (int i = 0; i < n; ++i) {
    const std::string path = kPaths[in.ConsumeIntegralInRange<std::size_t>(0, std::size(kPaths) - 1)];
    const std::string text = in.ConsumeBool() ? kTexts[in.ConsumeIntegralInRange<std::size_t>(0, std::size(kTexts) - 1)]
                                              : in.ConsumeRandomLengthString(16);
    m[path] = FileEntry{core::files::split_lines(text), in.ConsumeBool() ? "t1" : "t2", "t3"};
  }
  return m;
}

const FileEntry* at(const FileMap& m, const std::string& p) {
  const auto it = m.find(p);
  return it == m.end() ? nullptr : &it->second;
}

bool same(const FileEntry* a, const FileEntry* b) {
  return (!a && !b) || (a && b && a->content == b->content);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  const FileMap base = tree(in), generated = tree(in), current = tree(in);
  const auto r = orchestrator::domain::merge_proposal(base, generated, current);

  for (const auto& [path, f] : generated) {
    const bool changed = !same(at(base, path), &f);
    FUZZ_CHECK(r.changes.count(path) == (changed ? 1u : 0u), "changes: " + path);
  }
  for (const auto& [path, change] : r.changes) {
    FUZZ_CHECK(change && generated.count(path), "a change not from the generated files: " + path);
    const bool draft_changed = !same(at(base, path), at(current, path));
    const bool conflict = draft_changed && !same(&*change, at(current, path));
    FUZZ_CHECK(conflict == std::binary_search(r.conflicts.begin(), r.conflicts.end(), path), "conflict: " + path);
    FUZZ_CHECK(same(at(r.merged, path), &*change), "merged tree lacks the change at " + path);
  }
  FUZZ_CHECK(std::is_sorted(r.conflicts.begin(), r.conflicts.end()), "conflicts are not sorted");
  for (const auto& [path, f] : current)
    if (!r.changes.count(path)) FUZZ_CHECK(same(at(r.merged, path), &f), "an unchanged path was touched: " + path);
  for (const auto& [path, f] : r.merged)
    FUZZ_CHECK(current.count(path) || r.changes.count(path), "merged tree has an unknown path: " + path);

  FUZZ_CHECK(orchestrator::domain::merge_proposal(base, generated, base).conflicts.empty(),
             "a proposal conflicts with the unchanged draft");
  const auto again = orchestrator::domain::merge_proposal(base, generated, r.merged);
  FUZZ_CHECK(again.conflicts.empty(), "merging twice conflicts");
  FUZZ_CHECK(again.merged.size() == r.merged.size(), "merging twice changes the tree");
  for (const auto& [path, f] : r.merged) FUZZ_CHECK(same(at(again.merged, path), &f), "merging twice changes " + path);
  return 0;
}
