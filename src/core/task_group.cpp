// TaskGroup (core/task_group.hpp).
#include "core/task_group.hpp"

#include <condition_variable>
#include <mutex>

#include "core/log.hpp"

namespace core::async {

// ---- TaskGroup -------------------------------------------------------------------------

struct TaskGroup::State {
  std::string name;
  mutable std::mutex mu;
  std::condition_variable cv;
  std::size_t running = 0;
};

TaskGroup::TaskGroup(Runtime& runtime, std::string name) : runtime_(runtime), state_(std::make_shared<State>()) {
  state_->name = std::move(name);
}

void TaskGroup::spawn(Task<void> task) {
  {
    std::lock_guard lk(state_->mu);
    ++state_->running;
  }
  auto st = state_;
  runtime_.spawn(std::move(task), [st](std::exception_ptr e) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        log::error("task_failed", {{"group", st->name}, {"error", ex.what()}});
      } catch (...) {
        log::error("task_failed", {{"group", st->name}, {"error", "unknown exception"}});
      }
    }
    std::lock_guard lk(st->mu);
    --st->running;
    st->cv.notify_all();
  });
}

bool TaskGroup::wait(std::chrono::milliseconds timeout) {
  std::unique_lock lk(state_->mu);
  return state_->cv.wait_for(lk, timeout, [this] { return state_->running == 0; });
}

std::size_t TaskGroup::running() const {
  std::lock_guard lk(state_->mu);
  return state_->running;
}

}  // namespace core::async
