#pragma once
// A group of coroutines spawned on a core::async::Runtime and counted until they end, so that
// their owner can wait for them before it goes away.

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "core/async.hpp"

namespace core::async {

/// Tasks spawned on a Runtime and counted until they end, so that their owner can wait for them
/// before it goes away (e.g. in its stop()). Thread-safe. An exception escaping a task is logged
/// with the group's name.
class TaskGroup {
 public:
  TaskGroup(Runtime& runtime, std::string name);
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;
  /// Starts `task` on the runtime's executor and counts it until it ended.
  void spawn(Task<void> task);
  /// Waits until no task of the group runs, at most `timeout`; true when none runs.
  bool wait(std::chrono::milliseconds timeout);
  /// Tasks of the group running now.
  std::size_t running() const;

 private:
  struct State;
  Runtime& runtime_;
  std::shared_ptr<State> state_;
};

}  // namespace core::async
