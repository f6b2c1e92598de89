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

/// The text of a message's `content`: a string, or the `text` of its parts (array form).
std::string content_text(const json& m) {
  auto it = m.find("content");
  if (it == m.end() || it->is_null()) return {};
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array()) {
    std::string out;
    for (const auto& part : *it) {
      if (part.is_object() && part.contains("text") && part["text"].is_string()) out += part["text"].get<std::string>();
    }
    return out;
  }
  return it->dump();
}

}  // namespace

Position position_of(const json& body) {
  auto it = body.find("messages");
  if (it == body.end() || !it->is_array()) throw std::invalid_argument("messages must be an array of messages");
  Position p;
  bool have_user = false;
  for (const auto& m : *it) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) continue;
    const auto& role = m["role"].get_ref<const std::string&>();
    if (role == "assistant") ++p.turn;
    if (role == "user" && !have_user) {
      p.conversation = fnv1a_hex(content_text(m));
      have_user = true;
    }
  }
  if (!have_user) throw std::invalid_argument("messages must contain a user message");
  return p;
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
  const json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    const Response bad = bad_request("body", "the body must be a JSON object (a Chat Completions request)");
    co_await out.respond(bad);
    co_return;
  }
  Position p;
  std::string invalid;  // no co_await inside a handler: the answer is sent below
  try {
    p = position_of(body);
  } catch (const std::invalid_argument& e) {
    invalid = e.what();
  }
  if (!invalid.empty()) {
    const Response bad = bad_request("messages", invalid);
    co_await out.respond(bad);
    co_return;
  }
  bool stream = false;
  if (auto it = body.find("stream"); it != body.end() && !it->is_null()) {
    if (!it->is_boolean()) {
      const Response bad = bad_request("stream", "stream must be a boolean");
      co_await out.respond(bad);
      co_return;
    }
    stream = it->get<bool>();
  }
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
