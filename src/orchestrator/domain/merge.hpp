#pragma once
// Applying a proposal to a draft that may have changed since the refinement started:
// a three-way merge per file of the proposal's base (the draft's files when the run
// began), the files the run generated, and the draft's files now. Pure (fuzzed by
// fuzz/fuzz_merge.cpp); ProposalService::approve does the locking and the writes.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "orchestrator/domain/files.hpp"

namespace orchestrator::domain {

/// Path -> the entry a proposal writes there. The optional is always engaged today and is
/// kept for a future explicit-deletion marker (nullopt = delete).
using FileChanges = std::map<std::string, std::optional<FileEntry>>;

/// The proposal's own changes: path -> new entry for every path of `generated` that is new
/// or differs in content from `base`. Upserts only (the engine's tools cannot delete, so a
/// path missing from `generated` means "not carried", never "deleted": treating absence as
/// deletion would wipe drafts on approve).
FileChanges proposal_changes(const FileMap& base, const FileMap& generated);

/// Result of merge_proposal.
struct MergeResult {
  FileChanges changes;                 ///< proposal_changes(base, generated)
  std::vector<std::string> conflicts;  ///< paths changed in the draft and by the proposal, differently; sorted
  FileMap merged;                      ///< `current` with every change applied (timestamps as in the change)
};

/// Three-way merge per file, for every path the proposal changes: when the draft's file
/// still has the base content (or is still absent where the base had none) the change
/// applies; when the draft changed it too, the change applies only if both arrived at the
/// same content (then it is a no-op), otherwise the path is a conflict. Paths the proposal
/// does not change keep the draft's file. Callers apply nothing when `conflicts` is not
/// empty.
MergeResult merge_proposal(const FileMap& base, const FileMap& generated, const FileMap& current);

}  // namespace orchestrator::domain
