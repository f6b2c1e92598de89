#pragma once
// Per-user cap on model work in flight. Every refinement and every workflow run
// runs an agent on the Spec Engine and spends model tokens until it ends, so a user may
// have at most N of them in flight at once, counted in the database (not per replica).
// The cap is shared by all kinds: a user with N refinements processing cannot start a run.

#include <string>


#include "orchestrator/store/unit_of_work.hpp"

namespace orchestrator::domain {

/// What a user is about to start on the engine.
enum class RunKind {
  refinement,  ///< POST /api/workflows/{id}/refinements (a proposal in `processing`)
  run,         ///< POST /api/workflows/{id}/runs (a run in `processing`, domain/runs.hpp)
};

/// "refinement" | "run".
const char* to_string(RunKind kind);

/// Seconds suggested in Retry-After when the cap refuses work (a refinement typically ends
/// within a minute; the client should poll its running proposals rather than retry blindly).
inline constexpr long long kRunSlotRetryAfterSeconds = 30;

/// Policy name of the cap in the RateLimit/RateLimit-Policy fields and in "violated-policies".
inline constexpr const char* kRunSlotPolicy = "concurrent-runs";

/// Admits one more `kind` for `user_id` or throws LimitExceededError (429): in flight = the
/// user's proposals and runs in `processing`. `limit` <= 0 = no cap.
/// Must run inside the store::Tx that records the new work, after which the count includes
/// it: the users row is locked first (store::users::lock), so concurrent starts by one user
/// on any replica are serialised and the cap is exact on SQLite and PostgreSQL.
/// The error's details: {"kind", "limit", "in_progress", "violated-policies": ["concurrent-runs"]}.
void require_run_slot(store::UnitOfWork& uow, core::db::Dialect dialect, const std::string& user_id, RunKind kind,
                      int limit);

}  // namespace orchestrator::domain
