// /ready tells the truth about the database, the replica link and the leases, and a database
// whose pool stays busy answers 503 + Retry-After instead of hanging.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "core/http_client.hpp"
#include "core/server.hpp"
#include "spec_engine/api/routes.hpp"
#include "../test_db.hpp"
#include "../test_host.hpp"

namespace {

using namespace std::chrono_literals;

TEST(Ready, ReportsEachDependencyAndAnswers503WhenTheDatabasePoolStaysBusy) {
  auto tdb = spec_engine::testing::make_sqlite();
  core::db::DbConfig one;
  one.sqlite_path = tdb->temp_dir / "spec_engine.db";
  one.pool_size = 1;
  one.lease_timeout = 200ms;  // --db-wait-ms
  core::db::Database small(one);
  spec_engine::store::Store store(small);
  spec_engine::bus::EventHub hub;
  spec_engine::bus::EventLog log(store, nullptr);
  spec_engine::testing::Host host(1, 1);
  spec_engine::bus::RunManager runs(store, log, hub, {}, host.rt, host.http);
  std::atomic<bool> link_ok{true};
  spec_engine::api::ApiContext ctx{&store, &hub, &runs, &host.rt};
  ctx.link_health = [&] { return link_ok ? std::string("ok") : std::string("LISTEN connection down"); };
  ctx.lease_health = [] { return std::string("ok"); };
  core::http::Router router;
  spec_engine::api::register_routes(router, ctx);
  core::http::Server server({}, std::move(router));
  server.start();
  const std::string base = "http://127.0.0.1:" + std::to_string(server.port());

  auto r = core::http::request({"GET", base + "/ready", {}, "", 5s});
  EXPECT_EQ(r.status, 200) << r.body;
  auto body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body["checks"]["database"], "ok");
  EXPECT_EQ(body["checks"]["bus"], "ok");
  EXPECT_EQ(body["checks"]["leases"], "ok");

  link_ok = false;
  r = core::http::request({"GET", base + "/ready", {}, "", 5s});
  EXPECT_EQ(r.status, 503);
  body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body["checks"]["bus"], "LISTEN connection down");
  EXPECT_EQ(body["reasons"][0], "bus: LISTEN connection down");
  link_ok = true;

  {
    core::db::Session held(small);  // the only session: every request waits at most 200 ms
    const auto t0 = std::chrono::steady_clock::now();
    r = core::http::request({"GET", base + "/spec-engine/state/x", {}, "", 5s});
    EXPECT_EQ(r.status, 503) << r.body;
    EXPECT_EQ(r.headers.get("Retry-After").value_or(""), "1");  // core::db::PoolTimeout's advice
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
    r = core::http::request({"GET", base + "/ready", {}, "", 5s});
    EXPECT_EQ(r.status, 503);
    body = nlohmann::json::parse(r.body);
    EXPECT_EQ(body["checks"]["database"], "busy") << "a full pool is not an unreachable database";
    EXPECT_EQ(body["reasons"][0], "database busy");
  }
  r = core::http::request({"GET", base + "/spec-engine/state/x", {}, "", 5s});
  EXPECT_EQ(r.status, 404);
  server.stop();
  runs.shutdown(0ms);
  log.stop(1s);
}

}  // namespace
