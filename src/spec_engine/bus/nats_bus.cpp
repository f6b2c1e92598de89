// NATS JetStream consumer of agent jobs and publisher of run status events (cnats 3.4).
#include "spec_engine/bus/nats_bus.hpp"

#include <cstdlib>
#include <shared_mutex>
#include <vector>

#include <nats/nats.h>

#include "core/json_parse.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "core/tracing.hpp"
#include "core/util.hpp"
#include "spec_engine/api/invoke.hpp"

namespace spec_engine::bus {

namespace {

/// spec_engine_nats_jobs_total{outcome}: accepted | duplicate | invalid | queue_full |
/// shutting_down | error.
core::metrics::Counter& nats_jobs() {
  return core::metrics::global().counter(
      "spec_engine_nats_jobs_total",
      "Job messages taken from NATS JetStream, by outcome (accepted|duplicate|invalid|queue_full|shutting_down|error)");
}

/// "<cnats status text>[: <last error>][ (JetStream error <code>)]".
std::string nats_error_text(natsStatus s, jsErrCode jerr = static_cast<jsErrCode>(0)) {
  std::string text = natsStatus_GetText(s);
  natsStatus last = NATS_OK;
  if (const char* detail = nats_GetLastError(&last); detail != nullptr && *detail != '\0') {
    text += ": ";
    text += detail;
  }
  if (static_cast<int>(jerr) != 0) text += " (JetStream error " + std::to_string(static_cast<int>(jerr)) + ")";
  return text;
}

std::string dump_safe(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

/// Header fields of a NATS message (first value per key); empty when it has none.
core::http::Headers message_headers(natsMsg* msg) {
  core::http::Headers headers;
  const char** keys = nullptr;
  int count = 0;
  if (natsMsgHeader_Keys(msg, &keys, &count) != NATS_OK || keys == nullptr) return headers;
  for (int i = 0; i < count; ++i) {
    const char* value = nullptr;
    if (keys[i] != nullptr && natsMsgHeader_Get(msg, keys[i], &value) == NATS_OK && value != nullptr) {
      headers.set(keys[i], value);
    }
  }
  std::free(static_cast<void*>(keys));
  return headers;
}

}  // namespace

std::string status_subject(const std::string& prefix, const std::string& thread_id) {
  std::string token = thread_id.empty() ? std::string("invalid") : thread_id;
  for (auto& c : token) {
    if (c == '.' || c == '*' || c == '>' || c == ' ' || c == '\t' || c == '\r' || c == '\n') c = '_';
  }
  return prefix + token;
}

nlohmann::json make_status_event(const std::string& thread_id, const std::string& status, const std::string& error,
                                 const nlohmann::json& extra) {
  nlohmann::json data = {{"thread_id", thread_id}, {"status", status}};
  if (!error.empty()) data["error"] = error;
  if (extra.is_object()) {
    for (const auto& [k, v] : extra.items()) data[k] = v;
  }
  return {{"specversion", "1.0"},
          {"id", core::uuid4()},
          {"source", "spec-engine"},
          {"type", "io.agentic-ide.agent.status"},
          {"subject", thread_id},
          {"time", core::now_rfc3339()},
          {"datacontenttype", "application/json"},
          {"data", std::move(data)}};
}

std::string sniff_media_type(const std::string& body) {
  try {
    const auto j = core::json::parse(body);
    if (j.is_object() && j.contains("specversion")) return "application/cloudevents+json";
  } catch (const std::exception&) {
  }
  return "application/json";
}

std::string job_id_hint(const std::string& body) {
  try {
    const auto j = core::json::parse(body);
    if (!j.is_object()) return "invalid";
    const nlohmann::json* job = &j;
    if (j.contains("specversion") && j.contains("data") && j["data"].is_object()) job = &j["data"];
    if (job->contains("job_id") && (*job)["job_id"].is_string()) {
      const auto id = (*job)["job_id"].get<std::string>();
      if (api::is_valid_thread_id(id)) return id;
    }
  } catch (const std::exception&) {
  }
  return "invalid";
}

/// cnats handles; `mu` guards their lifetime (shared: use, exclusive: close).
struct NatsBus::Impl {
  mutable std::shared_mutex mu;
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  natsSubscription* sub = nullptr;  ///< touched only by start()/fetch thread/stop()
  std::mutex closed_mu;
  std::condition_variable closed_cv;
  bool closed = false;
  std::atomic<bool> closing{false};  ///< set by close(): the disconnect that follows is expected
  /// Plain subscriptions (subscribe()): id -> cnats handle. Guarded by subs_mu.
  std::mutex subs_mu;
  std::map<std::uint64_t, natsSubscription*> subs;
  std::uint64_t next_sub = 1;

  /// The handler of one plain subscription; freed by cnats' completion callback.
  struct Handler {
    MessageHandler fn;
  };
  static void on_message(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
    auto* h = static_cast<Handler*>(closure);
    const char* subject = natsMsg_GetSubject(msg);
    const char* data = natsMsg_GetData(msg);
    const int len = natsMsg_GetDataLength(msg);
    try {
      h->fn(subject != nullptr ? subject : "",
            data != nullptr && len > 0 ? std::string(data, static_cast<std::size_t>(len)) : std::string());
    } catch (const std::exception& e) {
      core::log::warn("nats message handler failed", {{"error", e.what()}});
    }
    natsMsg_Destroy(msg);
  }
  static void on_complete(void* closure) { delete static_cast<Handler*>(closure); }

  static void on_disconnected(natsConnection*, void* closure) {
    if (!static_cast<Impl*>(closure)->closing) core::log::warn("nats disconnected; reconnecting");
  }
  static void on_reconnected(natsConnection*, void*) { core::log::info("nats reconnected"); }
  static void on_closed(natsConnection*, void* closure) {
    auto* self = static_cast<Impl*>(closure);
    {
      std::lock_guard lk(self->closed_mu);
      self->closed = true;
    }
    self->closed_cv.notify_all();
  }
};

NatsBus::NatsBus(NatsOptions options) : options_(std::move(options)), impl_(std::make_unique<Impl>()) {
  nats_jobs();  // register the family so /metrics shows it before the first job
}

NatsBus::~NatsBus() {
  stop();
  close(std::chrono::milliseconds(1000));
}

void NatsBus::connect() {
  if (options_.url.empty()) throw NatsError("NATS URL is empty");
  if (options_.consumer.empty() || options_.consumer.find_first_of(".*> ") != std::string::npos) {
    throw NatsError("invalid NATS consumer name '" + options_.consumer + "' (no '.', '*', '>' or spaces)");
  }
  if (options_.stream.empty() || options_.stream.find_first_of(".*> ") != std::string::npos) {
    throw NatsError("invalid NATS stream name '" + options_.stream + "' (no '.', '*', '>' or spaces)");
  }
  std::unique_lock lk(impl_->mu);
  if (impl_->nc != nullptr) return;

  natsOptions* opts = nullptr;
  natsStatus s = natsOptions_Create(&opts);
  if (s == NATS_OK) s = natsOptions_SetURL(opts, options_.url.c_str());
  if (s == NATS_OK) s = natsOptions_SetName(opts, "spec-engine");
  if (s == NATS_OK) s = natsOptions_SetNoEcho(opts, true);  // replicas never handle their own events
  // Asynchronous subscriptions (one per watched thread, thousands under load) share cnats' delivery
  // pool instead of starting a delivery thread each; order per subscription is kept (nats.h,
  // natsOptions_UseGlobalMessageDelivery). The handlers only hand frames to the hub: they never block.
  if (s == NATS_OK) s = natsOptions_UseGlobalMessageDelivery(opts, true);
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts, -1);
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(opts, options_.reconnect_wait.count());
  if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(opts, &Impl::on_disconnected, impl_.get());
  if (s == NATS_OK) s = natsOptions_SetReconnectedCB(opts, &Impl::on_reconnected, impl_.get());
  if (s == NATS_OK) s = natsOptions_SetClosedCB(opts, &Impl::on_closed, impl_.get());
  if (s == NATS_OK) s = natsConnection_Connect(&impl_->nc, opts);
  natsOptions_Destroy(opts);
  if (s != NATS_OK) {
    impl_->nc = nullptr;
    throw NatsError("cannot connect to NATS at " + options_.url + ": " + nats_error_text(s));
  }
  s = natsConnection_JetStream(&impl_->js, impl_->nc, nullptr);
  if (s != NATS_OK) throw NatsError("cannot create the JetStream context: " + nats_error_text(s));
  lk.unlock();
  ensure_jetstream();
  core::log::info("nats connected",
                  {{"url", options_.url}, {"stream", options_.stream}, {"consumer", options_.consumer}});
}

void NatsBus::ensure_jetstream() {
  std::shared_lock lk(impl_->mu);
  if (impl_->js == nullptr) throw NatsError("not connected to NATS");
  natsStatus s = NATS_OK;
  // Stream: use it when it exists (the platform may own it), else create it.
  jsErrCode jerr = static_cast<jsErrCode>(0);
  jsStreamInfo* si = nullptr;
  s = js_GetStreamInfo(&si, impl_->js, options_.stream.c_str(), nullptr, &jerr);
  if (s == NATS_NOT_FOUND) {
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char* subjects[] = {options_.subjects.c_str()};
    cfg.Name = options_.stream.c_str();
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Retention = js_WorkQueuePolicy;  // a job is removed once acknowledged
    jerr = static_cast<jsErrCode>(0);
    s = js_AddStream(&si, impl_->js, &cfg, nullptr, &jerr);
    if (s != NATS_OK) {
      throw NatsError("cannot create JetStream stream " + options_.stream + " (" + options_.subjects +
                      "): " + nats_error_text(s, jerr));
    }
    core::log::info("nats stream created", {{"stream", options_.stream}, {"subjects", options_.subjects}});
  } else if (s != NATS_OK) {
    throw NatsError("cannot read JetStream stream " + options_.stream + ": " + nats_error_text(s, jerr));
  }
  jsStreamInfo_Destroy(si);

  // Durable pull consumer, created explicitly so that unsubscribing never deletes it.
  jsConsumerInfo* ci = nullptr;
  jerr = static_cast<jsErrCode>(0);
  s = js_GetConsumerInfo(&ci, impl_->js, options_.stream.c_str(), options_.consumer.c_str(), nullptr, &jerr);
  if (s == NATS_NOT_FOUND) {
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = options_.consumer.c_str();
    cc.AckPolicy = js_AckExplicit;
    cc.DeliverPolicy = js_DeliverAll;
    cc.AckWait = static_cast<int64_t>(options_.ack_wait.count()) * 1'000'000;  // ns
    jerr = static_cast<jsErrCode>(0);
    s = js_AddConsumer(&ci, impl_->js, options_.stream.c_str(), &cc, nullptr, &jerr);
    if (s != NATS_OK) {
      throw NatsError("cannot create JetStream consumer " + options_.consumer + " on " + options_.stream + ": " +
                      nats_error_text(s, jerr));
    }
    core::log::info("nats consumer created", {{"stream", options_.stream}, {"consumer", options_.consumer}});
  } else if (s != NATS_OK) {
    throw NatsError("cannot read JetStream consumer " + options_.consumer + ": " + nats_error_text(s, jerr));
  }
  jsConsumerInfo_Destroy(ci);
}

bool NatsBus::subscribe() {
  std::shared_lock lk(impl_->mu);
  if (impl_->js == nullptr) return false;
  if (impl_->sub != nullptr) {
    natsSubscription_Destroy(impl_->sub);  // frees only: the durable consumer stays
    impl_->sub = nullptr;
  }
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = options_.stream.c_str();
  so.Consumer = options_.consumer.c_str();  // bind to the existing durable
  so.ManualAck = true;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  const natsStatus s =
      js_PullSubscribe(&impl_->sub, impl_->js, nullptr, options_.consumer.c_str(), nullptr, &so, &jerr);
  if (s != NATS_OK) {
    impl_->sub = nullptr;
    core::log::warn("nats pull subscribe failed", {{"consumer", options_.consumer}, {"error", nats_error_text(s, jerr)}});
    return false;
  }
  return true;
}

void NatsBus::start(RunManager& runs) {
  if (fetcher_.joinable()) return;
  runs_ = &runs;
  if (!subscribe()) throw NatsError("cannot bind to JetStream consumer " + options_.consumer);
  stop_ = false;
  fetcher_ = std::thread([this] { fetch_loop(); });
}

void NatsBus::stop() {
  {
    std::lock_guard lk(stop_mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (fetcher_.joinable()) fetcher_.join();
}

void NatsBus::close(std::chrono::milliseconds timeout) {
  stop();
  std::unique_lock lk(impl_->mu);
  if (impl_->nc == nullptr) return;
  impl_->closing = true;
  if (impl_->sub != nullptr) {
    natsSubscription_Destroy(impl_->sub);
    impl_->sub = nullptr;
  }
  {
    std::lock_guard sl(impl_->subs_mu);
    for (auto& [id, sub] : impl_->subs) {
      natsSubscription_Unsubscribe(sub);
      natsSubscription_Destroy(sub);
    }
    impl_->subs.clear();
  }
  if (natsConnection_DrainTimeout(impl_->nc, timeout.count() > 0 ? timeout.count() : 1) == NATS_OK) {
    std::unique_lock cl(impl_->closed_mu);
    impl_->closed_cv.wait_for(cl, timeout + std::chrono::milliseconds(500), [&] { return impl_->closed; });
  }
  natsConnection_Close(impl_->nc);
  {
    // The closed callback is the last one cnats makes with our closure: wait for it.
    std::unique_lock cl(impl_->closed_mu);
    impl_->closed_cv.wait_for(cl, std::chrono::seconds(1), [&] { return impl_->closed; });
  }
  if (impl_->js != nullptr) jsCtx_Destroy(impl_->js);
  impl_->js = nullptr;
  natsConnection_Destroy(impl_->nc);
  impl_->nc = nullptr;
  core::log::info("nats connection closed");
}

std::string NatsBus::state() const {
  std::shared_lock lk(impl_->mu);
  if (impl_->nc == nullptr) return "not_connected";
  switch (natsConnection_Status(impl_->nc)) {
    case NATS_CONN_STATUS_CONNECTED:
      return "connected";
    case NATS_CONN_STATUS_CONNECTING:
      return "connecting";
    case NATS_CONN_STATUS_RECONNECTING:
      return "reconnecting";
    case NATS_CONN_STATUS_DISCONNECTED:
      return "disconnected";
    case NATS_CONN_STATUS_DRAINING_SUBS:
    case NATS_CONN_STATUS_DRAINING_PUBS:
      return "draining";
    case NATS_CONN_STATUS_CLOSED:
      return "closed";
  }
  return "disconnected";
}

void NatsBus::publish_status(const std::string& thread_id, const std::string& status, const std::string& error,
                             const nlohmann::json& extra) noexcept {
  try {
    const std::string subject = status_subject(options_.status_prefix, thread_id);
    const std::string payload = dump_safe(make_status_event(thread_id, status, error, extra));
    std::shared_lock lk(impl_->mu);
    if (impl_->nc == nullptr) {
      core::log::warn("nats status not published: not connected", {{"thread_id", thread_id}, {"status", status}});
      return;
    }
    natsMsg* msg = nullptr;
    natsStatus s = natsMsg_Create(&msg, subject.c_str(), nullptr, payload.data(), static_cast<int>(payload.size()));
    if (s == NATS_OK) s = natsMsgHeader_Set(msg, "Content-Type", "application/cloudevents+json");
    if (s == NATS_OK) s = natsConnection_PublishMsg(impl_->nc, msg);
    natsMsg_Destroy(msg);
    if (s != NATS_OK) {
      core::log::warn("nats status publish failed",
                      {{"thread_id", thread_id}, {"subject", subject}, {"error", nats_error_text(s)}});
    } else {
      core::log::debug("nats status published", {{"thread_id", thread_id}, {"subject", subject}, {"status", status}});
    }
  } catch (const std::exception& e) {
    core::log::warn("nats status publish failed", {{"thread_id", thread_id}, {"error", e.what()}});
  }
}

bool NatsBus::publish(const std::string& subject, const std::string& data) noexcept {
  std::shared_lock lk(impl_->mu);
  if (impl_->nc == nullptr) return false;
  const natsStatus s =
      natsConnection_Publish(impl_->nc, subject.c_str(), data.data(), static_cast<int>(data.size()));
  if (s != NATS_OK) {
    core::log::warn("nats publish failed", {{"subject", subject}, {"error", nats_error_text(s)}});
    return false;
  }
  return true;
}

std::uint64_t NatsBus::subscribe(const std::string& subject, MessageHandler handler) {
  std::shared_lock lk(impl_->mu);
  if (impl_->nc == nullptr) return 0;
  auto* h = new Impl::Handler{std::move(handler)};
  natsSubscription* sub = nullptr;
  natsStatus s = natsConnection_Subscribe(&sub, impl_->nc, subject.c_str(), &Impl::on_message, h);
  if (s != NATS_OK) {
    delete h;
    core::log::warn("nats subscribe failed", {{"subject", subject}, {"error", nats_error_text(s)}});
    return 0;
  }
  natsSubscription_SetOnCompleteCB(sub, &Impl::on_complete, h);
  std::lock_guard sl(impl_->subs_mu);
  const std::uint64_t id = impl_->next_sub++;
  impl_->subs[id] = sub;
  return id;
}

void NatsBus::unsubscribe(std::uint64_t id) {
  natsSubscription* sub = nullptr;
  {
    std::lock_guard sl(impl_->subs_mu);
    auto it = impl_->subs.find(id);
    if (it == impl_->subs.end()) return;
    sub = it->second;
    impl_->subs.erase(it);
  }
  natsSubscription_Unsubscribe(sub);  // the completion callback frees the handler
  natsSubscription_Destroy(sub);
}

namespace {

/// Settles one message; failures to ack are logged (the server redelivers, submit is idempotent).
void settle(natsMsg* msg, bool ack, std::chrono::milliseconds nak_delay, const nlohmann::json& fields) {
  const natsStatus s = ack ? natsMsg_Ack(msg, nullptr) : natsMsg_NakWithDelay(msg, nak_delay.count(), nullptr);
  if (s != NATS_OK) {
    nlohmann::json f = fields;
    f["error"] = nats_error_text(s);
    core::log::warn(ack ? "nats ack failed" : "nats nak failed", f);
  }
}

/// Parses one job message and submits it; settles it (ack / nak with delay). Never throws.
void handle_message(NatsBus& bus, RunManager& runs, natsMsg* msg) {
  const auto& opts = bus.options();
  const char* data = natsMsg_GetData(msg);
  const int len = natsMsg_GetDataLength(msg);
  const std::string body = (data != nullptr && len > 0) ? std::string(data, static_cast<std::size_t>(len)) : std::string();
  const char* subject_c = natsMsg_GetSubject(msg);
  nlohmann::json fields = {{"subject", subject_c != nullptr ? subject_c : ""}, {"bytes", body.size()}};
  try {
    core::http::Headers headers = message_headers(msg);
    if (!headers.get("Content-Type")) headers.set("Content-Type", sniff_media_type(body));

    auto reject = [&](const std::string& detail, const nlohmann::json& errors) {
      // Poison message: ack so it is never redelivered, and answer on the status subject.
      const std::string id = job_id_hint(body);
      fields["job_id"] = id;
      fields["errors"] = errors;
      core::log::warn("nats job rejected: " + detail, fields);
      nats_jobs().inc({{"outcome", "invalid"}});
      settle(msg, true, opts.nak_delay, fields);
      bus.publish_status(id, "failed", "invalid job: " + detail, {{"errors", errors}});
    };

    if (body.size() > opts.max_message_bytes) {
      reject("message larger than " + std::to_string(opts.max_message_bytes) + " bytes",
             nlohmann::json::array({{{"field", "body"}, {"message", "too large"}}}));
      return;
    }
    auto parsed = api::parse_job_message(headers, body);
    if (auto* err = std::get_if<api::InvokeError>(&parsed)) {
      nlohmann::json list = nlohmann::json::array();
      for (const auto& e : err->errors) list.push_back({{"field", e.field}, {"message", e.message}});
      reject(err->detail, list);
      return;
    }
    auto& ok = std::get<api::ParsedInvoke>(parsed);
    if (auto tp = headers.get("traceparent"); tp && core::tracing::parse_traceparent(*tp)) ok.job.traceparent = *tp;
    fields["thread_id"] = ok.job.job_id;
    fields["trace_id"] = ok.job.trace_id;
    fields["mode"] = ok.mode;
    if (ok.cloudevent.is_object() && ok.cloudevent.contains("id")) fields["cloudevent_id"] = ok.cloudevent["id"];

    SubmitResult res;
    try {
      res = runs.submit(std::move(ok.job));  // `fields` already names it
    } catch (const std::exception& e) {
      fields["error"] = e.what();
      core::log::error("nats job not accepted: database error; redelivery later", fields);
      nats_jobs().inc({{"outcome", "error"}});
      settle(msg, false, opts.nak_delay, fields);
      return;
    }
    switch (res.outcome) {
      case SubmitOutcome::started:
        core::log::info("run accepted", fields);
        nats_jobs().inc({{"outcome", "accepted"}});
        settle(msg, true, opts.nak_delay, fields);
        return;
      case SubmitOutcome::existing:
        // Idempotent on job_id: a redelivered or re-sent job never runs twice.
        fields["thread_status"] = res.thread_status.empty() ? std::string(store::kQueued) : res.thread_status;
        core::log::info("duplicate job: existing thread kept", fields);
        nats_jobs().inc({{"outcome", "duplicate"}});
        settle(msg, true, opts.nak_delay, fields);
        return;
      case SubmitOutcome::queue_full:
        core::log::warn("nats job deferred: queue full", fields);
        nats_jobs().inc({{"outcome", "queue_full"}});
        settle(msg, false, opts.nak_delay, fields);
        return;
      case SubmitOutcome::shutting_down:
        nats_jobs().inc({{"outcome", "shutting_down"}});
        settle(msg, false, std::chrono::milliseconds(0), fields);
        return;
    }
  } catch (const std::exception& e) {
    fields["error"] = e.what();
    core::log::error("nats job handling failed; redelivery later", fields);
    nats_jobs().inc({{"outcome", "error"}});
    settle(msg, false, opts.nak_delay, fields);
  }
}

}  // namespace

void NatsBus::fetch_loop() {
  int failures = 0;
  while (!stop_) {
    if (runs_->queue_full()) {
      // Back-pressure: leave jobs in the stream (consumer lag drives scaling) until a slot frees.
      std::unique_lock lk(stop_mu_);
      stop_cv_.wait_for(lk, std::chrono::milliseconds(500), [&] { return stop_.load(); });
      continue;
    }
    if (impl_->sub == nullptr && !subscribe()) {
      std::unique_lock lk(stop_mu_);
      stop_cv_.wait_for(lk, std::chrono::seconds(2), [&] { return stop_.load(); });
      continue;
    }
    natsMsgList list{nullptr, 0};
    jsErrCode jerr = static_cast<jsErrCode>(0);
    const natsStatus s = natsSubscription_Fetch(&list, impl_->sub, options_.fetch_batch,
                                                static_cast<int64_t>(options_.fetch_wait.count()), &jerr);
    if (s == NATS_TIMEOUT) {
      failures = 0;
      natsMsgList_Destroy(&list);
      continue;
    }
    if (s != NATS_OK) {
      natsMsgList_Destroy(&list);
      ++failures;
      if (failures == 1 || failures % 30 == 0) {
        core::log::warn("nats fetch failed", {{"error", nats_error_text(s, jerr)}, {"consecutive", failures},
                                              {"state", state()}});
      }
      // After repeated failures while connected the stream or consumer may be gone (e.g. a
      // server reset without storage): re-create them as needed and re-bind.
      if (failures % 5 == 0 && connected()) {
        try {
          ensure_jetstream();
          subscribe();
        } catch (const std::exception& e) {
          core::log::warn("nats re-setup failed", {{"error", e.what()}});
        }
      }
      std::unique_lock lk(stop_mu_);
      stop_cv_.wait_for(lk, std::chrono::milliseconds(std::min(5000, 200 * failures)), [&] { return stop_.load(); });
      continue;
    }
    failures = 0;
    for (int i = 0; i < list.Count; ++i) handle_message(*this, *runs_, list.Msgs[i]);
    natsMsgList_Destroy(&list);
  }
}

}  // namespace spec_engine::bus
