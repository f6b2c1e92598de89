#pragma once
// Replica link over NATS (docs/event-path-and-replicas.md): after commit every stored event is
// published on spec.events.<thread_id> (its wire JSON); a replica subscribes to a thread's
// subject while it has streams on it and hands the events to its EventHub. Deletes go to
// spec.control.<thread_id> ({"action": "delete", "thread_id"}), which every replica follows.
// NATS may drop messages (reconnects): a stream that sees a gap, or nothing for a while, reads
// the table.

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "spec_engine/bus/event_hub.hpp"
#include "spec_engine/bus/nats_bus.hpp"
#include "spec_engine/bus/replica_link.hpp"

namespace spec_engine::bus {

/// Subject prefixes of the NATS link.
struct NatsLinkOptions {
  std::string events_prefix = "spec.events.";
  std::string control_prefix = "spec.control.";
};

class NatsLink : public ReplicaLink {
 public:
  /// `nats` must be connected and outlive the link.
  NatsLink(NatsBus& nats, EventHub& hub, std::function<void(const std::string&)> on_delete,
           NatsLinkOptions options = {});
  ~NatsLink() override;
  void start() override;
  void stop() override;
  void published(const std::vector<store::EventRecord>& events) override;
  void watch(const std::string& thread_id) override;
  void unwatch(const std::string& thread_id) override;
  void send_delete(const std::string& thread_id) override;
  std::string health() const override;
  std::string name() const override { return "nats"; }

 private:
  NatsBus& nats_;
  EventHub& hub_;
  std::function<void(const std::string&)> on_delete_;
  NatsLinkOptions options_;
  std::mutex mu_;
  std::uint64_t control_sub_ = 0;
  std::map<std::string, std::uint64_t> watched_;
};

}  // namespace spec_engine::bus
