// The client library against real gateway_server instances on loopback, each over a scripted
// fake inference port (tests/actors' test support): redirects to the leader, retries with the
// same request id, the bounds on attempts, redirects, Retry-After and the deadline, and
// streams that break and are retried.
#include <bastion/client.hpp>

#include "scripted_server.hpp"
#include "tests/actors/gateway_test_fixture.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace bastion::gateway;
using namespace bastion::gateway::testing;
using bastion::client_testing::dead_port;
using bastion::client_testing::scripted_server;
using std::chrono::milliseconds;

std::string address_of(const gateway_fixture& g) {
  return "127.0.0.1:" + std::to_string(g.server.http_port());
}

bastion::client_options options_for(std::vector<std::string> sites) {
  bastion::client_options o;
  o.sites = std::move(sites);
  o.api_key = alice_key;
  o.backoff_initial = milliseconds(10);
  o.backoff_max = milliseconds(40);
  o.deadline = milliseconds(10000);
  o.idle_timeout = milliseconds(3000);
  return o;
}

bastion::request ask(std::string prompt = "hello brave new world") {
  bastion::request r;
  r.model = "echo";
  r.prompt = std::move(prompt);
  r.max_tokens = 16;
  return r;
}

// A port script that fails the first `n` submissions of each request id with `error`, then
// echoes.
std::function<fake_script(const inference_request&)> fail_first(int n, inference_error error) {
  auto seen = std::make_shared<std::map<std::string, int>>();
  auto mutex = std::make_shared<std::mutex>();
  return [=](const inference_request& r) {
    int k = 0;
    {
      std::lock_guard<std::mutex> lock(*mutex);
      k = (*seen)[r.request_id]++;
    }
    if (k < n) {
      fake_script s;
      s.error = error;
      return s;
    }
    return fake_port::echo(r);
  };
}

inference_error not_primary(std::string leader = {}) {
  return inference_error{
      error_code::not_primary, "this site is a standby", {}, 0, std::move(leader)};
}

std::vector<std::string> ids_of(const fake_port& port) {
  std::vector<std::string> ids;
  for (const auto& r : port.submitted()) ids.push_back(r.request_id);
  return ids;
}

}  // namespace

TEST_CASE("a standby's 307 is followed to the leader with the same request id") {
  gateway_fixture leader;
  gateway_fixture standby;
  standby.port.set_script([&](const inference_request&) {
    fake_script s;
    s.error = not_primary(address_of(leader));
    return s;
  });
  bastion::client c(options_for({address_of(standby)}));
  const auto out = c.complete(ask());
  REQUIRE(out.ok());
  CHECK(out.result->text == "hello brave new world");
  CHECK(out.result->reason == bastion::finish_reason::stop);
  CHECK(out.result->completion_tokens == 4);
  CHECK(out.result->site == "prod");  // from system_fingerprint "bastion:prod:3"
  CHECK(out.result->epoch == 3);
  CHECK(out.trace.redirects == 1);
  CHECK(out.trace.retries == 0);
  CHECK(out.trace.address == address_of(leader));
  CHECK(ids_of(standby.port) == std::vector<std::string>{out.trace.request_id});
  CHECK(ids_of(leader.port) == std::vector<std::string>{out.trace.request_id});
  // The leader is remembered: the next call goes there first.
  CHECK(c.preferred_site() == address_of(leader));
  const auto again = c.complete(ask("second"));
  REQUIRE(again.ok());
  CHECK(again.trace.redirects == 0);
  CHECK(standby.port.submitted().size() == 1);
}

TEST_CASE("not_primary without a leader is retried with the caller's request id") {
  gateway_fixture leader;
  leader.port.set_script(fail_first(1, not_primary()));
  bastion::client c(options_for({address_of(leader)}));
  auto r = ask();
  r.request_id = "order-42";
  const auto out = c.complete(r);
  REQUIRE(out.ok());
  CHECK(out.result->text == "hello brave new world");
  CHECK(out.trace.request_id == "order-42");
  CHECK(out.trace.retries == 1);
  CHECK(out.trace.attempts == 2);
  // The gateway took X-Request-Id both times (it would have minted two different ids).
  CHECK(ids_of(leader.port) == std::vector<std::string>{"order-42", "order-42"});
  REQUIRE(out.trace.log.size() == 2);
  CHECK(out.trace.log[0].find("not_primary") != std::string::npos);
}

TEST_CASE("a minted request id is reported and sent on every attempt") {
  gateway_fixture leader;
  leader.port.set_script(fail_first(2, not_primary()));
  auto o = options_for({address_of(leader)});
  o.mint_request_id = [] { return std::string("minted-7"); };
  bastion::client c(o);
  const auto out = c.complete(ask());
  REQUIRE(out.ok());
  CHECK(out.trace.request_id == "minted-7");
  CHECK(ids_of(leader.port) == std::vector<std::string>{"minted-7", "minted-7", "minted-7"});
}

TEST_CASE("outcome_unknown moves to the next site with the same request id") {
  gateway_fixture deposed;
  gateway_fixture next;
  deposed.port.set_script([](const inference_request&) {
    fake_script s;
    s.error =
        inference_error{error_code::outcome_unknown, "leadership lost mid-request", {}, 0, {}};
    return s;
  });
  bastion::client c(options_for({address_of(deposed), address_of(next)}));
  const auto out = c.complete(ask());
  REQUIRE(out.ok());
  CHECK(out.trace.address == address_of(next));
  CHECK(out.trace.retries == 1);
  CHECK(ids_of(deposed.port) == ids_of(next.port));
  CHECK(ids_of(next.port) == std::vector<std::string>{out.trace.request_id});
}

TEST_CASE("a dead address is skipped") {
  gateway_fixture live;
  const std::string dead = "127.0.0.1:" + std::to_string(dead_port());
  bastion::client c(options_for({dead, address_of(live)}));
  const auto out = c.complete(ask());
  REQUIRE(out.ok());
  CHECK(out.trace.address == address_of(live));
  REQUIRE(out.trace.log.size() == 2);
  CHECK(out.trace.log[0].find("connection_refused") != std::string::npos);
}

TEST_CASE("every site dead: unavailable after attempts_max, naming the last failure") {
  auto o = options_for({"127.0.0.1:" + std::to_string(dead_port())});
  o.attempts_max = 3;
  std::vector<milliseconds> slept;
  o.sleep = [&](milliseconds d) { slept.push_back(d); };
  bastion::client c(o);
  const auto out = c.complete(ask());
  REQUIRE_FALSE(out.ok());
  CHECK(out.error->kind == bastion::client_error_kind::unavailable);
  CHECK(out.error->code == "connection_refused");
  CHECK(out.error->message.find("gave up after 3 attempts") != std::string::npos);
  CHECK(out.trace.attempts == 3);
  // Doubling from 10 ms (two waits between three attempts).
  CHECK(slept == std::vector<milliseconds>{milliseconds(10), milliseconds(20)});
}

TEST_CASE("a redirect loop stops at the hop bound with a clear error") {
  gateway_fixture a;
  gateway_fixture b;
  a.port.set_script([&](const inference_request&) {
    fake_script s;
    s.error = not_primary(address_of(b));
    return s;
  });
  b.port.set_script([&](const inference_request&) {
    fake_script s;
    s.error = not_primary(address_of(a));
    return s;
  });
  auto o = options_for({address_of(a)});
  o.redirects_max = 3;
  bastion::client c(o);
  const auto out = c.complete(ask());
  REQUIRE_FALSE(out.ok());
  CHECK(out.error->kind == bastion::client_error_kind::too_many_redirects);
  CHECK(out.error->message.find("more than 3 redirects in a row") != std::string::npos);
  CHECK(out.trace.redirects == 4);
  CHECK(a.port.submitted().size() + b.port.submitted().size() == 4);
}

TEST_CASE("during an election a standby sends the client to the dead leader: not a loop") {
  // As seen on a real three-site failover: until dr-local is elected it keeps redirecting to
  // the killed prod, whose port refuses; then dr-local answers itself.
  const std::string dead = "127.0.0.1:" + std::to_string(dead_port());
  gateway_fixture standby;
  auto rounds = std::make_shared<int>(0);
  standby.port.set_script([dead, rounds](const inference_request& r) {
    if ((*rounds)++ < 3) {
      fake_script s;
      s.error = not_primary(dead);
      return s;
    }
    return fake_port::echo(r);
  });
  auto o = options_for({dead, address_of(standby)});
  o.redirects_max = 1;
  bastion::client c(o);
  const auto out = c.complete(ask());
  REQUIRE(out.ok());
  CHECK(out.trace.address == address_of(standby));
  CHECK(out.trace.redirects == 3);
  CHECK(out.result->text == "hello brave new world");
  const auto ids = ids_of(standby.port);
  REQUIRE(ids.size() == 4);
  CHECK(std::all_of(ids.begin(), ids.end(), [&](auto& id) { return id == out.trace.request_id; }));
}

TEST_CASE("a standby with a stale view of the leader does not hide the other standby") {
  const std::string dead = "127.0.0.1:" + std::to_string(dead_port());
  gateway_fixture stale;  // keeps naming the dead leader
  stale.port.set_script([dead](const inference_request&) {
    fake_script s;
    s.error = not_primary(dead);
    return s;
  });
  gateway_fixture elected;
  bastion::client c(options_for({dead, address_of(stale), address_of(elected)}));
  const auto out = c.complete(ask());
  REQUIRE(out.ok());
  CHECK(out.trace.address == address_of(elected));
  CHECK(out.trace.redirects == 1);
  CHECK(out.trace.attempts == 4);  // dead, stale (307), dead again through it, elected
}

TEST_CASE("refusals are typed and not retried") {
  gateway_fixture g;
  bastion::client c(options_for({address_of(g)}));

  auto bad = ask();
  bad.temperature = 3.0F;
  auto out = c.complete(bad);
  REQUIRE_FALSE(out.ok());
  CHECK(out.error->kind == bastion::client_error_kind::invalid_argument);
  CHECK(out.error->http_status == 400);
  CHECK(out.error->param == "temperature");
  CHECK(out.trace.attempts == 1);

  auto unknown = ask();
  unknown.model = "no-such-model";
  out = c.complete(unknown);
  REQUIRE_FALSE(out.ok());
  CHECK(out.error->kind == bastion::client_error_kind::unknown_model);
  CHECK(out.error->http_status == 404);
  CHECK(out.error->message.find("no-such-model") != std::string::npos);
  CHECK(out.trace.attempts == 1);

  auto o = options_for({address_of(g)});
  o.api_key = "sk-wrong";
  bastion::client stranger(o);
  out = stranger.complete(ask());
  REQUIRE_FALSE(out.ok());
  CHECK(out.error->kind == bastion::client_error_kind::unauthenticated);
  CHECK(out.trace.attempts == 1);
  CHECK(g.port.submitted().empty());

  // Found before sending: nothing reaches the gateway.
  auto neither = ask("");
  out = c.complete(neither);
  REQUIRE_FALSE(out.ok());
  CHECK(out.error->kind == bastion::client_error_kind::invalid_argument);
  CHECK(out.error->param == "prompt");
  CHECK(out.trace.attempts == 0);
  auto bad_id = ask();
  bad_id.request_id = "has space\r\nX-Evil: 1";
  out = c.complete(bad_id);
  REQUIRE_FALSE(out.ok());
  CHECK(out.error->param == "request_id");
  CHECK(out.trace.attempts == 0);
}

TEST_CASE("429 Retry-After is honoured, and bounded") {
  gateway_fixture g;
  g.port.set_script(
      fail_first(1, inference_error{error_code::overloaded, "queue full", {}, 1000, {}}));
  auto o = options_for({address_of(g)});
  std::vector<milliseconds> slept;
  o.sleep = [&](milliseconds d) { slept.push_back(d); };
  {
    bastion::client c(o);
    const auto out = c.complete(ask());
    REQUIRE(out.ok());
    CHECK(slept == std::vector<milliseconds>{milliseconds(1000)});
    CHECK(out.trace.retries == 1);
    CHECK(out.trace.address == address_of(g));  // the same site: it is the leader, just busy
  }
  g.port.set_script(
      fail_first(1, inference_error{error_code::overloaded, "queue full", {}, 3000, {}}));
  o.retry_after_max = milliseconds(2000);
  slept.clear();
  bastion::client c(o);
  const auto out = c.complete(ask());
  REQUIRE_FALSE(out.ok());
  CHECK(out.error->kind == bastion::client_error_kind::overloaded);
  CHECK(out.error->retry_after == milliseconds(3000));
  CHECK(out.error->message.find("retry_after_max") != std::string::npos);
  CHECK(slept.empty());
  CHECK(out.trace.attempts == 1);
}

TEST_CASE("the call's deadline bounds retries and a slow answer") {
  gateway_fixture g;
  g.port.set_script([](const inference_request&) {
    fake_script s;
    s.error = not_primary();
    return s;
  });
  auto o = options_for({address_of(g)});
  o.deadline = milliseconds(300);
  o.attempts_max = 1000;
  o.backoff_initial = milliseconds(20);
  o.backoff_max = milliseconds(50);
  bastion::client c(o);
  auto start = std::chrono::steady_clock::now();
  auto out = c.complete(ask());
  auto took = std::chrono::steady_clock::now() - start;
  REQUIRE_FALSE(out.ok());
  CHECK(out.error->kind == bastion::client_error_kind::deadline_exceeded);
  INFO(out.error->message);
  std::string log;
  for (const auto& line : out.trace.log) log += line + "\n";
  INFO(log);
  CHECK(out.error->message.find("not_primary") != std::string::npos);
  CHECK(out.trace.attempts > 2);
  CHECK(took < milliseconds(1000));

  g.port.set_script([](const inference_request& r) {
    auto s = fake_port::echo(r);
    s.first_delay = milliseconds(3000);
    return s;
  });
  start = std::chrono::steady_clock::now();
  out = c.complete(ask());
  took = std::chrono::steady_clock::now() - start;
  REQUIRE_FALSE(out.ok());
  CHECK(out.error->kind == bastion::client_error_kind::deadline_exceeded);
  CHECK(out.trace.attempts == 1);
  CHECK(took < milliseconds(1000));
}

TEST_CASE("streaming: tokens arrive through the callback, the final event ends the call") {
  gateway_fixture g;
  bastion::client c(options_for({address_of(g)}));
  std::vector<std::string> pieces;
  bastion::stream_handlers h;
  h.on_text = [&](const std::string& p) { pieces.push_back(p); };
  const auto out = c.stream(ask("one two three"), h);
  REQUIRE(out.ok());
  CHECK(pieces == std::vector<std::string>{"one", " two", " three"});
  CHECK(out.result->text == "one two three");
  CHECK(out.result->completion_tokens == 3);
  CHECK(out.result->reason == bastion::finish_reason::stop);
  CHECK(out.trace.stream_restarts == 0);

  bastion::request chat;
  chat.model = "echo";
  chat.messages = {{"user", "hi there"}};
  pieces.clear();
  const auto chat_out = c.stream(chat, h);
  REQUIRE(chat_out.ok());
  CHECK(chat_out.result->text == "hi there");
  const auto unary_chat = c.complete(chat);
  REQUIRE(unary_chat.ok());
  CHECK(unary_chat.result->text == "hi there");
}

TEST_CASE("a stream cut mid-way is retried with the same id and the caller is told") {
  // The first site sends two pieces and drops the connection before the final event.
  scripted_server cut(
      {"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
       "Transfer-Encoding: chunked\r\n\r\n"
       "26\r\ndata: {\"choices\":[{\"text\":\"Hello\"}]}\n\n\r\n"
       "25\r\ndata: {\"choices\":[{\"text\":\" wor\"}]}\n\n\r\n"});
  gateway_fixture next;
  bastion::client c(options_for({cut.address(), address_of(next)}));
  std::vector<std::string> pieces;
  std::vector<std::string> restarts;
  bastion::stream_handlers h;
  h.on_text = [&](const std::string& p) { pieces.push_back(p); };
  h.on_restart = [&](const std::string& why) {
    restarts.push_back(why);
    pieces.clear();
  };
  auto r = ask("hello brave new world");
  r.request_id = "stream-9";
  const auto out = c.stream(r, h);
  REQUIRE(out.ok());
  REQUIRE(restarts.size() == 1);
  CHECK(restarts[0].find("before its final event") != std::string::npos);
  CHECK(out.trace.stream_restarts == 1);
  CHECK(out.result->text == "hello brave new world");
  std::string after;
  for (auto& p : pieces) after += p;
  CHECK(after == out.result->text);
  CHECK(cut.header_of(0, "X-Request-Id") == "stream-9");
  CHECK(ids_of(next.port) == std::vector<std::string>{"stream-9"});
}

TEST_CASE("a stream ended by a retryable error event is retried") {
  gateway_fixture g;
  auto count = std::make_shared<int>(0);
  g.port.set_script([count](const inference_request& r) {
    auto s = fake_port::echo(r);
    if ((*count)++ == 0) {
      s.tokens = {"partial", " text"};
      s.token_delay = milliseconds(20);
      s.error = inference_error{error_code::outcome_unknown, "leadership lost", {}, 0, {}};
    }
    return s;
  });
  bastion::client c(options_for({address_of(g)}));
  int restarts = 0;
  std::string seen;
  bastion::stream_handlers h;
  h.on_text = [&](const std::string& p) { seen += p; };
  h.on_restart = [&](const std::string&) {
    ++restarts;
    seen.clear();
  };
  const auto out = c.stream(ask("the real answer"), h);
  REQUIRE(out.ok());
  CHECK(restarts == 1);
  CHECK(seen == "the real answer");
  const auto ids = ids_of(g.port);
  REQUIRE(ids.size() == 2);
  CHECK(ids[0] == ids[1]);
}

namespace {

// Answers like a primary whose journal already holds the request's completion (the release
// gate's replay, actors/coordination/release_gate.hpp): the outcome, and no tokens.
class replaying_port final : public inference_port {
 public:
  void submit(inference_request request, token_callback, completion_callback on_done) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      submitted_.push_back(request);
    }
    final_result f;
    f.text = "the journaled answer";
    f.usage = {5, 3};
    f.served_model = request.model;
    f.site = "dr-local";
    f.epoch = 9;
    on_done(f);
  }
  void cancel(const std::string&) override {}
  std::vector<model_info> list_models() override { return {{"echo", 4096, "bastion", 0}}; }
  std::vector<inference_request> submitted() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return submitted_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<inference_request> submitted_;
};

}  // namespace

TEST_CASE("a stream retried at a primary that replays the committed answer gets its text") {
  scripted_server cut(
      {"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
       "data: {\"choices\":[{\"text\":\"the jour\"}]}\n\n"});
  replaying_port port;
  bastion::metrics::registry registry;
  bastion::system_clock_source clock;
  gateway_server primary(test_settings(), port, registry, clock, [] { return true; });
  const auto refused = primary.start();
  REQUIRE_FALSE(refused.has_value());
  bastion::client c(
      options_for({cut.address(), "127.0.0.1:" + std::to_string(primary.http_port())}));
  std::vector<std::string> pieces;
  int restarts = 0;
  bastion::stream_handlers h;
  h.on_text = [&](const std::string& p) { pieces.push_back(p); };
  h.on_restart = [&](const std::string&) {
    ++restarts;
    pieces.clear();
  };
  const auto out = c.stream(ask(), h);
  REQUIRE(out.ok());
  CHECK(restarts == 1);
  // The replayed stream carries no text; the client fetched it under the same id.
  CHECK(pieces == std::vector<std::string>{"the journaled answer"});
  CHECK(out.result->text == "the journaled answer");
  CHECK(out.result->completion_tokens == 3);
  CHECK(out.result->site == "dr-local");
  CHECK(out.result->epoch == 9);
  const auto asked = port.submitted();
  REQUIRE(asked.size() == 2);
  CHECK(asked[0].stream);
  CHECK_FALSE(asked[1].stream);
  CHECK(asked[0].request_id == out.trace.request_id);
  CHECK(asked[1].request_id == out.trace.request_id);

  // The caller streaming a committed id again (no failure first) gets the text the same way.
  pieces.clear();
  auto again = ask();
  again.request_id = out.trace.request_id;
  const auto second = c.stream(again, h);
  REQUIRE(second.ok());
  CHECK(second.trace.retries == 0);
  CHECK(pieces == std::vector<std::string>{"the journaled answer"});
  primary.stop();
}

TEST_CASE("one client shared by threads: each call keeps its own request id") {
  gateway_fixture g;
  g.port.set_script(fail_first(1, not_primary()));
  bastion::client c(options_for({address_of(g)}));
  constexpr int threads_n = 4;
  constexpr int calls_n = 5;
  std::vector<std::vector<bastion::client_outcome>> outcomes(threads_n);
  std::vector<std::thread> threads;
  for (int t = 0; t < threads_n; ++t) {
    threads.emplace_back([&c, &outcomes, t] {
      for (int k = 0; k < calls_n; ++k)
        outcomes[t].push_back(
            c.complete(ask("thread " + std::to_string(t) + " call " + std::to_string(k))));
    });
  }
  for (auto& th : threads) th.join();
  std::map<std::string, int> submissions;
  for (const auto& id : ids_of(g.port)) ++submissions[id];
  for (int t = 0; t < threads_n; ++t) {
    for (int k = 0; k < calls_n; ++k) {
      const auto& out = outcomes[t][k];
      REQUIRE(out.ok());
      CHECK(out.result->text == "thread " + std::to_string(t) + " call " + std::to_string(k));
      CHECK(submissions[out.trace.request_id] == 2);  // the not_primary, then the answer
    }
  }
  CHECK(submissions.size() == threads_n * calls_n);
}

TEST_CASE("bad options are refused at construction, naming the option") {
  auto refused = [](bastion::client_options o) -> std::string {
    try {
      bastion::client c(std::move(o));
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "accepted";
  };
  bastion::client_options o;
  CHECK(refused(o).find("sites") != std::string::npos);
  o.sites = {"localhost"};
  CHECK(refused(o).find("no port") != std::string::npos);
  o.sites = {"localhost:99999"};
  CHECK(refused(o).find("1..65535") != std::string::npos);
  o.sites = {"localhost:8080"};
  o.attempts_max = 0;
  CHECK(refused(o).find("attempts_max") != std::string::npos);
  o.attempts_max = 1;
  o.api_key = "sk\r\nX-Evil: 1";
  CHECK(refused(o).find("api_key") != std::string::npos);
  o.api_key = "sk";
  CHECK(refused(o) == "accepted");
}
