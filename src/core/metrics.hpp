#pragma once
// Minimal Prometheus registry and text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/). Thread-safe.

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace core::metrics {

using Labels = std::map<std::string, std::string>;

/// Monotonic counter family; `inc` creates the labelled series on first use.
class Counter {
 public:
  /// Adds `v` (unitless, >= 0) to the series for `labels`, creating it at 0 first.
  /// Throws std::invalid_argument if `v` < 0 (counters only go up; exposition format 0.0.4).
  void inc(const Labels& labels = {}, double v = 1.0);
  /// Current value of the series for `labels`; 0 if it was never incremented. Never throws.
  double value(const Labels& labels = {}) const;
 private:
  friend class Registry;
  mutable std::mutex mu_;
  std::map<Labels, double> series_;
};

/// Gauge family (set/inc/dec).
class Gauge {
 public:
  /// Sets the series for `labels` to `v` (any value, including negative), creating it.
  void set(double v, const Labels& labels = {});
  /// Adds `v` to the series for `labels` (created at 0 on first use). Any sign accepted; never throws.
  void inc(const Labels& labels = {}, double v = 1.0);
  /// Subtracts `v` from the series for `labels` (created at 0 on first use). Never throws.
  void dec(const Labels& labels = {}, double v = 1.0);
  /// Current value of the series for `labels`; 0 if it was never touched. Never throws.
  double value(const Labels& labels = {}) const;
 private:
  friend class Registry;
  mutable std::mutex mu_;
  std::map<Labels, double> series_;
};

/// Histogram family with fixed upper bounds (seconds by convention); emits _bucket/_sum/_count.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v, const Labels& labels = {});
  /// Number of observations of one series (for tests).
  std::uint64_t count(const Labels& labels = {}) const;
 private:
  friend class Registry;
  struct Series { std::vector<std::uint64_t> buckets; double sum = 0; std::uint64_t count = 0; };
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::map<Labels, Series> series_;
};

/// Default latency buckets in seconds: 5 ms .. 60 s.
std::vector<double> default_buckets();

/// Holds metric families by name. Families live as long as the registry.
class Registry {
 public:
  /// Returns the family, creating it on first call. Same name with another type throws std::logic_error.
  Counter& counter(const std::string& name, const std::string& help);
  Gauge& gauge(const std::string& name, const std::string& help);
  Histogram& histogram(const std::string& name, const std::string& help,
                       std::vector<double> bounds = default_buckets());
  /// Renders every family in the text exposition format (Content-Type
  /// "text/plain; version=0.0.4"). Label values are escaped (\\, \", \n).
  std::string render() const;

 private:
  struct Family { std::string name, help, type; std::unique_ptr<Counter> c; std::unique_ptr<Gauge> g; std::unique_ptr<Histogram> h; };
  mutable std::mutex mu_;
  std::map<std::string, Family> families_;
};

/// The process-wide registry used by the servers and services.
Registry& global();

}  // namespace core::metrics
