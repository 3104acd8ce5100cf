// The embedded API serving the real SmolLM2 in-process: a config starts the node with its
// models, submit() and stream() answer, cancel() stops a stream, and bad requests and bad
// configs are refused with the reason. Skips (exit 77) when the model is not fetched.

#define CATCH_CONFIG_RUNNER
#include <bastion/node.hpp>

#include "tests/support/model_path.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <unistd.h>

const char* testing_tmpdir();

namespace {

using namespace std::chrono_literals;

std::string write_file(const std::string& name, const std::string& text) {
  const std::string path = std::string{testing_tmpdir()} + "/" + name;
  std::ofstream(path) << text;
  return path;
}

std::string config_text(const std::string& model_path) {
  return "[node]\nname = \"embedded-serving\"\nsite = \"prod\"\n"
         "[http]\nlisten = \"127.0.0.1:0\"\n"
         "[rpc]\nlisten = \"127.0.0.1:0\"\n"
         "[[models]]\nid = \"smollm2\"\npath = \"" +
         model_path +
         "\"\n"
         "[[workers]]\nid = \"cpu-0\"\nkind = \"cpu\"\nmodels = [\"smollm2\"]\nbatch_max = 8\n"
         "kv_blocks = 256\n";
}

bastion::request france(std::uint32_t max_tokens) {
  bastion::request r;
  r.model = "smollm2";
  r.messages = {{"user", "What is the capital of France?"}};
  r.max_tokens = max_tokens;
  return r;
}

/// Expects `s` to fail with `kind`; returns the message.
std::string failure_of(bastion::submission& s, bastion::error_kind kind) {
  REQUIRE(s.outcome.wait_for(60s) == std::future_status::ready);
  try {
    s.outcome.get();
    FAIL("the request succeeded");
  } catch (const bastion::request_error& e) {
    CHECK(std::string{bastion::to_string(e.kind())} == bastion::to_string(kind));
    CHECK(e.request_id() == s.request_id);
    return e.what();
  }
  return {};
}

std::unique_ptr<bastion::node>& serving_node() {
  static std::unique_ptr<bastion::node> node = [] {
    bastion::node_options o;
    o.config_file = write_file("serving.toml", config_text(bastion::test::smollm2_path()));
    return bastion::node::start(o);
  }();
  return node;
}

}  // namespace

const char* testing_tmpdir_value = nullptr;
const char* testing_tmpdir() { return testing_tmpdir_value; }

TEST_CASE("a node started from a config serves its model in-process") {
  auto& node = serving_node();
  CHECK(node->models() == std::vector<std::string>{"smollm2"});
  CHECK(node->health().node == "embedded-serving");
  CHECK(node->http_port() == 0);  // listen is off: in-process only

  auto s = node->submit(france(16));
  CHECK(!s.request_id.empty());
  REQUIRE(s.outcome.wait_for(120s) == std::future_status::ready);
  const bastion::result r = s.outcome.get();
  CHECK_THAT(r.text, Catch::Contains("Paris"));
  CHECK(r.request_id == s.request_id);
  CHECK(r.served_model == "smollm2");
  CHECK(r.site == "prod");
  CHECK(r.prompt_tokens > 5);
  CHECK(r.completion_tokens > 0);
  CHECK(r.completion_tokens <= 16);
  // The request just answered is counted in the node's own metrics.
  CHECK_THAT(node->metrics_text(), Catch::Contains("bastion_serving_requests_total{"));
}

TEST_CASE("a streamed request delivers its text in pieces that add up to the result") {
  auto& node = serving_node();
  std::mutex m;
  std::string streamed;
  int pieces = 0;
  auto req = france(16);
  req.request_id = "embedded-stream-1";
  auto s = node->stream(req, [&](const std::string& piece) {
    std::lock_guard<std::mutex> lock{m};
    streamed += piece;
    ++pieces;
  });
  CHECK(s.request_id == "embedded-stream-1");
  REQUIRE(s.outcome.wait_for(120s) == std::future_status::ready);
  const auto r = s.outcome.get();
  std::lock_guard<std::mutex> lock{m};
  CHECK(pieces > 1);
  CHECK(streamed == r.text);
  CHECK_THAT(r.text, Catch::Contains("Paris"));
}

TEST_CASE("cancel() ends a long stream early") {
  auto& node = serving_node();
  std::atomic<int> pieces{0};
  auto req = france(400);
  req.messages = {{"user", "Write a very long story about a lighthouse keeper."}};
  auto s = node->stream(req, [&](const std::string&) { ++pieces; });
  const auto t0 = std::chrono::steady_clock::now();
  while (pieces.load() < 2 && std::chrono::steady_clock::now() - t0 < 60s)
    std::this_thread::sleep_for(10ms);
  REQUIRE(pieces.load() >= 2);
  node->cancel(s.request_id);
  REQUIRE(s.outcome.wait_for(30s) == std::future_status::ready);
  try {
    const auto r = s.outcome.get();
    CHECK(r.reason == bastion::finish_reason::cancelled);
    CHECK(r.completion_tokens < 400);
  } catch (const bastion::request_error& e) {
    CHECK(e.kind() == bastion::error_kind::cancelled);
  }
  // The node keeps serving after a cancel.
  auto again = node->submit(france(8));
  REQUIRE(again.outcome.wait_for(120s) == std::future_status::ready);
  CHECK(again.outcome.get().completion_tokens > 0);
}

TEST_CASE("bad requests fail with the kind and the reason") {
  auto& node = serving_node();
  auto unknown = france(8);
  unknown.model = "gpt-17";
  auto s1 = node->submit(unknown);
  CHECK_THAT(failure_of(s1, bastion::error_kind::unknown_model), Catch::Contains("gpt-17"));

  auto both = france(8);
  both.prompt = "and a prompt too";
  auto s2 = node->submit(both);
  CHECK_THAT(failure_of(s2, bastion::error_kind::invalid_argument),
             Catch::Contains("exactly one of"));

  auto bad_id = france(8);
  bad_id.request_id = "spaces are not allowed";
  auto s3 = node->submit(bad_id);
  CHECK_THAT(failure_of(s3, bastion::error_kind::invalid_argument), Catch::Contains("request_id"));

  auto hot = france(8);
  hot.temperature = -1.0F;
  auto s4 = node->submit(hot);
  failure_of(s4, bastion::error_kind::invalid_argument);
}

TEST_CASE("a node without a config refuses requests and says why") {
  bastion::node_options o;
  o.name = "no-models";
  auto node = bastion::node::start(o);
  auto s = node->submit(france(8));
  CHECK_THAT(failure_of(s, bastion::error_kind::unknown_model), Catch::Contains("config_file"));
  CHECK(node->models().empty());
}

TEST_CASE("a bad config or a missing model is refused at start with the reason") {
  bastion::node_options o;
  o.config_file = write_file("bad.toml", "[node]\nname = \"x\"\nsite = \"mars\"\n");
  CHECK_THROWS_WITH(bastion::node::start(o), Catch::Contains("site") && Catch::Contains("mars"));

  o.config_file = write_file("missing-model.toml", config_text("/nonexistent/model.gguf"));
  CHECK_THROWS_WITH(bastion::node::start(o), Catch::Contains("/nonexistent/model.gguf"));

  o.config_file = "/nonexistent/bastion.toml";
  CHECK_THROWS_WITH(bastion::node::start(o), Catch::Contains("/nonexistent/bastion.toml"));
}

TEST_CASE("listen opens the config's listeners on the ports it asks for") {
  bastion::node_options o;
  // Port 0 in a config means "off", so the test asks for fixed ports derived from its pid.
  const int base = 20000 + static_cast<int>(::getpid() % 20000);
  std::string text = config_text(bastion::test::smollm2_path());
  text.replace(text.find("127.0.0.1:0"), 11, "127.0.0.1:" + std::to_string(base));
  text.replace(text.find("127.0.0.1:0"), 11, "127.0.0.1:" + std::to_string(base + 1));
  o.config_file = write_file("listen.toml", text);
  o.listen = true;
  auto node = bastion::node::start(o);
  CHECK(node->http_port() == base);
  CHECK(node->rpc_port() == base + 1);
  node->stop();
  CHECK(node->http_port() == 0);
}

int main(int argc, char** argv) {
  const std::string path = bastion::test::smollm2_path();
  if (!bastion::test::file_exists(path)) {
    std::printf("SKIP: %s not found (run scripts/fetch-model)\n", path.c_str());
    return 77;
  }
  char tmpl[] = "/tmp/bastion-embed-XXXXXX";
  testing_tmpdir_value = ::mkdtemp(tmpl);
  if (!testing_tmpdir_value) return 1;
  const int rc = Catch::Session().run(argc, argv);
  serving_node().reset();
  std::system(("rm -rf " + std::string{testing_tmpdir_value}).c_str());
  return rc;
}
