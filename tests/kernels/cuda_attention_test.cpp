// The CUDA backend's KV write and paged attention against the CPU reference: grouped-query
// heads, blocks handed out in shuffled order, one step mixing a prefill chunk in the middle of
// a sequence, a decode token and a prefill from position 0; two head sizes; and bad tables,
// which the device reports at synchronize.

#include "tests/kernels/cuda_test_support.hpp"

#include <numeric>

using namespace bastion;
using namespace bastion::test;

namespace {

struct scenario {
  std::int64_t n_heads, n_kv_heads, head_dim, block_tokens, pool_blocks;
};

void run(kernels::backend& gpu, kernels::backend& cpu, cuda_checks& c, const scenario& sc,
         std::mt19937& rng) {
  const std::int64_t kv_dim = sc.n_kv_heads * sc.head_dim;
  const std::int64_t slots = sc.pool_blocks * sc.block_tokens;
  // Sequence lengths after this step, and how many of their last tokens this step queries.
  const std::vector<std::int64_t> length = {37, 13, 6}, queried = {7, 1, 6};
  std::vector<std::int32_t> blocks(static_cast<std::size_t>(sc.pool_blocks));
  std::iota(blocks.begin(), blocks.end(), 0);
  std::shuffle(blocks.begin(), blocks.end(), rng);
  std::vector<std::int32_t> seq_block_begin = {0}, block_table, positions, token_seq, write_slots;
  std::size_t next = 0;
  for (std::size_t s = 0; s < length.size(); ++s) {
    const std::int64_t nb = (length[s] + sc.block_tokens - 1) / sc.block_tokens;
    for (std::int64_t b = 0; b < nb; ++b) block_table.push_back(blocks[next++]);
    seq_block_begin.push_back(static_cast<std::int32_t>(block_table.size()));
    for (std::int64_t p = length[s] - queried[s]; p < length[s]; ++p) {
      positions.push_back(static_cast<std::int32_t>(p));
      token_seq.push_back(static_cast<std::int32_t>(s));
    }
  }
  // Keys of every cached position (the earlier steps' and this one's), written by kv_write.
  std::vector<std::int32_t> all_slots;
  for (std::size_t s = 0; s < length.size(); ++s)
    for (std::int64_t p = 0; p < length[s]; ++p)
      all_slots.push_back(static_cast<std::int32_t>(
          block_table[static_cast<std::size_t>(seq_block_begin[s] + p / sc.block_tokens)] *
              sc.block_tokens +
          p % sc.block_tokens));
  const auto T = static_cast<std::int64_t>(positions.size());
  const auto n_keys = static_cast<std::int64_t>(all_slots.size());
  const auto k = random_vector(static_cast<std::size_t>(n_keys * kv_dim), rng);
  const auto v = random_vector(static_cast<std::size_t>(n_keys * kv_dim), rng);
  const auto q = random_vector(static_cast<std::size_t>(T * sc.n_heads * sc.head_dim), rng);

  std::vector<float> hk(static_cast<std::size_t>(slots * kv_dim)), hv(hk.size());
  const kernels::paged_kv_view hkv{hk.data(), hv.data(), sc.pool_blocks, sc.block_tokens, kv_dim};
  kernels::attention_batch b;
  b.n_tokens = T;
  b.n_heads = sc.n_heads;
  b.n_kv_heads = sc.n_kv_heads;
  b.head_dim = sc.head_dim;
  b.scale = 1.0f / std::sqrt(static_cast<float>(sc.head_dim));
  b.n_seqs = static_cast<std::int64_t>(length.size());
  b.positions = positions.data();
  b.token_seq = token_seq.data();
  b.seq_block_begin = seq_block_begin.data();
  b.block_table = block_table.data();
  std::vector<float> want(q.size());
  if (!cpu.kv_write_f32(k.data(), v.data(), all_slots.data(), n_keys, hkv) ||
      !cpu.paged_attention_f32(q.data(), b, hkv, want.data())) {
    c.check(false, "CPU reference failed");
    return;
  }

  dev<float> dk_store{gpu, std::vector<float>(hk.size())},
      dv_store{gpu, std::vector<float>(hk.size())};
  dev<float> dk{gpu, k}, dv{gpu, v}, dq{gpu, q}, dout{gpu, std::vector<float>(q.size())};
  dev<std::int32_t> dslots{gpu, all_slots}, dpos{gpu, positions}, dseq{gpu, token_seq},
      dbegin{gpu, seq_block_begin}, dtable{gpu, block_table};
  const kernels::paged_kv_view dkv{dk_store.ptr(), dv_store.ptr(), sc.pool_blocks, sc.block_tokens,
                                   kv_dim};
  auto s = gpu.kv_write_f32(dk.ptr(), dv.ptr(), dslots.ptr(), n_keys, dkv);
  const std::string shape =
      "heads " + std::to_string(sc.n_heads) + "/" + std::to_string(sc.n_kv_heads) + " head_dim " +
      std::to_string(sc.head_dim) + " block " + std::to_string(sc.block_tokens);
  double err = s ? normalised_error(dk_store.read(gpu, hk.size()), hk) +
                       normalised_error(dv_store.read(gpu, hv.size()), hv)
                 : 1.0;
  c.check(s && err == 0.0, "kv_write_f32 " + shape + " (exact)", err);
  kernels::attention_batch db = b;
  db.positions = dpos.ptr();
  db.token_seq = dseq.ptr();
  db.seq_block_begin = dbegin.ptr();
  db.block_table = dtable.ptr();
  s = gpu.paged_attention_f32(dq.ptr(), db, dkv, dout.ptr());
  err = s ? normalised_error(dout.read(gpu, q.size()), want) : 1.0;
  if (!s) std::printf("  %s\n", s.message().c_str());
  c.check(s && err < 1e-5, "paged_attention_f32 prefill chunk + decode + prefill, " + shape, err);

  // A block id outside the pool: zero output and invalid_argument at synchronize.
  auto bad_table = block_table;
  bad_table[0] = static_cast<std::int32_t>(sc.pool_blocks);
  dev<std::int32_t> dbad{gpu, bad_table};
  db.block_table = dbad.ptr();
  s = gpu.paged_attention_f32(dq.ptr(), db, dkv, dout.ptr());
  auto sync = gpu.synchronize();
  c.check(s && sync.code() == kernels::status_code::invalid_argument,
          "a block id outside the pool is reported: " + sync.message());
}

}  // namespace

int main() {
  std::unique_ptr<kernels::backend> gpu;
  if (int rc = open_cuda(gpu); rc != 0) return rc;
  auto cpu = kernels::make_cpu_backend();
  cuda_checks c;
  std::mt19937 rng{13};
  run(*gpu, *cpu, c, {9, 3, 64, 16, 8}, rng);   // SmolLM2's heads
  run(*gpu, *cpu, c, {8, 2, 128, 4, 20}, rng);  // llama-7B-like head size, small blocks
  run(*gpu, *cpu, c, {4, 4, 40, 5, 16}, rng);   // no grouping, head_dim not a multiple of 32
  {
    kernels::attention_batch b;
    b.n_tokens = 1;
    b.n_heads = 4;
    b.n_kv_heads = 3;
    b.head_dim = 8;
    dev<float> d{*gpu, std::vector<float>(64)};
    const kernels::paged_kv_view kv{d.ptr(), d.ptr(), 1, 1, 24};
    c.check(gpu->paged_attention_f32(d.ptr(), b, kv, d.ptr()).code() ==
                kernels::status_code::invalid_argument,
            "n_kv_heads that does not divide n_heads is refused");
  }
  return c.finish();
}
