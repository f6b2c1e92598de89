#include "orchestrator/store/tx.hpp"

#include <soci/soci.h>

#include "core/db.hpp"

namespace orchestrator::store {

Tx::Tx(UnitOfWork& uow) : uow_(uow), gate_(std::make_unique<core::db::WriteLock>(uow.sql())) {
  core::db::busy_is_unavailable(
      [&] { uow_.sql() << (uow_.dialect() == core::db::Dialect::sqlite ? "BEGIN IMMEDIATE" : "BEGIN"); });
}

Tx::~Tx() {
  if (done_) return;
  try {
    uow_.sql() << "ROLLBACK";
  } catch (...) {
    // The connection may be broken; nothing more to do.
  }
}

void Tx::commit() {
  uow_.sql() << "COMMIT";
  done_ = true;
  gate_->release();
}

}  // namespace orchestrator::store
