// The cross-thread hop: producers on foreign threads without an event loop, consumer on a KJ
// loop; ordering, the token bound, closing while producers keep pushing.

#include "actors/gateway/event_channel.hpp"

#include <kj/async-io.h>
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

using namespace bastion::gateway;

namespace {

// Drains the channel until its completion arrives; returns the tokens seen.
std::vector<token_event> drain(event_channel& ch, kj::WaitScope& ws, channel_batch& last) {
  std::vector<token_event> seen;
  while (true) {
    auto b = ch.next().wait(ws);
    for (auto& t : b.tokens) seen.push_back(t);
    if (b.done || b.overflowed) {
      last = std::move(b);
      return seen;
    }
  }
}

}  // namespace

TEST_CASE(
    "tokens pushed from a thread without an event loop arrive in order, then the completion") {
  auto io = kj::setupAsyncIo();
  auto ch = std::make_shared<event_channel>(100000, true);
  std::thread producer([ch] {
    for (std::uint32_t i = 0; i < 20000; ++i) ch->push_token(token_event{"t", i});
    final_result r;
    r.text = "done";
    ch->push_done(r);
    ch->push_token(token_event{"late", 999999});  // after the completion: dropped
  });
  channel_batch last;
  const auto seen = drain(*ch, io.waitScope, last);
  producer.join();
  REQUIRE(seen.size() == 20000);
  for (std::uint32_t i = 0; i < seen.size(); ++i) REQUIRE(seen[i].token_id == i);
  REQUIRE(last.done);
  CHECK(std::get<final_result>(*last.done).text == "done");
  CHECK_FALSE(last.overflowed);
}

TEST_CASE("past tokens_max the channel drops tokens and reports overflow") {
  auto io = kj::setupAsyncIo();
  auto ch = std::make_shared<event_channel>(10, true);
  for (std::uint32_t i = 0; i < 50; ++i) ch->push_token(token_event{"t", i});
  auto b = ch->next().wait(io.waitScope);
  CHECK(b.tokens.size() == 10);
  CHECK(b.overflowed);
}

TEST_CASE("unary channels keep only the completion") {
  auto io = kj::setupAsyncIo();
  auto ch = std::make_shared<event_channel>(10, false);
  for (std::uint32_t i = 0; i < 50; ++i) ch->push_token(token_event{"t", i});
  ch->push_done(inference_error{error_code::overloaded, "full", "r", 5, ""});
  auto b = ch->next().wait(io.waitScope);
  CHECK(b.tokens.empty());
  CHECK_FALSE(b.overflowed);
  REQUIRE(b.done);
  CHECK(std::get<inference_error>(*b.done).retry_after_ms == 5);
}

TEST_CASE("closing while a producer keeps pushing and a next() is pending is safe") {
  auto io = kj::setupAsyncIo();
  auto ch = std::make_shared<event_channel>(1000, true);
  std::atomic<bool> stop{false};
  std::thread producer([ch, &stop] {
    while (!stop) ch->push_token(token_event{"t", 1});
  });
  for (int i = 0; i < 100; ++i) ch->next().wait(io.waitScope);
  {
    auto pending = ch->next();  // may be resolved or waiting
    ch->close();
  }
  stop = true;
  producer.join();
  ch->push_done(final_result{});  // after close: dropped, no crash
}
