// Store round trips on SQLite, and on PostgreSQL when TEST_PG_URL is set.
#include "spec_engine/store/store.hpp"

#include <gtest/gtest.h>

#include <thread>

#include "../store_fixture.hpp"

namespace {

using spec_engine::store::EventRecord;
using spec_engine::store::Store;
using spec_engine::store::ThreadRecord;

class StoreTest : public spec_engine::testing::StoreFixture {
 protected:
  ThreadRecord thread(const std::string& id) {
    ThreadRecord r;
    r.thread_id = id;
    r.job_id = id;
    r.trace_id = "trace-1";
    r.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    r.agent_definition = {{"graph", {{"nodes", nlohmann::json::array({{{"id", "a"}}})}, {"entryPoint", "a"}}}};
    r.input_payload = {{"messages", "hi \u00e9"}};
    return r;
  }
  EventRecord event(const std::string& id, std::int64_t seq, const std::string& type) {
    return {id, seq, type, {{"n", seq}, {"text", "x\"y'z"}}, "2026-01-01T00:00:00.000000Z"};
  }
};

TEST_P(StoreTest, CreateIsIdempotentOnThreadId) {
  EXPECT_TRUE(store_->create_thread(thread("job-1")));
  EXPECT_FALSE(store_->create_thread(thread("job-1")));
  auto t = store_->get_thread("job-1");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->status, "queued");
  EXPECT_EQ(t->trace_id, "trace-1");
  EXPECT_EQ(t->input_payload["messages"], "hi \u00e9");
  EXPECT_EQ(t->agent_definition["graph"]["entryPoint"], "a");
  EXPECT_TRUE(t->result.is_null());
  EXPECT_TRUE(t->generated_files.is_null());
  EXPECT_EQ(t->error, "");
  EXPECT_EQ(t->last_seq, 0);
  EXPECT_FALSE(t->created_at.empty());
  EXPECT_FALSE(store_->get_thread("nope"));
}

TEST_P(StoreTest, ThreadProgressIsStatusAndLastStoredSeq) {
  EXPECT_FALSE(store_->thread_progress("t"));
  ASSERT_TRUE(store_->create_thread(thread("t")));
  auto p = store_->thread_progress("t");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->status, "queued");
  EXPECT_EQ(p->last_seq, 0);
  store_->append_event(event("t", 1, "on_state_update"));
  store_->finish("t", "completed", {{"output", "x"}}, nlohmann::json::object(), "", event("t", 2, "end"));
  p = store_->thread_progress("t");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->status, "completed");
  EXPECT_EQ(p->last_seq, 2);
  EXPECT_EQ(p->last_seq, store_->get_thread("t")->last_seq);
  ASSERT_TRUE(store_->delete_thread("t"));
  EXPECT_FALSE(store_->thread_progress("t"));
}

TEST_P(StoreTest, EventsRoundTripInOrderAndTrackLastSeq) {
  ASSERT_TRUE(store_->create_thread(thread("t")));
  for (int i = 1; i <= 5; ++i) store_->append_event(event("t", i, i % 2 ? "on_llm_stream" : "on_state_update"));
  EXPECT_THROW(store_->append_event(event("t", 3, "dup")), std::exception);
  EXPECT_EQ(store_->get_thread("t")->last_seq, 5);
  const auto progress = store_->thread_progress("t");
  ASSERT_TRUE(progress);
  EXPECT_EQ(progress->status, "queued");
  EXPECT_EQ(progress->last_seq, 5);
  EXPECT_FALSE(store_->thread_progress("nope"));
  auto all = store_->events_after("t", 0);
  ASSERT_EQ(all.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(all[i].seq, i + 1);
  EXPECT_EQ(all[1].event_type, "on_state_update");
  EXPECT_EQ(all[1].data["text"], "x\"y'z");
  auto tail = store_->events_after("t", 3);
  ASSERT_EQ(tail.size(), 2u);
  EXPECT_EQ(tail[0].seq, 4);
  EXPECT_EQ(store_->events_after("t", 2, 2).size(), 2u);
  auto j = all[0].to_json();
  EXPECT_EQ(j["thread_id"], "t");
  EXPECT_EQ(j["seq"], 1);
  EXPECT_TRUE(j.contains("ts"));
}

TEST_P(StoreTest, FinishStoresOutcomeAndEndTogether) {
  ASSERT_TRUE(store_->create_thread(thread("t")));
  store_->append_event(event("t", 1, "on_state_update"));
  EventRecord end{"t", 2, "end", {{"status", "failed"}, {"error", "boom"}}, "2026-01-01T00:00:01Z"};
  store_->finish("t", "failed", {{"messages", {"m"}}}, {{"/a.md", {{"content", {"x"}}}}}, "boom", end);
  auto t = store_->get_thread("t");
  EXPECT_EQ(t->status, "failed");
  EXPECT_EQ(t->error, "boom");
  EXPECT_EQ(t->last_seq, 2);
  EXPECT_EQ(t->generated_files["/a.md"]["content"][0], "x");
  auto st = t->to_state_json();
  EXPECT_EQ(st["status"], "failed");
  EXPECT_EQ(st["result"]["messages"][0], "m");
  EXPECT_EQ(store_->events_after("t", 1)[0].event_type, "end");
}

TEST_P(StoreTest, CheckpointKeepsLatest) {
  ASSERT_TRUE(store_->create_thread(thread("t")));
  EXPECT_FALSE(store_->latest_checkpoint("t"));
  store_->save_checkpoint("t", 1, {{"step", 1}});
  store_->save_checkpoint("t", 4, {{"step", 2}, {"files", nlohmann::json::object()}});
  auto cp = store_->latest_checkpoint("t");
  ASSERT_TRUE(cp);
  EXPECT_EQ((*cp)["step"], 2);
}

TEST_P(StoreTest, CheckpointsCarryTheThreadsUsageAndFinishKeepsIt) {
  ASSERT_TRUE(store_->create_thread(thread("t")));
  store_->save_checkpoint("t", 1, {{"step", 1}, {"tokens", {{"prompt", 7}, {"completion", 2}, {"total", 9}}}});
  EXPECT_EQ(store_->get_thread("t")->to_state_json()["usage"],
            (nlohmann::json{{"input_tokens", 7}, {"output_tokens", 2}}));
  // An outcome without usage (unfenced finish) leaves the last checkpoint's.
  store_->finish("t", "completed", nlohmann::json::object(), nlohmann::json::object(), "",
                 EventRecord{"t", 1, "end", {{"status", "completed"}}, "2026-01-01T00:00:01Z"});
  EXPECT_EQ(store_->get_thread("t")->usage.input_tokens, 7);
  EXPECT_EQ(store_->get_thread("t")->usage.output_tokens, 2);
}

TEST_P(StoreTest, StatusAndListing) {
  ASSERT_TRUE(store_->create_thread(thread("a")));
  ASSERT_TRUE(store_->create_thread(thread("b")));
  ASSERT_TRUE(store_->create_thread(thread("c")));
  EXPECT_TRUE(store_->set_status("a", "running"));
  EXPECT_TRUE(store_->set_status("c", "completed"));
  EXPECT_FALSE(store_->set_status("zzz", "running"));
  auto inflight = store_->threads_with_status({"running", "queued"});
  ASSERT_EQ(inflight.size(), 2u);
  EXPECT_TRUE(store_->set_status("b", "failed", "why"));
  EXPECT_EQ(store_->get_thread("b")->error, "why");
}

TEST_P(StoreTest, DeleteRemovesEverything) {
  ASSERT_TRUE(store_->create_thread(thread("t")));
  store_->append_event(event("t", 1, "on_state_update"));
  store_->save_checkpoint("t", 1, {{"step", 1}});
  EXPECT_TRUE(store_->delete_thread("t"));
  EXPECT_FALSE(store_->get_thread("t"));
  EXPECT_TRUE(store_->events_after("t", 0).empty());
  EXPECT_FALSE(store_->latest_checkpoint("t"));
  EXPECT_FALSE(store_->delete_thread("t"));
  EXPECT_TRUE(store_->create_thread(thread("t")));  // id reusable after delete
}

TEST_P(StoreTest, ConcurrentWritersOnDifferentThreads) {
  constexpr int kThreads = 4, kEvents = 25;
  for (int t = 0; t < kThreads; ++t) ASSERT_TRUE(store_->create_thread(thread("c" + std::to_string(t))));
  std::vector<std::thread> ws;
  for (int t = 0; t < kThreads; ++t) {
    ws.emplace_back([&, t] {
      for (int i = 1; i <= kEvents; ++i) store_->append_event(event("c" + std::to_string(t), i, "e"));
    });
  }
  for (auto& w : ws) w.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(store_->events_after("c" + std::to_string(t), 0).size(), 25u);
}

INSTANTIATE_TEST_SUITE_P(Dialects, StoreTest, ::testing::ValuesIn(spec_engine::testing::dialects()),
                         [](const auto& info) { return info.param; });

}  // namespace

// The stream's text of an event is built around its serialized data (serialized once by the
// event log) and equals serializing the whole event, byte for byte: key order, escapes,
// Unicode, and invalid UTF-8 replaced rather than thrown.
TEST(EventText, EqualsTheWholeEventSerialized) {
  using spec_engine::store::dump_json;
  std::vector<EventRecord> events;
  events.push_back({"t-1", 1, "on_llm_stream", {{"node", "orchestrator"}, {"delta", "h\"i\\\n\tü😀"}}, "2026-12-02T00:00:00Z"});
  events.push_back({"t-2", 123456789012, "on_state_update",
                    {{"todos", {{{"content", "a"}, {"status", "pending"}}}}, {"n", 1.5}, {"z", nullptr}, {"b", true}},
                    "2026-12-02T00:00:01.123Z"});
  events.push_back({"t-\xff", 2, "end", {{"status", "failed"}, {"error", std::string("bad \xc3\x28 bytes")}}, "ts"});
  events.push_back({"t-4", 3, "on_tool_start", nlohmann::json::object(), ""});
  for (auto ev : events) {
    const std::string expected = dump_json(ev.to_json());
    EXPECT_EQ(ev.to_text(), expected) << "without data_text";
    ev.data_text = std::make_shared<const std::string>(dump_json(ev.data));
    EXPECT_EQ(ev.to_text(), expected) << "around data_text";
    EXPECT_EQ(nlohmann::json::parse(ev.to_text())["seq"], ev.seq);
  }
}
