// The paced Chat Completions server (paced_model.hpp).
#include "paced_model.hpp"

#include <chrono>
#include <cmath>
#include <stdexcept>

namespace paced_model {

using core::http::Headers;
using core::http::Request;
using core::http::Response;
using core::http::ResponseStream;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string fnv1a_hex(std::string_view text) {
  std::uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a 64 offset basis
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ull;  // FNV-1a 64 prime
  }
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, h >>= 4) out[static_cast<std::size_t>(i)] = digits[h & 0xf];
  return out;
}

namespace {

/// SAX handler for read_request: follows top-level `messages` and `stream` and, inside each
/// message, `role` and `content` (a string, or parts whose `text` members are concatenated).
class RequestSax : public nlohmann::json_sax<json> {
 public:
  bool null() override { return scalar("null"); }
  bool boolean(bool v) override {
    if (depth_ == 1 && key_ == "stream") {
      out.stream = v;
      return true;
    }
    return scalar("boolean");
  }
  bool number_integer(number_integer_t) override { return scalar("number"); }
  bool number_unsigned(number_unsigned_t) override { return scalar("number"); }
  bool number_float(number_float_t, const string_t&) override { return scalar("number"); }
  bool binary(binary_t&) override { return scalar("binary"); }
  bool string(string_t& v) override {
    if (in_message() && depth_ == messages_depth_ + 1) {
      if (msg_key_ == "role") role_ = v;
      if (msg_key_ == "content") content_ = v;
    } else if (in_message() && parts_ && depth_ == messages_depth_ + 3 && part_key_ == "text") {
      content_ += v;
    }
    return scalar("string");
  }
  bool start_object(std::size_t) override {
    ++depth_;
    if (depth_ == 1) top_object_ = true;
    if (messages_depth_ > 0 && depth_ == messages_depth_ + 1) {
      role_.clear();
      content_.clear();
    }
    return true;
  }
  bool end_object() override {
    if (messages_depth_ > 0 && depth_ == messages_depth_ + 1) {
      if (role_ == "assistant") ++out.position.turn;
      if (role_ == "user" && !have_user) {
        out.position.conversation = fnv1a_hex(content_);
        have_user = true;
      }
    }
    --depth_;
    return true;
  }
  bool start_array(std::size_t) override {
    ++depth_;
    if (depth_ == 2 && key_ == "messages") {
      messages_depth_ = depth_;
      messages_seen_ = true;
    } else if (depth_ == 1 && !top_object_) {
      return true;  // not an object: reported after the parse
    } else if (in_message() && depth_ == messages_depth_ + 2 && msg_key_ == "content") {
      parts_ = true;
    }
    return true;
  }
  bool end_array() override {
    if (depth_ == messages_depth_) messages_depth_ = -1;
    if (in_message() && depth_ == messages_depth_ + 2) parts_ = false;
    --depth_;
    return true;
  }
  bool key(string_t& k) override {
    if (depth_ == 1) key_ = k;
    if (in_message() && depth_ == messages_depth_ + 1) msg_key_ = k;
    if (in_message() && parts_ && depth_ == messages_depth_ + 3) part_key_ = k;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }

  /// Checks what the whole body held.
  void finish() const {
    if (!top_object_) throw InvalidRequest("body", "the body must be a JSON object (a Chat Completions request)");
    if (bad_stream_) throw InvalidRequest("stream", "stream must be a boolean");
    if (!messages_seen_) throw InvalidRequest("messages", "messages must be an array of messages");
    if (!have_user) throw InvalidRequest("messages", "messages must contain a user message");
  }

  ChatRequest out;
  bool have_user = false;

 private:
  bool in_message() const { return messages_depth_ > 0 && depth_ > messages_depth_; }
  /// A scalar value: `stream` must be a boolean (null allowed); a top-level `messages` scalar is
  /// not an array.
  bool scalar(const char* type) {
    if (depth_ == 1 && key_ == "stream" && std::string_view(type) != "null") bad_stream_ = true;
    return true;
  }

  int depth_ = 0;
  int messages_depth_ = -1;  // depth of the messages array while inside it
  bool top_object_ = false;
  bool messages_seen_ = false;
  bool bad_stream_ = false;
  bool parts_ = false;
  std::string key_, msg_key_, part_key_, role_, content_;
};

}  // namespace

ChatRequest read_request(std::string_view body) {
  RequestSax sax;
  if (!json::sax_parse(body, &sax)) throw InvalidRequest("body", "the body is not valid JSON");
  sax.finish();
  return sax.out;
}

void Stats::record(const Position& p) {
  std::lock_guard lk(mu_);
  ++requests_;
  auto& e = by_conversation_[p.conversation];
  ++e.requests;
  e.max_turn = std::max(e.max_turn, p.turn);
}

json Stats::to_json(bool detail) const {
  std::lock_guard lk(mu_);
  json per_count = json::object();
  std::map<long, long> hist;
  for (const auto& [id, e] : by_conversation_) ++hist[e.requests];
  for (const auto& [n, count] : hist) per_count[std::to_string(n)] = count;
  json out = {{"requests", requests_},
              {"streams_open", open_.load()},
              {"streams_aborted", aborted_.load()},
              {"conversations", by_conversation_.size()},
              {"requests_per_conversation", per_count}};
  if (detail) {
    json by = json::object();
    for (const auto& [id, e] : by_conversation_) by[id] = {{"requests", e.requests}, {"max_turn", e.max_turn}};
    out["by_conversation"] = std::move(by);
  }
  return out;
}

namespace {

Response bad_request(const std::string& field, const std::string& message) {
  return Response::problem(400, "Bad Request", message, {{"errors", json::array({{{"field", field}, {"message", message}}})}});
}

/// One SSE event carrying `chunk` (WHATWG HTML §9.2: "data:" line, blank line).
std::string sse(const json& chunk) { return "data: " + chunk.dump() + "\n\n"; }

/// A chat.completion.chunk with one choice.
json chunk_of(const std::string& id, const std::string& model, json delta, const json& finish_reason) {
  return {{"id", id},
          {"object", "chat.completion.chunk"},
          {"created", std::time(nullptr)},
          {"model", model},
          {"choices", json::array({{{"index", 0}, {"delta", std::move(delta)}, {"finish_reason", finish_reason}}})}};
}

/// What one request is answered with.
struct Answer {
  bool tool_turn = false;
  std::vector<std::string> texts;  ///< the text chunks
  json tool_call;                  ///< {"id","type","function":{"name","arguments"}} for a tool turn
  std::string finish_reason;
  json usage;
};

Answer answer_for(const Script& script, const Position& p, std::size_t request_bytes) {
  Answer a;
  a.tool_turn = p.turn < script.turns;
  const int n = p.turn + 1;
  if (a.tool_turn) {
    for (int k = 1; k <= script.chunks; ++k) {
      a.texts.push_back("Turn " + std::to_string(n) + ", part " + std::to_string(k) + " of " +
                        std::to_string(script.chunks) + ". ");
    }
    const json args = {{"file_path", "/THE_SPEC/paced-" + std::to_string(n) + ".md"},
                       {"content", "# Paced turn " + std::to_string(n) + "\n\nWritten by the paced model for "
                                   "conversation " + p.conversation + ".\n"}};
    a.tool_call = {{"id", "call_" + p.conversation + "_" + std::to_string(n)},
                   {"type", "function"},
                   {"function", {{"name", "write_file"}, {"arguments", args.dump()}}}};
    a.finish_reason = "tool_calls";
  } else {
    a.texts.push_back("Done: wrote " + std::to_string(script.turns) + " files.");
    a.finish_reason = "stop";
  }
  const long completion = static_cast<long>(a.texts.size()) * 8 + (a.tool_turn ? 40 : 0);
  const long prompt = static_cast<long>(request_bytes / 4);
  a.usage = {{"prompt_tokens", prompt}, {"completion_tokens", completion}, {"total_tokens", prompt + completion}};
  return a;
}

/// Sleeps until `deadline` unless the client goes away (false).
core::async::Task<bool> sleep_until(Clock::time_point deadline, std::stop_token stop) {
  const auto now = Clock::now();
  if (deadline <= now) co_return !stop.stop_requested();
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
  co_return co_await core::async::sleep_for(ms, stop);
}

/// Counts an open stream for as long as it lives.
struct OpenStream {
  explicit OpenStream(Stats& s) : stats(s) { stats.stream_opened(); }
  ~OpenStream() { stats.stream_closed(); }
  Stats& stats;
};

core::async::Task<void> chat_completions(const Script& script, Stats& stats, Request& req, ResponseStream& out) {
  const auto t0 = Clock::now();
  ChatRequest parsed;
  std::string bad_field, bad_message;  // no co_await inside a handler: the answer is sent below
  try {
    parsed = read_request(req.body);
  } catch (const InvalidRequest& e) {
    bad_field = e.field();
    bad_message = e.what();
  }
  if (!bad_field.empty()) {
    const Response bad = bad_request(bad_field, bad_message);
    co_await out.respond(bad);
    co_return;
  }
  const Position& p = parsed.position;
  const bool stream = parsed.stream;
  stats.record(p);
  const Answer a = answer_for(script, p, req.body.size());
  const std::string id = "chatcmpl-" + p.conversation + "-" + std::to_string(p.turn);
  const auto interval = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / script.rate));
  // The k-th text chunk of a tool turn is due k intervals after the request arrived; the final
  // answer is not paced.
  auto due = [&](std::size_t k) { return a.tool_turn ? t0 + interval * static_cast<long>(k) : t0; };

  if (!stream) {
    if (!co_await sleep_until(due(a.texts.size()), out.stop_token())) {
      stats.aborted();
      co_return;
    }
    std::string text;
    for (const auto& t : a.texts) text += t;
    json message = {{"role", "assistant"}, {"content", text}};
    if (a.tool_turn) message["tool_calls"] = json::array({a.tool_call});
    const Response done = Response::json(
        200, {{"id", id},
              {"object", "chat.completion"},
              {"created", std::time(nullptr)},
              {"model", script.model},
              {"choices", json::array({{{"index", 0}, {"message", message}, {"finish_reason", a.finish_reason}}})},
              {"usage", a.usage}});
    co_await out.respond(done);
    co_return;
  }

  OpenStream open(stats);
  Headers headers;
  headers.set("Content-Type", "text/event-stream");
  headers.set("Cache-Control", "no-cache");
  if (!co_await out.start(200, headers)) co_return;
  const std::string role = sse(chunk_of(id, script.model, {{"role", "assistant"}, {"content", ""}}, nullptr));
  if (!co_await out.write(role)) co_return;
  for (std::size_t k = 0; k < a.texts.size(); ++k) {
    if (!co_await sleep_until(due(k + 1), out.stop_token())) {
      stats.aborted();
      co_return;
    }
    const std::string piece = sse(chunk_of(id, script.model, {{"content", a.texts[k]}}, nullptr));
    if (!co_await out.write(piece)) {
      stats.aborted();
      co_return;
    }
  }
  // The rest in one write: the tool call, the finish reason, the usage chunk, the end marker.
  std::string tail;
  if (a.tool_turn) {
    json call = a.tool_call;
    call["index"] = 0;
    tail += sse(chunk_of(id, script.model, {{"tool_calls", json::array({call})}}, nullptr));
  }
  tail += sse(chunk_of(id, script.model, json::object(), a.finish_reason));
  json usage = chunk_of(id, script.model, json::object(), nullptr);
  usage["choices"] = json::array();
  usage["usage"] = a.usage;
  tail += sse(usage);
  tail += "data: [DONE]\n\n";
  if (!co_await out.write(tail)) {
    stats.aborted();
    co_return;
  }
  co_await out.finish();
}

}  // namespace

core::http::Router make_router(const Script& script, Stats& stats) {
  core::http::Router r;
  r.add_stream("POST", "/v1/chat/completions",
               [&script, &stats](Request& req, ResponseStream& out) { return chat_completions(script, stats, req, out); });
  r.add("GET", "/v1/models", [&script](Request&) {
    return Response::json(200, {{"object", "list"},
                                {"data", json::array({{{"id", script.model},
                                                       {"object", "model"},
                                                       {"created", 0},
                                                       {"owned_by", "paced-model-server"}}})}});
  });
  r.add("GET", "/stats", [&stats](Request& req) {
    const bool detail = req.query_param("detail").value_or("1") != "0";
    return Response::json(200, stats.to_json(detail));
  });
  r.add("GET", "/health", [](Request&) { return Response::text(200, "ok"); });
  return r;
}

}  // namespace paced_model
