// The tensor-parallel engine (tp_decoder) on the CPU backend with simulated ranks (a
// local_collective_group in place of NCCL): the batch runner over R = 2 and 4 ranks gives the
// tokens it gives over one decoder, greedy and sampled; a bad batch is refused without harm;
// a rank whose device fails mid-step does not leave the others waiting in an all-reduce: the
// step fails naming the rank, and so does every later one; mismatched parts are refused.

#include "kernels/engine/tp_decoder.hpp"
#include "kernels/engine/batch_runner.hpp"
#include "kernels/engine/tensor_parallel.hpp"
#include "kernels/model/gguf_loader.hpp"
#include "tests/actors/flaky_backend.hpp"
#include "tests/kernels/forwarding_collective.hpp"
#include "tests/kernels/host_as_device_backend.hpp"
#include "tests/kernels/tiny_model.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>

using namespace bastion;
using namespace bastion::kernels;

namespace {

model load_splittable(const char* arch) {
  test::tiny_spec spec;
  spec.arch = arch;
  spec.dim = 128;
  spec.n_heads = 8;
  spec.n_kv_heads = 4;
  spec.head_dim = 16;
  spec.ffn = 256;
  const std::string path = "/tmp/bastion-tp-decoder-" + std::to_string(::getpid()) + ".gguf";
  REQUIRE(test::write_gguf(spec, test::random_hf_weights(spec, 9), tensor_type::q8_0, path));
  model m;
  REQUIRE(load_gguf_model(path, m));
  ::unlink(path.c_str());
  return m;
}

kv_cache_config kv_config(const model& m) {
  return {m.config.n_layers, m.config.kv_dim(), 4, 64, 8};
}

std::map<std::uint64_t, std::vector<std::int32_t>> serve(step_engine& engine) {
  runner_options o;
  o.batch_sequences_max = 4;
  o.step_tokens_max = 64;
  o.prefill_chunk_max = 6;
  batch_runner runner{engine, o};
  for (std::uint64_t i = 0; i < 4; ++i) {
    runner_request r;
    r.id = i;
    r.prompt = {static_cast<std::int32_t>(3 + 7 * i), 14, 15, 9, 2, 6, 5, 35, 8};
    r.max_tokens = 10;
    if (i % 2) {
      r.sampling.temperature = 0.9f;
      r.sampling.top_k = 20;
      r.sampling.seed = 40 + i;
    }
    REQUIRE(runner.add(std::move(r)));
  }
  std::map<std::uint64_t, std::vector<std::int32_t>> tokens;
  std::vector<runner_event> events;
  for (int i = 0; i < 200 && !runner.idle(); ++i) {
    events.clear();
    REQUIRE(runner.step(events));
    for (const auto& e : events)
      if (e.what == runner_event::kind::token) tokens[e.id].push_back(e.token);
  }
  REQUIRE(runner.idle());
  CHECK(runner.stats().max_step_sequences > 1);
  return tokens;
}

struct group_of {
  local_collective_group group;
  std::vector<std::unique_ptr<backend>> backends;
  std::vector<tp_decoder::rank_parts> parts;
  explicit group_of(int ranks, bool flaky = false) : group(ranks) {
    for (int r = 0; r < ranks; ++r) {
      if (flaky)
        backends.push_back(std::make_unique<test::flaky_backend>(make_cpu_backend()));
      else
        backends.push_back(make_cpu_backend());
      parts.push_back({backends.back().get(), &group.rank(r)});
    }
  }
};

// A rank's handle whose all-reduce never completes until the group is aborted, as an NCCL
// all-reduce whose peer lost its link: no failure of the rank's own ends it. It can report an
// asynchronous error, as NCCL does for such a link.
class hanging_rank final : public bastion::test::forwarding_collective {
 public:
  using forwarding_collective::forwarding_collective;
  status all_reduce_sum(float* data, std::int64_t n) override {
    if (!hanging_.load()) return inner_.all_reduce_sum(data, n);
    std::unique_lock<std::mutex> lock{mutex_};
    released_.wait(lock, [&] { return aborted_; });
    return {status_code::device_error, "all_reduce_sum: aborted while it hung"};
  }
  void abort() noexcept override {
    {
      std::lock_guard<std::mutex> lock{mutex_};
      aborted_ = true;
    }
    released_.notify_all();
    inner_.abort();
  }
  status async_error() noexcept override {
    std::lock_guard<std::mutex> lock{mutex_};
    return async_;
  }
  void hang() noexcept { hanging_ = true; }
  void report(status s) {
    std::lock_guard<std::mutex> lock{mutex_};
    async_ = std::move(s);
  }

 private:
  std::atomic<bool> hanging_{false};
  std::mutex mutex_;
  std::condition_variable released_;
  bool aborted_ = false;
  status async_ = status::ok();
};

// A rank's handle that says its all-reduce can be recorded, as NCCL's does.
class capturable_rank final : public bastion::test::forwarding_collective {
 public:
  using forwarding_collective::forwarding_collective;
  bool capturable() const noexcept override { return true; }
};

}  // namespace

TEST_CASE("the batch runner over tensor-parallel ranks gives the one-decoder tokens") {
  for (const char* arch : {"llama", "qwen2"}) {
    const model m = load_splittable(arch);
    auto be = make_cpu_backend();
    std::unique_ptr<kv_cache> kv;
    REQUIRE(kv_cache::create(kv_config(m), kv));
    decoder one{m, *be, *kv};
    const auto want = serve(one);
    REQUIRE(want.size() == 4);
    for (int ranks : {2, 4}) {
      INFO(arch << ", " << ranks << " ranks");
      group_of g{ranks};
      std::unique_ptr<tp_decoder> tp;
      REQUIRE(tp_decoder::create(m, g.parts, kv_config(m), tp));
      CHECK(tp->ranks() == ranks);
      // Partial sums in another order differ in the last bits only: on these rows no greedy
      // or sampled choice sits that close to a tie.
      CHECK(serve(*tp) == want);
      CHECK(tp->kv_blocks_free() == 64);  // every sequence released on every rank
    }
  }
}

TEST_CASE("a bad batch is refused by every rank alike and leaves the engine working") {
  const model m = load_splittable("llama");
  group_of g{2};
  std::unique_ptr<tp_decoder> tp;
  REQUIRE(tp_decoder::create(m, g.parts, kv_config(m), tp));
  REQUIRE(tp->add_sequence(1));
  step_output out;
  const auto bad = tp->step({{1, {5, 100000}, false}}, out, step_results::logits);
  CHECK(bad.code() == status_code::invalid_argument);
  CHECK(bad.message().find("rank") != std::string::npos);
  CHECK(tp->sequence_length(1) == 0);
  CHECK(tp->step({{1, {5, 6, 7}, false}}, out, step_results::logits));
  CHECK(tp->sequence_length(1) == 3);
  CHECK(out.logits.size() == static_cast<std::size_t>(m.config.vocab));
  tp->release_sequence(1);
}

TEST_CASE("a rank failing on its device does not leave the others waiting") {
  const model m = load_splittable("llama");
  group_of g{2, true};
  std::unique_ptr<tp_decoder> tp;
  REQUIRE(tp_decoder::create(m, g.parts, kv_config(m), tp));
  REQUIRE(tp->add_sequence(1));
  step_output out;
  REQUIRE(tp->step({{1, {5, 6, 7}, false}}, out, step_results::logits));
  // Rank 1's device breaks: rank 0 reaches its first all-reduce and would wait there forever.
  static_cast<test::flaky_backend&>(*g.backends[1]).set_broken(true);
  const auto failed = tp->step({{1, {8}, false}}, out, step_results::logits);
  CHECK(failed.code() == status_code::device_error);
  CHECK(failed.message().find("rank 1") != std::string::npos);
  CHECK(failed.message().find("rebuilt") != std::string::npos);
  static_cast<test::flaky_backend&>(*g.backends[1]).set_broken(false);
  const auto later = tp->step({{1, {8}, false}}, out, step_results::logits);
  CHECK(later.code() == status_code::device_error);
  CHECK(later.message() == failed.message());
}

TEST_CASE("a rank hung in an all-reduce is released by an asynchronous error or the time limit") {
  const model m = load_splittable("llama");
  for (const bool async : {true, false}) {
    INFO((async ? "asynchronous error" : "time limit"));
    group_of g{2};
    hanging_rank stuck{g.group.rank(1)};
    g.parts[1].comm = &stuck;
    tp_watch w;
    w.step_timeout = async ? std::chrono::milliseconds{60000} : std::chrono::milliseconds{300};
    w.interval = std::chrono::milliseconds{20};
    std::unique_ptr<tp_decoder> tp;
    REQUIRE(tp_decoder::create(m, g.parts, kv_config(m), tp, w));
    REQUIRE(tp->add_sequence(1));
    step_output out;
    REQUIRE(tp->step({{1, {5, 6, 7}, false}}, out, step_results::logits));  // not hanging yet
    stuck.hang();
    if (async) stuck.report({status_code::device_error, "injected: NVLink lost"});
    const auto began = std::chrono::steady_clock::now();
    const auto failed = tp->step({{1, {8}, false}}, out, step_results::logits);
    const auto took = std::chrono::steady_clock::now() - began;
    CHECK(failed.code() == status_code::device_error);
    CHECK(failed.message().find(async ? "injected: NVLink lost"
                                      : "did not finish the step "
                                        "within 300 ms") != std::string::npos);
    CHECK(failed.message().find("rank") != std::string::npos);
    CHECK_FALSE(tp->broken().empty());
    CHECK(took < std::chrono::seconds{10});
    CHECK(tp->step({{1, {8}, false}}, out, step_results::logits).message() == failed.message());
  }
}

TEST_CASE("decode steps of a group are offered for recording only when its collective allows") {
  const model m = load_splittable("qwen2");
  for (const bool capturable : {true, false}) {
    INFO((capturable ? "capturable collective" : "host collective"));
    local_collective_group group{2};
    std::vector<std::unique_ptr<test::host_as_device_backend>> devices;
    std::vector<std::unique_ptr<capturable_rank>> handles;
    std::vector<tp_decoder::rank_parts> parts;
    for (int r = 0; r < 2; ++r) {
      devices.push_back(std::make_unique<test::host_as_device_backend>());
      handles.push_back(std::make_unique<capturable_rank>(group.rank(r)));
      parts.push_back({devices.back().get(), capturable
                                                 ? static_cast<collective*>(handles.back().get())
                                                 : &group.rank(r)});
    }
    std::map<std::uint64_t, std::vector<std::int32_t>> tokens;
    {
      std::unique_ptr<tp_decoder> tp;
      REQUIRE(tp_decoder::create(m, parts, kv_config(m), tp));
      tokens = serve(*tp);
      for (auto& d : devices) CHECK(d->forgets == 0);
    }
    for (auto& d : devices) {
      // Decode steps (one token per sequence) go through run_recorded on every rank when the
      // all-reduces can be recorded with them; the group's end drops the ranks' recordings
      // (each rank's decoder does: a replay holds the group's collective, which goes with it).
      if (capturable)
        CHECK(d->recorded_runs > 0);
      else
        CHECK(d->recorded_runs == 0);
      CHECK(d->forgets >= 1);
    }
    // Recorded or not, the same tokens as one decoder on the host.
    auto be = make_cpu_backend();
    std::unique_ptr<kv_cache> kv;
    REQUIRE(kv_cache::create(kv_config(m), kv));
    decoder one{m, *be, *kv};
    CHECK(tokens == serve(one));
  }
}

TEST_CASE("parts that do not make a group are refused with the reason") {
  const model m = load_splittable("llama");
  group_of g{2};
  std::unique_ptr<tp_decoder> tp;
  auto swapped = g.parts;
  std::swap(swapped[0].comm, swapped[1].comm);
  auto s = tp_decoder::create(m, swapped, kv_config(m), tp);
  CHECK(s.code() == status_code::invalid_argument);
  CHECK(s.message().find("rank 0") != std::string::npos);
  CHECK(tp_decoder::create(m, {}, kv_config(m), tp).code() == status_code::invalid_argument);
  // 4 KV heads do not split 3 ways.
  group_of three{3};
  s = tp_decoder::create(m, three.parts, kv_config(m), tp);
  CHECK(s.code() == status_code::invalid_argument);
  CHECK(tp == nullptr);
}
