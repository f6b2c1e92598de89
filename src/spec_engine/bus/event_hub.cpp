// In-process event fan-out with gap-free replay for late subscribers.
#include "spec_engine/bus/event_hub.hpp"

#include <algorithm>

namespace spec_engine::bus {

void EventHub::Subscriber::deliver_locked(const EventRecord& ev) {
  if (closed || ev.seq <= last) return;
  if (ev.seq > last + 1 && load) {
    // A gap: fetch what is missing from the store (stored before published).
    for (const auto& missing : load(last)) {
      if (missing.seq >= ev.seq) break;
      if (missing.seq <= last) continue;
      last = missing.seq;
      sink(missing);
    }
  }
  last = ev.seq;
  sink(ev);
}

std::shared_ptr<EventHub::Subscriber> EventHub::add(const std::string& thread_id, std::int64_t after_seq,
                                                    Loader load, Sink sink, std::function<void()> on_drop) {
  auto sub = std::make_shared<Subscriber>();
  sub->id = next_id_++;
  sub->thread_id = thread_id;
  sub->load = std::move(load);
  sub->sink = std::move(sink);
  sub->on_drop = std::move(on_drop);
  sub->last = after_seq < 0 ? 0 : after_seq;
  std::lock_guard lk(mu_);
  subs_[sub->id] = sub;
  by_thread_.emplace(thread_id, sub->id);
  return sub;
}

std::uint64_t EventHub::subscribe(const std::string& thread_id, std::int64_t after_seq, Loader load, Sink sink,
                                  std::function<void()> on_drop) {
  auto sub = add(thread_id, after_seq, std::move(load), std::move(sink), std::move(on_drop));
  std::vector<EventRecord> stored;
  try {
    if (sub->load) stored = sub->load(sub->last);
  } catch (...) {
    unsubscribe(sub->id);
    throw;
  }
  std::lock_guard lk(sub->mu);
  for (const auto& ev : stored) {
    if (sub->closed) break;
    if (ev.seq <= sub->last) continue;
    sub->last = ev.seq;
    sub->sink(ev);
  }
  std::sort(sub->buffer.begin(), sub->buffer.end(),
            [](const EventRecord& a, const EventRecord& b) { return a.seq < b.seq; });
  for (const auto& ev : sub->buffer) sub->deliver_locked(ev);
  sub->buffer.clear();
  sub->live = true;
  return sub->id;
}

std::uint64_t EventHub::subscribe_paged(const std::string& thread_id, std::int64_t after_seq, PageLoader load,
                                        Sink sink, Pacer pace, std::size_t page_size, std::function<void()> on_drop) {
  if (!load) return subscribe(thread_id, after_seq, nullptr, std::move(sink), std::move(on_drop));
  page_size = std::max<std::size_t>(1, page_size);
  // Gap reloads of a live subscriber and catch_up() read everything after `last` (normally little).
  auto sub = add(thread_id, after_seq, [load](std::int64_t a) { return load(a, 0); }, std::move(sink),
                 std::move(on_drop));
  {
    std::lock_guard lk(sub->mu);
    sub->paged = true;
  }
  // Delivers `ev` unless already delivered; caller holds sub->mu.
  auto deliver = [&sub](const EventRecord& ev) {
    if (ev.seq <= sub->last) return;
    sub->last = ev.seq;
    sub->sink(ev);
  };
  // Abandons the replay: nothing more is delivered.
  auto abandon = [&sub] {
    std::lock_guard lk(sub->mu);
    sub->closed = true;
  };
  try {
    // Full pages, paced, without the lock: publishers are never blocked by a slow replay.
    for (;;) {
      std::int64_t from = 0;
      {
        std::lock_guard lk(sub->mu);
        if (sub->closed) return sub->id;
        from = sub->last;
      }
      const auto page = load(from, page_size);
      for (const auto& ev : page) {
        if (pace && !pace()) {
          abandon();
          return sub->id;
        }
        std::lock_guard lk(sub->mu);
        if (sub->closed) return sub->id;
        deliver(ev);
      }
      if (page.size() < page_size) break;  // reached the end of what was stored
    }
    // Hand-off: under the lock (publishes wait), read what was stored since, then turn live.
    // Everything published before this point is stored, so it is in these pages.
    std::lock_guard lk(sub->mu);
    if (sub->closed) return sub->id;
    for (;;) {
      const auto rest = load(sub->last, page_size);
      for (const auto& ev : rest) deliver(ev);
      if (rest.size() < page_size) break;
    }
    sub->live = true;
  } catch (...) {
    unsubscribe(sub->id);
    throw;
  }
  return sub->id;
}

std::shared_ptr<EventHub::Subscriber> EventHub::find(std::uint64_t id) const {
  std::lock_guard lk(mu_);
  auto it = subs_.find(id);
  return it == subs_.end() ? nullptr : it->second;
}

void EventHub::catch_up(std::uint64_t subscription_id) {
  auto sub = find(subscription_id);
  if (!sub || !sub->load) return;
  std::lock_guard lk(sub->mu);
  if (sub->closed) return;
  for (const auto& ev : sub->load(sub->last)) sub->deliver_locked(ev);
}

std::int64_t EventHub::last_delivered(std::uint64_t subscription_id) const {
  auto sub = find(subscription_id);
  if (!sub) return 0;
  std::lock_guard lk(sub->mu);
  return sub->last;
}

void EventHub::unsubscribe(std::uint64_t subscription_id) {
  std::shared_ptr<Subscriber> sub;
  {
    std::lock_guard lk(mu_);
    auto it = subs_.find(subscription_id);
    if (it == subs_.end()) return;
    sub = it->second;
    subs_.erase(it);
    auto range = by_thread_.equal_range(sub->thread_id);
    for (auto i = range.first; i != range.second; ++i) {
      if (i->second == subscription_id) {
        by_thread_.erase(i);
        break;
      }
    }
  }
  std::lock_guard lk(sub->mu);  // waits for an in-flight delivery; none after this
  sub->closed = true;
  sub->buffer.clear();
}

void EventHub::publish(const EventRecord& event) {
  std::vector<std::shared_ptr<Subscriber>> targets;
  {
    std::lock_guard lk(mu_);
    auto range = by_thread_.equal_range(event.thread_id);
    for (auto i = range.first; i != range.second; ++i) targets.push_back(subs_.at(i->second));
  }
  for (auto& sub : targets) {
    std::lock_guard lk(sub->mu);
    if (sub->closed) continue;
    if (!sub->live) {
      if (!sub->paged) sub->buffer.push_back(event);  // a paged replay re-reads it from the store
    } else {
      try {
        sub->deliver_locked(event);
      } catch (...) {
        // A failing gap reload must not break the publisher; the subscriber keeps its position.
      }
    }
  }
}

void EventHub::drop_thread(const std::string& thread_id) {
  std::vector<std::shared_ptr<Subscriber>> targets;
  {
    std::lock_guard lk(mu_);
    auto range = by_thread_.equal_range(thread_id);
    for (auto i = range.first; i != range.second; ++i) {
      targets.push_back(subs_.at(i->second));
      subs_.erase(i->second);
    }
    by_thread_.erase(thread_id);
  }
  for (auto& sub : targets) {
    std::function<void()> drop;
    {
      std::lock_guard lk(sub->mu);
      sub->closed = true;
      drop = sub->on_drop;
    }
    if (drop) drop();
  }
}

std::size_t EventHub::subscriber_count(const std::string& thread_id) const {
  std::lock_guard lk(mu_);
  return thread_id.empty() ? subs_.size() : by_thread_.count(thread_id);
}

}  // namespace spec_engine::bus
