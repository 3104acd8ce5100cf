// NCCL on the one GPU a check machine has (two ranks need two GPUs: NCCL refuses two ranks on
// one device). What one rank can show of the tensor-parallel path a multi-GPU worker runs:
// make_nccl_group makes and connects a group; an all-reduce over one rank leaves the data as
// it was; a decoder that all-reduces after attention and MLP through the handle gives the
// logits of one that does not, bit for bit, also with its decode steps recorded as CUDA graphs
// holding the all-reduces; a group is refused two ranks on one device; an
// aborted handle fails its later all-reduces, and a new group works after it (what a worker
// does after a rank failed mid-step).

#include "kernels/cuda/nccl_collective.hpp"
#include "kernels/engine/decoder.hpp"
#include "kernels/model/gguf_loader.hpp"
#include "tests/kernels/cuda_greedy.hpp"
#include "tests/kernels/cuda_test_support.hpp"
#include "tests/kernels/tiny_model.hpp"

#include <unistd.h>

using namespace bastion;
using namespace bastion::test;

namespace {

// One sequence decoded greedily for 8 steps after its prompt (run_greedy), through `comm` as
// the decoder's collective, its decode steps recorded (CUDA graphs holding the NCCL
// all-reduces) or not: every step's logits.
kernels::status decode(const kernels::model& m, kernels::backend& be, kernels::collective* comm,
                       std::vector<std::vector<float>>& logits, bool recordings = false) {
  greedy_run run;
  auto s = run_greedy(m, be, {{5, 17, 2, 44, 9, 30, 61, 8}}, 8, run, {recordings, false, comm});
  if (s) logits = std::move(run.logits.front());
  return s;
}

}  // namespace

int main() {
  std::unique_ptr<kernels::backend> gpu;
  if (int rc = open_cuda(gpu); rc != 0) return rc;
  cuda_checks c;
  std::mt19937 rng{5};

  std::vector<std::unique_ptr<kernels::collective>> group;
  auto st = kernels::cuda::make_nccl_group({gpu.get()}, group);
  c.check(st && group.size() == 1 && group[0]->ranks() == 1 && group[0]->rank() == 0,
          "make_nccl_group makes and connects a group of one rank" +
              (st ? std::string{} : ": " + st.message()));
  if (!st || group.size() != 1) return c.finish();

  {  // an all-reduce over one rank is the identity
    const auto host = random_vector(4099, rng);
    dev<float> d{*gpu, host};
    st = group[0]->all_reduce_sum(d.ptr(), 4099);
    if (st) st = gpu->synchronize();
    c.check(st && d.read(*gpu, host.size()) == host,
            "all_reduce_sum over one rank leaves 4099 floats as they were" +
                (st ? std::string{} : ": " + st.message()));
  }

  {  // a decoder that all-reduces through the handle: the same logits, bit for bit
    tiny_spec spec;
    const std::string path = "/tmp/bastion-cuda-nccl-" + std::to_string(::getpid()) + ".gguf";
    kernels::model m;
    const bool loaded = write_gguf(spec, random_hf_weights(spec, 3), kernels::tensor_type::f16,
                                   path) &&
                        kernels::load_gguf_model(path, m);
    ::unlink(path.c_str());
    std::vector<std::vector<float>> alone, reduced, recorded;
    st = loaded ? decode(m, *gpu, nullptr, alone)
                : kernels::status{kernels::status_code::invalid_argument, "tiny model not loaded"};
    if (st) st = decode(m, *gpu, group[0].get(), reduced);
    c.check(st && alone == reduced && alone.size() == 9,
            "a decoder all-reducing through NCCL (one rank) gives the logits of one that does not, "
            "over 9 steps" +
                (st ? std::string{} : ": " + st.message()));
    // The decode steps recorded as CUDA graphs with the all-reduces inside: the same kernels
    // in the same order, so the same bits.
    if (st) st = decode(m, *gpu, group[0].get(), recorded, true);
    c.check(st && recorded == reduced,
            "decode steps recorded with their NCCL all-reduces give bit-identical logits" +
                (st ? std::string{} : ": " + st.message()));
  }

  {  // two ranks on one device are refused before NCCL is asked
    std::vector<std::unique_ptr<kernels::collective>> two;
    const auto refused = kernels::cuda::make_nccl_group({gpu.get(), gpu.get()}, two);
    c.check(refused.code() == kernels::status_code::invalid_argument &&
                refused.message().find("both on cuda:") != std::string::npos && two.empty(),
            "a group of two ranks on one device is refused: " + refused.message());
  }

  {  // abort, then a new group: what a worker does after a rank failed mid-step
    group[0]->abort();
    dev<float> d{*gpu, std::vector<float>(16, 1.0f)};
    const auto after = group[0]->all_reduce_sum(d.ptr(), 16);
    c.check(after.code() == kernels::status_code::device_error,
            "an aborted handle fails its all-reduce: " + after.message());
    group.clear();  // an aborted communicator is not destroyed a second time
    st = kernels::cuda::make_nccl_group({gpu.get()}, group);
    if (st) st = group[0]->all_reduce_sum(d.ptr(), 16);
    if (st) st = gpu->synchronize();
    c.check(st && d.read(*gpu, 16) == std::vector<float>(16, 1.0f),
            "a new group after the abort works" + (st ? std::string{} : ": " + st.message()));
  }
  return c.finish();
}
