#pragma once
// The load itself: N concurrent refinements through the orchestrator's public API, each followed
// by one "browser" WebSocket through the orchestrator's proxy and, as the relay anchor, one more
// subscriber to the same engine stream through another relay (nginx). Everything runs as
// coroutines on a core::async::Runtime with core::http::AsyncHttpClient: no thread per session.

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/async.hpp"
#include "core/http_client.hpp"
#include "proc.hpp"

namespace refinement_load {

/// A signed-in user of the orchestrator.
struct Account {
  std::string email;
  std::string token;  ///< bearer token from POST /api/auth/login
};

/// Where and how to drive the load.
struct LoadOptions {
  /// http://host:port of each ide-orchestrator replica; session i (and workflow i) uses
  /// orchestrator_urls[i % size()].
  std::vector<std::string> orchestrator_urls;
  /// ws://host:port of the relay anchor in front of each engine replica; session i's anchor
  /// subscriber uses anchor_urls[i % size()] (the engine its orchestrator invokes). Empty: no anchor.
  std::vector<std::string> anchor_urls;
  int turns = 4;                 ///< turns of the model script: the proposal must hold /THE_SPEC/paced-1..turns.md
  std::string run_tag;           ///< makes every prompt (and so every model conversation) unique to this run
  /// One HTTP request or WebSocket handshake. A browser's fetch waits 300 s (Chromium); at
  /// N = 10,000 on 2 cores the services take minutes to answer every start.
  std::chrono::milliseconds request_timeout{300000};
  std::chrono::milliseconds retry_budget{600000};      ///< total waiting on 429/503 + Retry-After per call
  std::chrono::milliseconds proposal_timeout{120000};  ///< from the stream's `end` to a final proposal
  int max_reconnects = 20;       ///< stream reconnects (with after_seq) before a stream counts as failed

  /// The orchestrator of session (or workflow) `i`. Precondition: orchestrator_urls is not empty.
  const std::string& orchestrator_for(std::size_t i) const { return orchestrator_urls[i % orchestrator_urls.size()]; }
};

/// One followed stream (the browser's through the orchestrator, or the anchor's).
struct StreamResult {
  long events = 0;        ///< frames with a seq, duplicates included
  long lost = 0;          ///< seq values skipped (a gap), summed
  long duplicated = 0;    ///< frames whose seq was not above the last one seen
  long without_seq = 0;   ///< frames that were not engine events (no top-level seq)
  int reconnects = 0;     ///< reconnections with after_seq (a drop before `end`)
  bool ended = false;     ///< the `end` event arrived
  std::string end_status; ///< data.status of `end`
  std::string error;      ///< why the stream failed, empty when it did not
  std::vector<float> lag_ms;  ///< per event: receive time minus the event's `ts`, milliseconds
};

/// One refinement session.
struct SessionResult {
  std::string error;            ///< a failure outside the streams (start, proposal), empty when none
  StreamResult browser;
  StreamResult anchor;
  std::string proposal_status;  ///< final status of the proposal
  bool files_ok = false;        ///< generated_files holds every file the model wrote
  int waits = 0;                ///< 429/503 answers waited out (Retry-After)
  double wall_seconds = 0;      ///< POST refinement -> final proposal
  double start_seconds = -1;    ///< POST refinement -> its 202 answer (waits included); -1 when none came
  /// Everything a correct run must show: both streams ended `completed` without loss or
  /// duplicates, the proposal completed with the model's files.
  bool ok(bool with_anchor) const;
};

/// Signs in (POST /api/auth/login), waiting out 429. Throws std::runtime_error on failure.
std::string login(core::http::AsyncHttpClient& client, const std::string& orchestrator_url, const std::string& email,
                  const std::string& password, const LoadOptions& opts);

/// Creates `n` workflows from the multi-agent template, owned round-robin by `accounts`, workflow i
/// through opts.orchestrator_for(i), with at most `parallel` requests in flight. Returns their ids.
/// Throws std::runtime_error on failure.
std::vector<std::string> create_workflows(core::async::Runtime& rt, core::http::AsyncHttpClient& client,
                                          const LoadOptions& opts, const std::vector<Account>& accounts, int n,
                                          int parallel);

/// The anchor's subscribers, in a worker process of their own (this binary with --anchor-worker),
/// so that the harness's descriptors are split over two processes (N sockets each, under one
/// process's RLIMIT_NOFILE at N = 10,000) and the anchor's frames are read in parallel with the
/// browsers'. Lines on the worker's stdin name the streams to follow; it answers one JSON line per
/// finished stream.
class AnchorRelay {
 public:
  /// Starts the worker: `self_exe --anchor-worker --io-threads io_threads`, its stderr in `log`.
  AnchorRelay(const std::string& self_exe, int io_threads, const std::filesystem::path& log);
  ~AnchorRelay();
  AnchorRelay(const AnchorRelay&) = delete;
  AnchorRelay& operator=(const AnchorRelay&) = delete;

  /// Asks the worker to follow `anchor_ws_url`/spec-engine/stream/{thread_id}; the result arrives
  /// in the Oneshot (waited on from `waiter`), or an error result when the worker ends first.
  std::shared_ptr<core::async::Oneshot<StreamResult>> follow(int index, const std::string& anchor_ws_url,
                                                             const std::string& thread_id,
                                                             const core::async::Executor& waiter);
  /// No more streams: the worker finishes those it follows and exits. Waits for it.
  void finish();
  /// Stops the worker at once (pending streams complete with an error).
  void kill();
  pid_t pid() const { return child_.pid(); }

 private:
  void read_results();  // the reader thread
  Child child_;
  std::mutex mu_;
  std::map<int, std::shared_ptr<core::async::Oneshot<StreamResult>>> pending_;
  std::thread reader_;
};

/// The worker side of AnchorRelay (main() of `--anchor-worker`): follows each stream named on
/// stdin ("<index> <ws://host:port/spec-engine/stream/thread_id>") and writes its result as one
/// JSON line on stdout. Returns the exit status once stdin ended and every stream finished.
int run_anchor_worker(int io_threads);

/// Runs one session per workflow at once (session i belongs to accounts[i % accounts.size()] and
/// talks to opts.orchestrator_for(i)) and waits until all finished or `deadline` passed (the rest
/// are cancelled and reported as failed). `anchor` (may be null) follows each session's engine
/// stream as well, through opts.anchor_urls[i % size]. One result per session.
std::vector<SessionResult> run_sessions(core::async::Runtime& rt, core::http::AsyncHttpClient& client,
                                        const LoadOptions& opts, const std::vector<Account>& accounts,
                                        const std::vector<std::string>& workflows, AnchorRelay* anchor,
                                        std::chrono::steady_clock::time_point deadline);

/// Raw text of top-level members of one JSON object, without decoding the rest (values of
/// other members are skipped, nested objects and strings included). Empty views for members
/// that are absent. Returns false when `text` is not a JSON object.
struct EventFields {
  std::string_view seq;         ///< e.g. `17`
  std::string_view ts;          ///< e.g. `"2026-01-02T03:04:05.123456Z"` (quotes included)
  std::string_view event_type;  ///< e.g. `"end"` (quotes included)
};
bool scan_event(std::string_view text, EventFields& out);

/// Accounts one received frame of a stream in `r`: events by `seq` (a gap adds to `lost`, a seq
/// not above the last one to `duplicated`), the lag from the event's `ts` to `received`, and the
/// `end` event with its data.status. `next_seq` is the seq expected next (1 for a new stream).
void count_frame(StreamResult& r, long& next_seq, const std::string& text,
                 std::chrono::system_clock::time_point received);

}  // namespace refinement_load
