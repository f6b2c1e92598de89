#pragma once
// Spans ended while a SpanSink lives (core::tracing::set_test_sink), as OTLP/JSON Span objects
// (core::tracing::Span::to_otlp), for tests of what code puts into traces. One sink at a time.

#include <algorithm>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/tracing.hpp"

namespace core::testing {

class SpanSink {
 public:
  SpanSink() {
    core::tracing::set_test_sink([this](const nlohmann::json& s) {
      std::lock_guard lk(mu_);
      spans_.push_back(s);
    });
  }
  ~SpanSink() { core::tracing::set_test_sink({}); }
  SpanSink(const SpanSink&) = delete;
  SpanSink& operator=(const SpanSink&) = delete;

  /// Every span ended so far, in the order they ended.
  std::vector<nlohmann::json> spans() const {
    std::lock_guard lk(mu_);
    return spans_;
  }
  /// The spans named `name`, in the order they ended.
  std::vector<nlohmann::json> named(const std::string& name) const {
    std::vector<nlohmann::json> out;
    for (const auto& s : spans())
      if (s["name"] == name) out.push_back(s);
    return out;
  }
  /// The spans whose parent is the span id `parent` and whose name starts with `prefix`, in start
  /// order.
  std::vector<nlohmann::json> children(const std::string& parent, const std::string& prefix = "") const {
    std::vector<nlohmann::json> out;
    for (const auto& s : spans())
      if (s.value("parentSpanId", "") == parent && s["name"].get<std::string>().rfind(prefix, 0) == 0) out.push_back(s);
    std::stable_sort(out.begin(), out.end(), [](const nlohmann::json& a, const nlohmann::json& b) {
      return std::stoll(a["startTimeUnixNano"].get<std::string>()) < std::stoll(b["startTimeUnixNano"].get<std::string>());
    });
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::vector<nlohmann::json> spans_;
};

}  // namespace core::testing
