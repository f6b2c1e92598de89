#pragma once
// DomainPort implemented over the orchestrator domain layer (src/orchestrator/{auth,
// domain,store}). Pure mapping: no business rules live here.

#include <memory>
#include <string>

#include "orchestrator/api/app.hpp"
#include "orchestrator/api/domain_port.hpp"
#include "orchestrator/domain/proposals.hpp"

namespace orchestrator::api {

/// Thread-safe (the domain services run their database work as units of work per call).
class DomainAdapter : public DomainPort {
 public:
  /// Borrows `store` (database migrated). `jwt` selects HS256 secret and/or RS256 public key;
  /// `limits` caps refinements in flight per user.
  DomainAdapter(store::Store& store, const JwtSettings& jwt, domain::ProposalLimits limits = {});
  ~DomainAdapter() override;

  /// Creates a user (Argon2id hash); returns its id. Throws domain::InvalidError / ConflictError.
  static std::string create_user(store::Store& store, const std::string& email, const std::string& name,
                                 const std::string& password);

  LoginResult login(const std::string& email, const std::string& password) override;
  nlohmann::json verify_token(const std::string& token) override;
  nlohmann::json templates() override;
  WorkflowView create_workflow(const std::string& user_id, const std::string& name, const std::string& description,
                               const std::optional<std::string>& template_name,
                               const std::optional<nlohmann::json>& files) override;
  store::Page<store::WorkflowRecord> list_workflows(const std::string& user_id, const store::PageRequest& page) override;
  WorkflowView get_workflow(const std::string& user_id, const std::string& workflow_id) override;
  store::WorkflowRecord update_workflow(const std::string& user_id, const std::string& workflow_id,
                                        const std::optional<std::string>& name,
                                        const std::optional<std::string>& description) override;
  std::vector<std::string> delete_workflow(const std::string& user_id, const std::string& workflow_id) override;
  store::Page<store::MemberRecord> list_members(const std::string& user_id, const std::string& workflow_id,
                                                const store::PageRequest& page) override;
  MemberView set_member(const std::string& user_id, const std::string& workflow_id, const std::string& member,
                        const std::string& role) override;
  void remove_member(const std::string& user_id, const std::string& workflow_id, const std::string& member) override;
  ProfileView me(const std::string& user_id) override;
  VersionView get_version(const std::string& user_id, const std::string& workflow_id, long long number) override;
  store::Page<store::ProposalRecord> list_my_proposals(const std::string& user_id,
                                                       const std::vector<store::ProposalStatus>& statuses,
                                                       const store::PageRequest& page) override;
  store::Page<store::VersionRecord> list_versions(const std::string& user_id, const std::string& workflow_id,
                                                  const store::PageRequest& page) override;
  VersionView publish_version(const std::string& user_id, const std::string& workflow_id,
                              std::optional<long long> base_revision) override;
  nlohmann::json deploy(const std::string& user_id, const std::string& workflow_id,
                        std::optional<long long> number) override;
  DraftView get_draft(const std::string& user_id, const std::string& workflow_id) override;
  DraftView ensure_draft(const std::string& user_id, const std::string& workflow_id) override;
  DraftView put_draft_files(const std::string& user_id, const std::string& workflow_id, const nlohmann::json& files,
                            long long base_revision) override;
  void delete_draft(const std::string& user_id, const std::string& draft_id) override;
  bool refinement_key_used(const std::string& user_id, const std::string& key) override;
  ProposalView get_proposal(const std::string& user_id, const std::string& proposal_id) override;
  store::Page<store::ProposalRecord> list_proposals(const std::string& user_id, const std::string& workflow_id,
                                                    const store::PageRequest& page) override;
  std::string proposal_diff(const std::string& user_id, const std::string& proposal_id) override;
  std::pair<ProposalView, DraftView> approve(const std::string& user_id, const std::string& proposal_id) override;
  ProposalView reject(const std::string& user_id, const std::string& proposal_id) override;
  ProposalView cancel(const std::string& user_id, const std::string& proposal_id) override;
  std::optional<std::string> watch_thread(const std::string& user_id, const std::string& thread_id) override;
  domain::StartedRun start_run(const std::string& user_id, const std::string& workflow_id,
                               const domain::StartRunInput& in) override;
  void fail_run(const std::string& thread_id, const std::string& error, domain::FailureKind kind,
                bool delete_thread) override;
  store::RunRecord get_run(const std::string& user_id, const std::string& workflow_id,
                           const std::string& run_id) override;
  store::Page<store::RunRecord> list_runs(const std::string& user_id, const std::string& workflow_id,
                                          const store::PageRequest& page) override;
  store::RunRecord cancel_run(const std::string& user_id, const std::string& workflow_id,
                              const std::string& run_id) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace orchestrator::api
