// HTTP handlers of the orchestrator API: parse, call the domain, render.
#include "orchestrator/api/routes.hpp"

#include "core/log.hpp"
#include "core/metrics.hpp"
#include "core/tracing.hpp"
#include "core/util.hpp"
#include "orchestrator/api/commands.hpp"
#include "orchestrator/api/problem.hpp"
#include "orchestrator/api/render.hpp"
#include "orchestrator/domain/error.hpp"
#include "orchestrator/domain/refinements.hpp"

// GCC 12 reports -Wmismatched-new-delete for coroutines whose frames Asio allocates with its
// recycling allocator (a false positive: the frame's own operator new/delete pair is used).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace orchestrator::api {

using core::http::Request;
using core::http::Response;
using nlohmann::json;

namespace {

store::PageRequest page_of(const Request& req) {
  const PageQuery q = page_query(req);
  return store::PageRequest{q.limit, q.cursor};
}

/// 204 No Content.
Response no_content() {
  Response r;
  r.status = 204;
  return r;
}

/// ws:// or wss:// URL of the stream for `thread_id` under `/api/ws/<kind>/`, from the Host the
/// client used, or the X-Forwarded-Host / X-Forwarded-Proto of a trusted proxy (the middleware
/// drops both from any other peer: drop_untrusted_forwarded_fields).
std::string websocket_url(const Request& req, const std::string& kind, const std::string& thread_id) {
  const std::string path = "/api/ws/" + kind + "/" + thread_id;
  auto host = req.headers.get("X-Forwarded-Host");
  if (!host) host = req.headers.get("Host");
  if (!host) return path;
  auto proto = req.headers.get("X-Forwarded-Proto");
  const std::string scheme = proto && *proto == "https" ? "wss" : "ws";
  return scheme + "://" + *host + path;
}

// ---------------------------------------------------------------- auth
Response login(RouteDeps& d, Request& req) {
  const LoginCommand c = parse_login(req);
  const LoginResult r = d.domain.login(c.email, c.password);
  return Response::json(200, {{"token", r.token}, {"expires_at", r.expires_at}, {"user", render_user(r.user)}});
}

// ---------------------------------------------------------------- workflows
Response list_templates(RouteDeps& d, Request&) { return Response::json(200, {{"items", d.domain.templates()}}); }

Response create_workflow(RouteDeps& d, Request& req) {
  const std::string user = caller_id(req);
  const CreateWorkflowCommand c = parse_create_workflow(req);
  return Response::json(
      201, render_workflow(d.domain.create_workflow(user, c.name, c.description, c.template_name, c.files)));
}

Response list_workflows(RouteDeps& d, Request& req) {
  return Response::json(200, render_page(d.domain.list_workflows(caller_id(req), page_of(req)),
                                         [](const store::WorkflowRecord& w) { return render_workflow(w); }));
}

Response get_workflow(RouteDeps& d, Request& req) {
  const std::string id = uuid_param(req, "id", "workflow");
  return Response::json(200, render_workflow(d.domain.get_workflow(caller_id(req), id)));
}

Response update_workflow(RouteDeps& d, Request& req) {
  const std::string id = uuid_param(req, "id", "workflow");
  const json body = parse_json_object(req);
  std::vector<FieldProblem> errors;
  std::optional<std::string> name;
  if (body.contains("name") && !body["name"].is_null()) name = req_string(body, "name", errors, 200);
  const auto description = opt_string(body, "description", errors);
  if (!body.contains("name") && !body.contains("description"))
    errors.push_back({"(body)", "must hold name and/or description"});
  throw_if_invalid(errors);
  return Response::json(200, render_workflow(d.domain.update_workflow(caller_id(req), id, name, description)));
}

Response delete_workflow(RouteDeps& d, Request& req) {
  const std::string id = uuid_param(req, "id", "workflow");
  // Refinements still running are cancelled by the domain; stop their engine runs now (the
  // sweeper deletes every thread of the workflow in any case, retrying until the engine confirms).
  for (const auto& thread : d.domain.delete_workflow(caller_id(req), id)) {
    try {
      d.engine.delete_thread(thread, req.traceparent);
    } catch (const std::exception& e) {
      core::log::warn("delete_workflow_engine_delete_deferred", {{"workflow_id", id}, {"thread_id", thread},
                                                                 {"error", e.what()}});
    }
  }
  return no_content();
}

/// The {user} path segment: a user id or an e-mail address (the router percent-decodes it).
std::string member_param(const Request& req) {
  const auto it = req.path_params.find("user");
  return it == req.path_params.end() ? std::string() : core::utf8_truncate(it->second, 320);
}

Response list_members(RouteDeps& d, Request& req) {
  const std::string id = uuid_param(req, "id", "workflow");
  return Response::json(200, render_page(d.domain.list_members(caller_id(req), id, page_of(req)),
                                         [](const store::MemberRecord& m) { return render_member(m); }));
}

Response put_member(RouteDeps& d, Request& req) {
  const std::string id = uuid_param(req, "id", "workflow");
  const json body = parse_json_object(req);
  std::vector<FieldProblem> errors;
  const std::string role = req_string(body, "role", errors, 16);
  throw_if_invalid(errors);
  const MemberView m = d.domain.set_member(caller_id(req), id, member_param(req), role);
  return Response::json(m.added ? 201 : 200, render_member(m.member));
}

Response delete_member(RouteDeps& d, Request& req) {
  const std::string id = uuid_param(req, "id", "workflow");
  d.domain.remove_member(caller_id(req), id, member_param(req));
  return no_content();
}

Response me(RouteDeps& d, Request& req) { return Response::json(200, render_profile(d.domain.me(caller_id(req)))); }

Response get_version(RouteDeps& d, Request& req) {
  const std::string id = uuid_param(req, "id", "workflow");
  const std::string n = req.path_params.count("number") ? req.path_params.at("number") : "";
  // A malformed number is answered like an unknown one (as uuid_param does for ids).
  const bool digits = !n.empty() && n.size() <= 18 && n.find_first_not_of("0123456789") == std::string::npos;
  if (!digits || std::stoll(n) < 1) throw domain::NotFoundError("version", core::utf8_truncate(n, 40));
  return Response::json(200, render_version(d.domain.get_version(caller_id(req), id, std::stoll(n))));
}

Response list_versions(RouteDeps& d, Request& req) {
  const std::string id = uuid_param(req, "id", "workflow");
  return Response::json(200, render_page(d.domain.list_versions(caller_id(req), id, page_of(req)),
                                         [](const store::VersionRecord& v) { return render_version(v); }));
}

Response publish_version(RouteDeps& d, Request& req) {
  const std::string id = uuid_param(req, "id", "workflow");
  const PublishVersionCommand c = parse_publish_version(req);
  // An unchanged draft creates no version: 200 with the latest one (201 when created).
  const VersionView v = d.domain.publish_version(caller_id(req), id, c.base_revision);
  json out = render_version(v);
  out["created"] = v.created;
  Response r = Response::json(v.created ? 201 : 200, out);
  r.headers.set("Location", "/api/workflows/" + id + "/versions/" + std::to_string(v.version.number));
  return r;
}

Response deploy(RouteDeps& d, Request& req) {
  const std::string id = uuid_param(req, "id", "workflow");
  const DeployCommand c = parse_deploy(req);
  return Response::json(200, d.domain.deploy(caller_id(req), id, c.version));
}

// ---------------------------------------------------------------- drafts
Response get_draft(RouteDeps& d, Request& req) {
  const std::string id = uuid_param(req, "id", "workflow");
  return Response::json(200, render_draft(d.domain.get_draft(caller_id(req), id)));
}

Response put_draft_files(RouteDeps& d, Request& req) {
  const std::string id = uuid_param(req, "id", "workflow");
  const PutDraftFilesCommand c = parse_put_draft_files(req);
  return Response::json(200, render_draft(d.domain.put_draft_files(caller_id(req), id, c.files, c.base_revision)));
}

Response delete_draft(RouteDeps& d, Request& req) {
  const std::string id = uuid_param(req, "id", "draft");
  d.domain.delete_draft(caller_id(req), id);
  return no_content();
}

// ---------------------------------------------------------------- refinements
Response accepted_refinement(Request& req, const store::ProposalRecord& p, const json& extra = json::object());

/// An answer replayed for a repeated Idempotency-Key: the status the first request got for its
/// success, `Idempotent-Replayed: true` (the header Stripe's API sends for the same case), and
/// the recorded resource as it is now (its `status` may have moved on).
Response replayed(Response r) {
  r.headers.set("Idempotent-Replayed", "true");
  return r;
}

/// Runs on the orchestrator runtime (register_routes: add_async); `req` is the route's own copy.
core::async::Task<Response> start_refinement(RouteDeps& d, Request& req) {
  // The body (up to the server's limit) is parsed on the blocking pool, not on an I/O thread.
  domain::RefinementRequest r = co_await d.runtime->blocking([&req] {
    domain::RefinementRequest r;
    r.actor = caller_id(req);
    r.workflow_id = uuid_param(req, "id", "workflow");
    StartRefinementCommand c = parse_start_refinement(req);
    r.user_prompt = std::move(c.user_prompt);
    r.context_file_path = std::move(c.context_file_path);
    r.context_selection = std::move(c.context_selection);
    r.traceparent = req.traceparent;
    r.idempotency_key = parse_idempotency_key_header(req);
    return r;
  });
  core::async::Task<domain::CreatedProposal> started = d.refinements.start(std::move(r));
  const domain::CreatedProposal c = co_await std::move(started);
  if (!c.replayed) co_return accepted_refinement(req, c.proposal);
  json now = {{"status", store::to_string(c.proposal.status)}};
  if (c.proposal.error) now["error"] = *c.proposal.error;
  if (c.proposal.failure_kind) now["failure_kind"] = *c.proposal.failure_kind;
  co_return replayed(accepted_refinement(req, c.proposal, now));
}

/// 202 {proposal_id, thread_id, status, websocket_url, created_at} for a refinement whose engine
/// run started; members of `extra` (an object) are added to the body.
Response accepted_refinement(Request& req, const store::ProposalRecord& p, const json& extra) {
  const std::string& thread_id = p.thread_id;
  json body = {{"proposal_id", p.id},
               {"thread_id", thread_id},
               {"status", "processing"},
               {"websocket_url", websocket_url(req, "refinements", thread_id)},
               {"created_at", p.created_at}};
  if (extra.is_object()) body.update(extra);
  Response r = Response::json(202, body);
  r.headers.set("Location", "/api/proposals/" + p.id);
  return r;
}

// ---------------------------------------------------------------- proposals
Response list_proposals(RouteDeps& d, Request& req) {
  const std::string id = uuid_param(req, "id", "workflow");
  return Response::json(200, render_page(d.domain.list_proposals(caller_id(req), id, page_of(req)),
                                         [](const store::ProposalRecord& p) { return render_proposal(p); }));
}

Response list_my_proposals(RouteDeps& d, Request& req) {
  std::vector<store::ProposalStatus> statuses;
  if (const auto q = req.query_param("status")) {
    std::size_t start = 0;
    while (start <= q->size()) {
      const auto comma = std::min(q->find(',', start), q->size());
      const std::string name = q->substr(start, comma - start);
      try {
        statuses.push_back(store::parse_status(name));
      } catch (const std::runtime_error&) {
        throw_if_invalid({{"status", "must be a comma-separated list of processing, completed, failed, cancelled, "
                                     "approved, rejected"}});
      }
      start = comma + 1;
    }
  }
  return Response::json(200, render_page(d.domain.list_my_proposals(caller_id(req), statuses, page_of(req)),
                                         [](const store::ProposalRecord& p) { return render_proposal(p); }));
}

/// For routes that take no input (approve, reject, cancel, retry, a run's cancel): an empty body,
/// or a JSON object that is ignored (the console sends {}); another Content-Type is 415 and
/// anything else 400, as on every route that reads a body.
void no_input(const Request& req) {
  if (!req.body.empty()) (void)parse_json_object(req);
}

/// Runs on the orchestrator runtime like start_refinement.
core::async::Task<Response> retry_proposal(RouteDeps& d, Request& req) {
  std::string id = uuid_param(req, "id", "proposal");
  if (!req.body.empty()) co_await d.runtime->blocking([&req] { no_input(req); });
  core::async::Task<domain::RetryResult> retried = d.refinements.retry(caller_id(req), std::move(id), req.traceparent);
  const domain::RetryResult r = co_await std::move(retried);
  co_return accepted_refinement(req, r.proposal, {{"retry_of", render_proposal(r.previous)}});
}

Response get_proposal(RouteDeps& d, Request& req) {
  const std::string id = uuid_param(req, "id", "proposal");
  return Response::json(200, render_proposal(d.domain.get_proposal(caller_id(req), id)));
}

Response proposal_diff(RouteDeps& d, Request& req) {
  const std::string id = uuid_param(req, "id", "proposal");
  const std::string user = caller_id(req);
  std::string diff = d.domain.proposal_diff(user, id);
  const auto accept = req.headers.get("Accept").value_or("");
  if (accept.find("application/json") != std::string::npos && accept.find("text/x-diff") == std::string::npos) {
    json changes = json::array();
    for (const auto& c : d.domain.get_proposal(user, id).changes) changes.push_back(render_change(c));
    return Response::json(200, {{"proposal_id", id}, {"diff", diff}, {"changes", changes}});
  }
  return Response::text(200, std::move(diff), "text/x-diff; charset=utf-8");
}

Response approve(RouteDeps& d, Request& req) {
  const std::string id = uuid_param(req, "id", "proposal");
  no_input(req);
  const auto [proposal, draft] = d.domain.approve(caller_id(req), id);
  return Response::json(200, {{"proposal", render_proposal(proposal)}, {"draft", render_draft(draft)}});
}

Response reject(RouteDeps& d, Request& req) {
  const std::string id = uuid_param(req, "id", "proposal");
  no_input(req);
  return Response::json(200, {{"proposal", render_proposal(d.domain.reject(caller_id(req), id))}});
}

Response cancel(RouteDeps& d, Request& req) {
  const std::string id = uuid_param(req, "id", "proposal");
  no_input(req);
  const auto view = d.domain.cancel(caller_id(req), id);
  // Stop the run now (DELETE cancels a running thread); the tracker's cleanup retries on failure.
  try {
    d.engine.delete_thread(view.proposal.thread_id, req.traceparent);
  } catch (const std::exception& e) {
    core::log::warn("cancel_engine_delete_deferred", {{"proposal_id", id}, {"error", e.what()}});
  }
  return Response::json(200, {{"proposal", render_proposal(view)}});
}

// ---------------------------------------------------------------- runs
core::metrics::Counter& runs_counter() {
  static auto& c = core::metrics::global().counter("ide_orchestrator_runs_started_total",
                                                   "Workflow runs by outcome (accepted | engine_unavailable | engine_rejected)");
  return c;
}

/// The answer to a run the engine did not take (`failure` holds EngineUnavailable: 503 with
/// Retry-After, or EngineRejected: 502; anything else is rethrown): the run is failed first (on
/// the blocking pool). For an unreachable engine its thread is also marked for deletion: the
/// engine may have accepted the job before the answer was lost, and nothing follows the run now.
core::async::Task<Response> run_not_started(RouteDeps& d, const Request& req, const store::RunRecord& run,
                                            std::exception_ptr failure) {
  Response problem;
  std::string reason;
  domain::FailureKind kind = domain::FailureKind::engine_unreachable;
  bool delete_thread = false;
  try {
    std::rethrow_exception(failure);
  } catch (const engine_client::EngineUnavailable& e) {
    runs_counter().inc({{"outcome", "engine_unavailable"}});
    core::log::warn("engine_unavailable", {{"run_id", run.id}, {"error", e.what()}, {"request_id", req.request_id}});
    reason = "The engine could not be reached when the run was started; start the run again.";
    delete_thread = true;
    problem = engine_unavailable_problem(e.retry_after(), "Spec Engine unavailable",
                                         "The Spec Engine is not reachable right now, so the run could not be started "
                                         "(run " +
                                             run.id +
                                             " is listed as failed; start the run again with a new Idempotency-Key "
                                             "if you sent one, as a resend with the same key returns that failed run)");
  } catch (const engine_client::EngineRejected& e) {
    runs_counter().inc({{"outcome", "engine_rejected"}});
    core::log::error("engine_rejected", {{"run_id", run.id}, {"status", e.status()}, {"error", e.what()},
                                         {"request_id", req.request_id}});
    reason = std::string("The engine rejected the job: ") + e.what();
    kind = domain::FailureKind::engine_rejected;
    problem = engine_rejected_problem(e.status(), e.problem(),
                                      std::string("The Spec Engine refused to run this workflow: ") + e.what());
  }
  co_await d.runtime->blocking(
      [&d, &run, &reason, kind, delete_thread] { d.domain.fail_run(run.thread_id, reason, kind, delete_thread); });
  co_return problem;
}

Response accepted_run(Request& req, const store::RunRecord& run);

/// Runs on the orchestrator runtime like start_refinement.
core::async::Task<Response> start_run(RouteDeps& d, Request& req) {
  // Record first (like refinements), so the tracker or a restarted process can always find it;
  // the record carries this replica's tracker lease and the Starting guard keeps this replica's
  // own sweeper off it until the engine answered (the end of this frame).
  std::unique_ptr<domain::RefinementTracker::Hold> starting;
  std::string workflow_id;
  domain::StartRunInput in;
  const domain::StartedRun started = co_await d.runtime->blocking([&d, &req, &starting, &workflow_id, &in] {
    const std::string user = caller_id(req);
    workflow_id = uuid_param(req, "id", "workflow");
    const StartRunCommand c = parse_start_run(req);
    in.input = c.input;
    if (c.draft)
      in.target.kind = domain::RunTarget::Kind::draft;
    else if (c.version)
      in.target = {domain::RunTarget::Kind::version, *c.version};
    in.thread_id = core::uuid4();
    in.idempotency_key = parse_idempotency_key_header(req);
    if (d.tracker) {
      starting = d.tracker->starting(in.thread_id);
      in.lease_owner = d.tracker->lease_owner();
      in.lease_ttl = d.tracker->lease_ttl();
    }
    return d.domain.start_run(user, workflow_id, in);
  });
  const store::RunRecord& run = started.run;
  if (started.replayed) co_return replayed(accepted_run(req, run));  // the first request sent the job
  const auto tc = core::tracing::parse_traceparent(req.traceparent);
  const std::string trace_id = tc ? tc->trace_id : core::random_hex(16);
  core::async::Task<std::string> sent = d.engine.invoke_async(
      domain::build_job(trace_id, run.thread_id, started.definition, in.input, started.files), req.traceparent);
  std::exception_ptr failure;
  try {
    (void)co_await std::move(sent);
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure) {
    core::async::Task<Response> refused = run_not_started(d, req, run, failure);
    co_return co_await std::move(refused);
  }
  runs_counter().inc({{"outcome", "accepted"}});
  if (d.tracker) d.tracker->track_run(run.id, run.thread_id);
  core::log::info("run_started", {{"run_id", run.id}, {"thread_id", run.thread_id}, {"workflow_id", workflow_id},
                                  {"request_id", req.request_id}});
  co_return accepted_run(req, run);
}

/// 202: the run (render_run) with run_id and websocket_url, and its Location.
Response accepted_run(Request& req, const store::RunRecord& run) {
  json out = render_run(run);
  out["run_id"] = run.id;
  out["websocket_url"] = websocket_url(req, "runs", run.thread_id);
  Response r = Response::json(202, out);
  r.headers.set("Location", "/api/workflows/" + run.workflow_id + "/runs/" + run.id);
  return r;
}

Response list_runs(RouteDeps& d, Request& req) {
  const std::string id = uuid_param(req, "id", "workflow");
  return Response::json(200, render_page(d.domain.list_runs(caller_id(req), id, page_of(req)),
                                         [](const store::RunRecord& r) { return render_run(r); }));
}

Response get_run(RouteDeps& d, Request& req) {
  const std::string id = uuid_param(req, "id", "workflow");
  const std::string run_id = uuid_param(req, "run_id", "run");
  return Response::json(200, render_run(d.domain.get_run(caller_id(req), id, run_id), true));
}

Response cancel_run(RouteDeps& d, Request& req) {
  const std::string id = uuid_param(req, "id", "workflow");
  no_input(req);
  const std::string run_id = uuid_param(req, "run_id", "run");
  const store::RunRecord run = d.domain.cancel_run(caller_id(req), id, run_id);
  // Stop the run now (DELETE cancels a running thread); the tracker's cleanup retries on failure.
  try {
    d.engine.delete_thread(run.thread_id, req.traceparent);
  } catch (const std::exception& e) {
    core::log::warn("cancel_engine_delete_deferred", {{"run_id", run_id}, {"error", e.what()}});
  }
  return Response::json(200, render_run(run, true));
}

// ---------------------------------------------------------------- probes
Response health(RouteDeps&, Request&) { return Response::json(200, {{"status", "ok"}}); }

Response ready(RouteDeps& d, Request&) {
  const std::string db = d.db_health ? d.db_health() : std::string("ok");
  const bool db_ok = db == "ok";
  const std::string breaker = d.engine.breaker_state();
  bool engine_ok = false;
  std::string engine_detail = "circuit breaker " + breaker;
  if (breaker != "open") {
    try {
      auto r = core::http::request({"GET", d.engine.options().base_url + "/health", {}, {}, std::chrono::milliseconds(1000)});
      engine_ok = r.status == 200;
      engine_detail = "HTTP " + std::to_string(r.status);
    } catch (const std::exception& e) {
      engine_detail = e.what();
    }
  }
  const std::string status = !db_ok ? "unready" : engine_ok ? "ready" : "degraded";
  json body = {{"status", status},
               {"checks",
                {{"database", db},
                 {"engine", engine_ok ? "ok" : "unreachable: " + engine_detail},
                 {"engine_breaker", breaker}}}};
  return Response::json(db_ok ? 200 : 503, body);
}

Response metrics(RouteDeps&, Request&) {
  return Response::text(200, core::metrics::global().render(), "text/plain; version=0.0.4; charset=utf-8");
}

/// An asynchronous route's handler: a coroutine on the orchestrator runtime.
using AsyncHandler = core::async::Task<Response> (*)(RouteDeps&, Request&);

/// Runs `h` on the route's own copy of the request (the coroutine may outlive the server's frame
/// when the server stops) and turns an exception into its problem response, as `guarded` does.
core::async::Task<Response> answer_async(AsyncHandler h, RouteDeps& d, std::shared_ptr<Request> req) {
  struct Counted {
    StartsInFlight* starts;
    explicit Counted(StartsInFlight* s) : starts(s) {
      if (starts) starts->enter();
    }
    ~Counted() {
      if (starts) starts->leave();
    }
  } counted(d.starts);
  std::exception_ptr failure;
  try {
    core::async::Task<Response> handled = h(d, *req);
    co_return co_await std::move(handled);
  } catch (...) {
    failure = std::current_exception();
  }
  try {
    std::rethrow_exception(failure);
  } catch (const std::exception& e) {
    co_return to_response(e, *req);
  }
}

}  // namespace

void StartsInFlight::enter() {
  std::lock_guard lk(mu_);
  ++n_;
}

void StartsInFlight::leave() {
  std::lock_guard lk(mu_);
  if (--n_ == 0) cv_.notify_all();
}

bool StartsInFlight::wait_idle(std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  return cv_.wait_for(lk, timeout, [this] { return n_ == 0; });
}

std::size_t StartsInFlight::running() const {
  std::lock_guard lk(mu_);
  return n_;
}

void register_routes(core::http::Router& router, RouteDeps& deps) {
  if (!deps.runtime) throw std::logic_error("register_routes: RouteDeps::runtime is required");
  using H = Response (*)(RouteDeps&, Request&);
  auto add = [&](const char* method, const char* pattern, H h) {
    RouteDeps* d = &deps;
    router.add(method, pattern, guarded([d, h](Request& req) { return h(*d, req); }));
  };
  add("POST", "/api/auth/login", login);
  router.add("GET", "/api/openapi.json", [d = &deps](Request&) {
    Response r = Response::text(200, d->openapi_json, "application/json");
    r.headers.set("Cache-Control", "public, max-age=300");
    return r;
  });
  add("GET", "/api/me", me);
  add("GET", "/api/templates", list_templates);
  add("POST", "/api/workflows", create_workflow);
  add("GET", "/api/workflows", list_workflows);
  add("GET", "/api/workflows/{id}", get_workflow);
  add("PATCH", "/api/workflows/{id}", update_workflow);
  add("DELETE", "/api/workflows/{id}", delete_workflow);
  add("GET", "/api/workflows/{id}/members", list_members);
  add("PUT", "/api/workflows/{id}/members/{user}", put_member);
  add("DELETE", "/api/workflows/{id}/members/{user}", delete_member);
  add("GET", "/api/workflows/{id}/versions", list_versions);
  add("POST", "/api/workflows/{id}/versions", publish_version);
  add("GET", "/api/workflows/{id}/versions/{number}", get_version);
  add("POST", "/api/workflows/{id}/deploy", deploy);
  add("GET", "/api/workflows/{id}/draft", get_draft);
  add("PUT", "/api/workflows/{id}/draft/files", put_draft_files);
  add("DELETE", "/api/drafts/{id}", delete_draft);
  // Streaming routes that answer once (respond): the work runs on the runtime, the server's
  // connection coroutine awaits it without holding a thread; the middleware ran before.
  auto add_async = [&](const char* method, const char* pattern, AsyncHandler h) {
    RouteDeps* d = &deps;
    router.add_stream(method, pattern,
                      [d, h](Request& req, core::http::ResponseStream& out) -> core::async::Task<void> {
                        core::async::Task<Response> work = answer_async(h, *d, std::make_shared<Request>(req));
                        core::async::Task<Response> there = d->runtime->run_async(std::move(work));
                        const Response answer = co_await std::move(there);
                        co_await out.respond(answer);
                      });
  };
  add_async("POST", "/api/workflows/{id}/refinements", start_refinement);
  add("GET", "/api/workflows/{id}/proposals", list_proposals);
  add("GET", "/api/proposals", list_my_proposals);
  add("GET", "/api/proposals/{id}", get_proposal);
  add("GET", "/api/proposals/{id}/diff", proposal_diff);
  add("POST", "/api/proposals/{id}/approve", approve);
  add("POST", "/api/proposals/{id}/reject", reject);
  add("POST", "/api/proposals/{id}/cancel", cancel);
  add_async("POST", "/api/proposals/{id}/retry", retry_proposal);
  add_async("POST", "/api/workflows/{id}/runs", start_run);
  add("GET", "/api/workflows/{id}/runs", list_runs);
  add("GET", "/api/workflows/{id}/runs/{run_id}", get_run);
  add("POST", "/api/workflows/{id}/runs/{run_id}/cancel", cancel_run);
  // One proxy for every engine thread; the path names what the thread is (authorised the same way).
  router.add_ws("/api/ws/refinements/{thread_id}", [d = &deps](Request& req) { return d->ws.accept(req); });
  router.add_ws("/api/ws/runs/{thread_id}",
                [d = &deps](Request& req) { return d->ws.accept(req, WsProxy::Subject::run); });
  add("GET", "/health", health);
  add("GET", "/ready", ready);
  add("GET", "/metrics", metrics);
}

}  // namespace orchestrator::api
