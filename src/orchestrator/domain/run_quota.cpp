// Per-user cap on refinements/runs in flight, counted in the database.
#include "orchestrator/domain/run_quota.hpp"

#include "orchestrator/domain/error.hpp"
#include "orchestrator/store/repositories.hpp"
#include "orchestrator/store/runs.hpp"

namespace orchestrator::domain {

const char* to_string(RunKind kind) { return kind == RunKind::run ? "run" : "refinement"; }

void require_run_slot(store::UnitOfWork& uow, core::db::Dialect dialect, const std::string& user_id, RunKind kind,
                      int limit) {
  if (limit <= 0) return;
  store::users::lock(uow, dialect, user_id);
  const long long in_progress =
      store::proposals::count_processing_by_user(uow, user_id) + store::runs::count_processing_by_user(uow, user_id);
  if (in_progress < limit) return;
  const std::string what = to_string(kind);
  throw LimitExceededError(
      "You already have " + std::to_string(in_progress) +
          (in_progress == 1 ? " refinement or run" : " refinements or runs") +
          " in progress, the most one user may have at once (" + std::to_string(limit) +
          "); wait for one to finish or cancel one, then start the " + what + " again.",
      kRunSlotPolicy, limit, kRunSlotRetryAfterSeconds, {{"kind", to_string(kind)}, {"in_progress", in_progress}});
}

}  // namespace orchestrator::domain
