// Workflow name rules (src/orchestrator/domain/workflows.hpp validate_workflow_name), without a
// database: the services tests cover create/update/rename end to end.
#include <gtest/gtest.h>

#include "orchestrator/domain/error.hpp"
#include "orchestrator/domain/workflows.hpp"

namespace {

using orchestrator::domain::InvalidError;
using orchestrator::domain::validate_workflow_name;

/// The message validate_workflow_name throws for `name` (field "name"), or "" when it accepts it.
std::string refusal(const std::string& name) {
  try {
    validate_workflow_name(name);
  } catch (const InvalidError& e) {
    EXPECT_EQ(e.field(), "name");
    return e.what();
  }
  return "";
}

TEST(WorkflowNames, BlankNamesAreRefused) {
  const std::string blank = "name must not be blank: give it at least one visible character";
  // ASCII spaces, NBSP, ideographic space, en/em spaces, zero-width space and BOM.
  for (const std::string name : {" ", "   ", "\u00a0", "\u3000\u3000", " \u2002\u2003 ", "\u200b", "\ufeff \u202f"})
    EXPECT_EQ(refusal(name), blank) << name;
  for (const std::string name : {"a", " a ", "\u00a0x", "\u3000\u5de5", "Research crew", "\u00e9"})
    EXPECT_EQ(refusal(name), "") << name;
}

TEST(WorkflowNames, LimitsAreBytes) {
  EXPECT_EQ(refusal(""), "name must be 1 to 200 bytes of UTF-8 (it has 0)");
  EXPECT_EQ(refusal(std::string(200, 'a')), "");
  std::string e100;
  for (int i = 0; i < 100; ++i) e100 += "\u00e9";  // 100 characters, 200 bytes
  EXPECT_EQ(refusal(e100), "");
  EXPECT_EQ(refusal(e100 + "\u00e9"), "name must be 1 to 200 bytes of UTF-8 (it has 202)");
  EXPECT_EQ(refusal("a\tb"), "name must not contain control characters (NUL, line breaks, tabs, ...)");
}

}  // namespace
