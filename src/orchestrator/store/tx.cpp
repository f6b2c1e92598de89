#include "orchestrator/store/tx.hpp"

namespace orchestrator::store {

Tx::Tx(soci::session& sql, core::db::Dialect dialect) : sql_(sql) {
  sql_ << (dialect == core::db::Dialect::sqlite ? "BEGIN IMMEDIATE" : "BEGIN");
}

Tx::~Tx() {
  if (done_) return;
  try {
    sql_ << "ROLLBACK";
  } catch (...) {
    // The connection may be broken; nothing more to do.
  }
}

void Tx::commit() {
  sql_ << "COMMIT";
  done_ = true;
}

}  // namespace orchestrator::store
