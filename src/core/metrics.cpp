#include "core/metrics.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace core::metrics {
namespace {
// Label values escape backslash, double quote and line feed (exposition format 0.0.4).
std::string escape_label(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}
// HELP text escapes backslash and line feed.
std::string escape_help(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}
std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}
std::string label_text(const Labels& labels, const std::string& extra_key = {}, const std::string& extra_val = {}) {
  if (labels.empty() && extra_key.empty()) return {};
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out += ',';
    first = false;
    out += k + "=\"" + escape_label(v) + "\"";
  }
  if (!extra_key.empty()) {
    if (!first) out += ',';
    out += extra_key + "=\"" + escape_label(extra_val) + "\"";
  }
  return out + "}";
}
}  // namespace

void Counter::inc(const Labels& labels, double v) {
  if (v < 0) throw std::invalid_argument("counter increment must be >= 0");
  std::lock_guard lk(mu_);
  series_[labels] += v;
}
double Counter::value(const Labels& labels) const {
  std::lock_guard lk(mu_);
  auto it = series_.find(labels);
  return it == series_.end() ? 0.0 : it->second;
}

void Gauge::set(double v, const Labels& labels) {
  std::lock_guard lk(mu_);
  series_[labels] = v;
}
void Gauge::inc(const Labels& labels, double v) {
  std::lock_guard lk(mu_);
  series_[labels] += v;
}
void Gauge::dec(const Labels& labels, double v) {
  std::lock_guard lk(mu_);
  series_[labels] -= v;
}
double Gauge::value(const Labels& labels) const {
  std::lock_guard lk(mu_);
  auto it = series_.find(labels);
  return it == series_.end() ? 0.0 : it->second;
}

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  for (std::size_t i = 1; i < bounds_.size(); ++i)
    if (!(bounds_[i - 1] < bounds_[i])) throw std::invalid_argument("histogram bounds must increase");
}
void Histogram::observe(double v, const Labels& labels) {
  std::lock_guard lk(mu_);
  auto& s = series_[labels];
  if (s.buckets.empty()) s.buckets.assign(bounds_.size(), 0);
  for (std::size_t i = 0; i < bounds_.size(); ++i)
    if (v <= bounds_[i]) ++s.buckets[i];
  s.sum += v;
  ++s.count;
}
std::uint64_t Histogram::count(const Labels& labels) const {
  std::lock_guard lk(mu_);
  auto it = series_.find(labels);
  return it == series_.end() ? 0 : it->second.count;
}

std::vector<double> default_buckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

Counter& Registry::counter(const std::string& name, const std::string& help) {
  std::lock_guard lk(mu_);
  auto& f = families_[name];
  if (f.type.empty()) { f.name = name; f.help = help; f.type = "counter"; f.c = std::make_unique<Counter>(); }
  if (f.type != "counter") throw std::logic_error("metric " + name + " already registered as " + f.type);
  return *f.c;
}
Gauge& Registry::gauge(const std::string& name, const std::string& help) {
  std::lock_guard lk(mu_);
  auto& f = families_[name];
  if (f.type.empty()) { f.name = name; f.help = help; f.type = "gauge"; f.g = std::make_unique<Gauge>(); }
  if (f.type != "gauge") throw std::logic_error("metric " + name + " already registered as " + f.type);
  return *f.g;
}
Histogram& Registry::histogram(const std::string& name, const std::string& help, std::vector<double> bounds) {
  std::lock_guard lk(mu_);
  auto& f = families_[name];
  if (f.type.empty()) {
    f.name = name; f.help = help; f.type = "histogram";
    f.h = std::make_unique<Histogram>(std::move(bounds));
  }
  if (f.type != "histogram") throw std::logic_error("metric " + name + " already registered as " + f.type);
  return *f.h;
}

std::string Registry::render() const {
  std::lock_guard lk(mu_);
  std::string out;
  for (const auto& [name, f] : families_) {
    out += "# HELP " + name + " " + escape_help(f.help) + "\n";
    out += "# TYPE " + name + " " + f.type + "\n";
    if (f.c) {
      std::lock_guard l2(f.c->mu_);
      for (const auto& [labels, v] : f.c->series_) out += name + label_text(labels) + " " + format_value(v) + "\n";
    } else if (f.g) {
      std::lock_guard l2(f.g->mu_);
      for (const auto& [labels, v] : f.g->series_) out += name + label_text(labels) + " " + format_value(v) + "\n";
    } else if (f.h) {
      std::lock_guard l2(f.h->mu_);
      for (const auto& [labels, s] : f.h->series_) {
        for (std::size_t i = 0; i < f.h->bounds_.size(); ++i)
          out += name + "_bucket" + label_text(labels, "le", format_value(f.h->bounds_[i])) + " " +
                 std::to_string(s.buckets[i]) + "\n";
        out += name + "_bucket" + label_text(labels, "le", "+Inf") + " " + std::to_string(s.count) + "\n";
        out += name + "_sum" + label_text(labels) + " " + format_value(s.sum) + "\n";
        out += name + "_count" + label_text(labels) + " " + std::to_string(s.count) + "\n";
      }
    }
  }
  return out;
}

Registry& global() {
  static Registry r;
  return r;
}

}  // namespace core::metrics
