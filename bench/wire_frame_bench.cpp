// wire_frame_bench: the cost of Bastion's frame validation against reading the same Cap'n
// Proto bytes with no checks, measured in the same run (ratios survive noisy machines).
//
//   build/bench/wire_frame_bench [iterations]

#include "runtime/wire/frame.hpp"
#include "schemas/inference.capnp.h"

#include <capnp/message.h>
#include <capnp/serialize.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

using steady = std::chrono::steady_clock;

bastion::wire::frame sample_frame() {
  capnp::MallocMessageBuilder msg;
  auto req = msg.initRoot<bastion::schema::InferenceRequest>();
  req.setModelId("smollm2-135m-instruct");
  auto chat = req.initInputData().initChat(2);
  chat[0].setRole("system");
  chat[0].setContent("You are a careful assistant for a bank's compliance team.");
  chat[1].setRole("user");
  chat[1].setContent(std::string(512, 'x'));
  auto params = req.initParams();
  params.setMaxTokens(128);
  params.setRequestId("req-0001");
  return bastion::wire::make_frame(bastion::wire::frame_kind::inference_request, msg);
}

}  // namespace

int main(int argc, char** argv) {
  const long iterations = argc > 1 ? std::atol(argv[1]) : 200000;
  if (iterations <= 0) {
    std::fprintf(stderr, "usage: %s [iterations > 0]\n", argv[0]);
    return 2;
  }
  const auto f = sample_frame();
  std::size_t sink = 0;

  // Baseline: aligned copy + unchecked-size read of one field (what any capnp reader does).
  auto t0 = steady::now();
  for (long i = 0; i < iterations; ++i) {
    auto words = kj::heapArray<capnp::word>(f.payload.size() / sizeof(capnp::word));
    std::memcpy(words.begin(), f.payload.data(), f.payload.size());
    capnp::FlatArrayMessageReader reader(words);
    sink += reader.getRoot<bastion::schema::InferenceRequest>().getModelId().size();
  }
  auto t1 = steady::now();
  // Bastion: envelope checks + full structural walk under limits, then the same read.
  for (long i = 0; i < iterations; ++i) {
    auto view = bastion::wire::open_frame(f, bastion::wire::frame_kind::inference_request);
    if (!view) return 1;
    sink += (*view)->root<bastion::schema::InferenceRequest>().getModelId().size();
  }
  auto t2 = steady::now();

  const double base_s = std::chrono::duration<double>(t1 - t0).count();
  const double ours_s = std::chrono::duration<double>(t2 - t1).count();
  std::printf("command: %s %ld\n", argv[0], iterations);
  std::printf("payload: %zu bytes, iterations: %ld (checksum %zu)\n", f.payload.size(), iterations,
              sink);
  std::printf("baseline unchecked read : %10.0f frames/s\n", iterations / base_s);
  std::printf("open_frame (validated)  : %10.0f frames/s\n", iterations / ours_s);
  std::printf("ratio validated/baseline: %.2fx\n", base_s / ours_s);
  return 0;
}
