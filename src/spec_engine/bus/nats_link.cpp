// NATS link between engine replicas: stored events and control messages.
#include "spec_engine/bus/nats_link.hpp"

#include "core/json_parse.hpp"
#include "core/log.hpp"

namespace spec_engine::bus {

NatsLink::NatsLink(NatsBus& nats, EventHub& hub, std::function<void(const std::string&)> on_delete,
                   NatsLinkOptions options)
    : nats_(nats), hub_(hub), on_delete_(std::move(on_delete)), options_(std::move(options)) {}

NatsLink::~NatsLink() { stop(); }

void NatsLink::start() {
  std::lock_guard lk(mu_);
  if (control_sub_ != 0) return;
  auto on_control = [this](const std::string& subject, const std::string& data) {
    const auto j = core::json::parse_or_null(data).value_or(nullptr);
    if (!j.is_object() || j.value("action", "") != "delete" || !j.contains("thread_id") ||
        !j["thread_id"].is_string()) {
      core::log::warn("nats control message ignored", {{"subject", subject}});
      return;
    }
    if (on_delete_) on_delete_(j["thread_id"].get<std::string>());
  };
  control_sub_ = nats_.subscribe(options_.control_prefix + ">", on_control);
  if (control_sub_ == 0) throw NatsError("cannot subscribe to " + options_.control_prefix + ">");
}

void NatsLink::stop() {
  std::lock_guard lk(mu_);
  if (control_sub_ != 0) nats_.unsubscribe(control_sub_);
  control_sub_ = 0;
  for (const auto& [id, sub] : watched_) nats_.unsubscribe(sub);
  watched_.clear();
}

void NatsLink::published(const std::vector<store::EventRecord>& events) {
  for (const auto& ev : events) {
    nats_.publish(status_subject(options_.events_prefix, ev.thread_id), *Frame::of(ev).text);
  }
}

void NatsLink::watch(const std::string& thread_id) {
  auto on_event = [this, thread_id](const std::string&, const std::string& data) {
    // The bounded parser (core/json_parse.hpp): a message nested deeper than the services
    // accept is ignored, never handed to the streams as a frame.
    const auto j = core::json::parse_or_null(data, core::json::kInternalLimits).value_or(nullptr);
    if (!j.is_object() || !j.contains("seq") || !j["seq"].is_number_integer() || !j.contains("event_type") ||
        !j["event_type"].is_string()) {
      return;  // not an event: ignore (the stream reads the table on silence anyway)
    }
    Frame f{j["seq"].get<std::int64_t>(), j["event_type"].get<std::string>(),
            std::make_shared<const std::string>(data)};
    hub_.publish_frames(thread_id, {f});
  };
  const auto id = nats_.subscribe(status_subject(options_.events_prefix, thread_id), on_event);
  std::lock_guard lk(mu_);
  if (id != 0) watched_[thread_id] = id;
}

void NatsLink::unwatch(const std::string& thread_id) {
  std::uint64_t id = 0;
  {
    std::lock_guard lk(mu_);
    auto it = watched_.find(thread_id);
    if (it == watched_.end()) return;
    id = it->second;
    watched_.erase(it);
  }
  nats_.unsubscribe(id);
}

void NatsLink::send_delete(const std::string& thread_id) {
  const std::string body = nlohmann::json{{"action", "delete"}, {"thread_id", thread_id}}.dump();
  if (!nats_.publish(status_subject(options_.control_prefix, thread_id), body)) {
    throw std::runtime_error("nats publish of the delete failed");
  }
}

std::string NatsLink::health() const {
  const auto st = nats_.state();
  return st == "connected" ? "ok" : "nats " + st;
}

}  // namespace spec_engine::bus
