#include "core/metrics.hpp"

#include <gtest/gtest.h>

using core::metrics::Registry;

TEST(Metrics, RendersCountersGaugesHistogramsInExpositionFormat) {
  Registry r;
  r.counter("runs_total", "Runs started").inc({{"status", "ok"}});
  r.counter("runs_total", "Runs started").inc({{"status", "ok"}}, 2);
  r.gauge("streams", "Open streams").set(3);
  auto& h = r.histogram("dur_seconds", "Duration", {0.1, 1});
  h.observe(0.05);
  h.observe(0.5);
  h.observe(5);
  const auto text = r.render();
  EXPECT_NE(text.find("# TYPE runs_total counter\nruns_total{status=\"ok\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("streams 3\n"), std::string::npos);
  EXPECT_NE(text.find("dur_seconds_bucket{le=\"0.10000000000000001\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("dur_seconds_bucket{le=\"1\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("dur_seconds_bucket{le=\"+Inf\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("dur_seconds_count 3\n"), std::string::npos);
  EXPECT_EQ(h.count(), 3u);
}

TEST(Metrics, EscapesLabelValuesAndRejectsTypeClash) {
  Registry r;
  r.counter("c_total", "help").inc({{"path", "a\"b\\c\nd"}});
  EXPECT_NE(r.render().find(R"(c_total{path="a\"b\\c\nd"} 1)"), std::string::npos) << r.render();
  EXPECT_THROW(r.gauge("c_total", "x"), std::logic_error);
  EXPECT_THROW(r.counter("c_total", "x").inc({}, -1), std::invalid_argument);
}
