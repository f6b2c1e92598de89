// In-process fan-out: bounded mailboxes plus a wake-up signal per subscription.
#include "spec_engine/bus/event_hub.hpp"

#include <algorithm>

namespace spec_engine::bus {

Frame Frame::of(const EventRecord& ev) {
  return {ev.seq, ev.event_type, std::make_shared<const std::string>(ev.to_text())};
}

Subscription::News Subscription::take() {
  std::lock_guard lk(mu_);
  News out = std::move(news_);
  news_ = News{};
  bytes_ = 0;
  return out;
}

void EventHub::set_watch_hooks(std::function<void(const std::string&)> on_watch,
                               std::function<void(const std::string&)> on_unwatch) {
  std::lock_guard lk(hooks_mu_);
  on_watch_ = std::move(on_watch);
  on_unwatch_ = std::move(on_unwatch);
}

std::shared_ptr<Subscription> EventHub::subscribe(const std::string& thread_id, const core::async::Executor& ex) {
  auto sub = std::make_shared<Subscription>(thread_id, ex);
  std::lock_guard hk(hooks_mu_);
  bool first = false;
  {
    std::lock_guard lk(mu_);
    first = subs_.count(thread_id) == 0;
    subs_.emplace(thread_id, sub);
  }
  if (first && on_watch_) on_watch_(thread_id);
  return sub;
}

void EventHub::unsubscribe(const std::shared_ptr<Subscription>& sub) {
  if (!sub) return;
  std::lock_guard hk(hooks_mu_);
  bool last = false;
  bool found = false;
  {
    std::lock_guard lk(mu_);
    auto range = subs_.equal_range(sub->thread_id());
    for (auto i = range.first; i != range.second; ++i) {
      if (i->second == sub) {
        subs_.erase(i);
        found = true;
        break;
      }
    }
    last = found && subs_.count(sub->thread_id()) == 0;
  }
  if (last && on_unwatch_) on_unwatch_(sub->thread_id());
}

std::vector<std::shared_ptr<Subscription>> EventHub::of(const std::string& thread_id) const {
  std::vector<std::shared_ptr<Subscription>> out;
  std::lock_guard lk(mu_);
  auto range = subs_.equal_range(thread_id);
  for (auto i = range.first; i != range.second; ++i) out.push_back(i->second);
  return out;
}

void EventHub::publish(const EventRecord& event) { publish(std::vector<EventRecord>{event}); }

void EventHub::publish(const std::vector<EventRecord>& events) {
  // Per run of one thread: serialise once (only when someone listens), deliver to each subscriber.
  std::size_t i = 0;
  while (i < events.size()) {
    std::size_t j = i;
    while (j < events.size() && events[j].thread_id == events[i].thread_id) ++j;
    const auto subs = of(events[i].thread_id);
    if (!subs.empty()) {
      std::vector<Frame> frames;
      frames.reserve(j - i);
      for (std::size_t k = i; k < j; ++k) frames.push_back(Frame::of(events[k]));
      deliver(subs, frames);
    }
    i = j;
  }
}

void EventHub::publish_frames(const std::string& thread_id, const std::vector<Frame>& frames) {
  const auto subs = of(thread_id);
  if (!subs.empty()) deliver(subs, frames);
}

void EventHub::deliver(const std::vector<std::shared_ptr<Subscription>>& subs, const std::vector<Frame>& frames) {
  for (const auto& sub : subs) {
    {
      std::lock_guard lk(sub->mu_);
      for (const auto& f : frames) {
        if (sub->news_.overflow) break;
        const std::size_t size = f.text ? f.text->size() : 0;
        if (sub->news_.events.size() >= options_.max_pending_events ||
            sub->bytes_ + size > options_.max_pending_bytes) {
          // The stream is behind: drop the mailbox, it reads the table instead.
          sub->news_.events.clear();
          sub->bytes_ = 0;
          sub->news_.overflow = true;
          break;
        }
        sub->news_.events.push_back(f);
        sub->bytes_ += size;
      }
    }
    sub->signal().notify();
  }
}

void EventHub::wake(const std::string& thread_id, std::int64_t seq) {
  for (const auto& sub : of(thread_id)) {
    {
      std::lock_guard lk(sub->mu_);
      sub->news_.stored_up_to = std::max(sub->news_.stored_up_to, seq);
    }
    sub->signal().notify();
  }
}

void EventHub::wake_all() {
  std::vector<std::shared_ptr<Subscription>> all;
  {
    std::lock_guard lk(mu_);
    for (const auto& [id, sub] : subs_) all.push_back(sub);
  }
  for (const auto& sub : all) {
    {
      std::lock_guard lk(sub->mu_);
      sub->news_.overflow = true;  // "read the table"
    }
    sub->signal().notify();
  }
}

void EventHub::drop_thread(const std::string& thread_id) {
  for (const auto& sub : of(thread_id)) {
    {
      std::lock_guard lk(sub->mu_);
      sub->news_.deleted = true;
    }
    sub->signal().notify();
  }
}

std::size_t EventHub::subscriber_count(const std::string& thread_id) const {
  std::lock_guard lk(mu_);
  return thread_id.empty() ? subs_.size() : subs_.count(thread_id);
}

}  // namespace spec_engine::bus
