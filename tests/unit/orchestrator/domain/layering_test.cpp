// Layering: the domain sees units of work, never SOCI. Every domain header (and the store headers
// they use) compiles without SOCI's headers; a header that pulls them in fails this file's build.
#include "orchestrator/domain/access.hpp"
#include "orchestrator/domain/audit.hpp"
#include "orchestrator/domain/diff.hpp"
#include "orchestrator/domain/drafts.hpp"
#include "orchestrator/domain/error.hpp"
#include "orchestrator/domain/files.hpp"
#include "orchestrator/domain/merge.hpp"
#include "orchestrator/domain/proposals.hpp"
#include "orchestrator/domain/refinements.hpp"
#include "orchestrator/domain/run_quota.hpp"
#include "orchestrator/domain/templates.hpp"
#include "orchestrator/domain/users.hpp"
#include "orchestrator/domain/workflows.hpp"
#include "orchestrator/store/cursor.hpp"
#include "orchestrator/store/records.hpp"
#include "orchestrator/store/repositories.hpp"
#include "orchestrator/store/tx.hpp"
#include "orchestrator/store/unit_of_work.hpp"

#if defined(SOCI_H_INCLUDED) || defined(SOCI_SESSION_H_INCLUDED)
#error "a domain or store header includes SOCI: keep SOCI types below the repositories"
#endif

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <type_traits>

// The domain passes units of work along; it cannot name a soci::session (only declared).
TEST(Layering, DomainHeadersCompileWithoutSoci) {
  EXPECT_FALSE((std::is_constructible_v<orchestrator::store::UnitOfWork, int>));
}

// Nor do the domain's sources, or the tracker's (it drives the domain services): SQL and SOCI
// stay in store/ (repositories, Tx, units of work).
TEST(Layering, DomainAndTrackerSourcesUseNoSoci) {
  namespace fs = std::filesystem;
  const fs::path src = fs::path(PROJECT_SOURCE_DIR) / "src/orchestrator";
  int scanned = 0;
  for (const char* dir : {"domain", "tracker"}) {
    for (const auto& entry : fs::directory_iterator(src / dir)) {
      std::ifstream in(entry.path());
      std::stringstream text;
      text << in.rdbuf();
      ++scanned;
      EXPECT_EQ(text.str().find("soci"), std::string::npos) << entry.path() << " mentions SOCI";
    }
  }
  EXPECT_GE(scanned, 20);
}
