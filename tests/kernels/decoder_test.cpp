// The decoder on tiny random models written as GGUF: its logits against an independent dense
// double-precision forward pass from the Hugging Face weights (which also proves the llama Q/K
// permutation + adjacent-pair RoPE equals rotate_half), and batching that changes nothing:
// prefill at once, token by token, or mixed with other sequences give the same bits.

#include "kernels/engine/decoder.hpp"
#include "kernels/cpu/cpu_backend.hpp"
#include "kernels/model/gguf_loader.hpp"
#include "tests/kernels/tiny_model.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

using namespace bastion::kernels;
using bastion::test::tiny_spec;

namespace {

std::string temp_path(const std::string& stem) {
  return "/tmp/bastion-decoder-" + std::to_string(::getpid()) + "-" + stem + ".gguf";
}

struct fixture {
  tiny_spec spec;
  std::vector<bastion::test::named_tensor> hf;
  model m;
  std::unique_ptr<backend> be = make_cpu_backend();
  std::unique_ptr<kv_cache> kv;

  explicit fixture(const tiny_spec& s, tensor_type matrices = tensor_type::f32,
                   std::int64_t blocks = 32, std::uint32_t seed = 1)
      : spec(s), hf(bastion::test::random_hf_weights(s, seed)) {
    const std::string path = temp_path(s.arch + std::to_string(static_cast<int>(matrices)));
    REQUIRE(bastion::test::write_gguf(s, hf, matrices, path));
    auto st = load_gguf_model(path, m);
    INFO(st.message());
    REQUIRE(st);
    ::unlink(path.c_str());  // the mapping stays valid
    REQUIRE(kv_cache::create({m.config.n_layers, m.config.kv_dim(), 4, blocks, 8}, kv));
  }
  sequence_id add(sequence_id id) {
    REQUIRE(kv->add_sequence(id));
    return id;
  }
};

const std::vector<std::int32_t> prompt_a = {5, 17, 42, 8, 91, 33, 0, 64, 12, 77, 2};
const std::vector<std::int32_t> prompt_b = {60, 3, 3, 19, 88};

}  // namespace

TEST_CASE("GGUF config comes from the metadata") {
  fixture f{tiny_spec{}};
  const auto& c = f.m.config;
  CHECK(c.arch == architecture::llama);
  CHECK(c.n_layers == 2);
  CHECK(c.n_heads == 4);
  CHECK(c.n_kv_heads == 2);
  CHECK(c.head_dim == 16);
  CHECK(c.vocab == 96);
  CHECK(c.rope.style == rope_style::adjacent_pairs);
  CHECK_FALSE(c.tied_output);
  // eos (1) and the token whose text is <|im_end|> (3) end a generation.
  CHECK(f.m.end_of_generation_ids == std::vector<std::int32_t>{1, 3});
}

TEST_CASE("decoder logits match a dense double-precision reference for llama and qwen2") {
  for (const std::string arch : {"llama", "qwen2"}) {
    for (bool tied : {false, true}) {
      tiny_spec s;
      s.arch = arch;
      s.tied = tied;
      fixture f{s};
      CHECK(f.m.config.tied_output == tied);
      CHECK(f.m.config.rope.style ==
            (arch == "llama" ? rope_style::adjacent_pairs : rope_style::half_split));
      decoder d{f.m, *f.be, *f.kv};
      const sequence_id seq = f.add(1);
      step_output out;
      REQUIRE(d.step({{seq, prompt_a, true}}, out));
      REQUIRE(out.row_begin == std::vector<std::int64_t>{0, 11});
      const auto ref = bastion::test::reference_logits(s, f.hf, prompt_a);
      const double err = bastion::test::normalised_error(out.logits.data(), ref);
      INFO(arch << (tied ? " tied" : "") << ": normalised max error " << err);
      CHECK(err < 1e-4);  // F32 weights: only float rounding separates the two
    }
  }
}

TEST_CASE("a wrong RoPE pairing would be caught: the reference disagrees with it") {
  // Load the llama file but force the Hugging Face pairing onto its permuted Q/K rows.
  fixture f{tiny_spec{}};
  f.m.config.rope.style = rope_style::half_split;
  decoder d{f.m, *f.be, *f.kv};
  step_output out;
  REQUIRE(d.step({{f.add(1), prompt_a, true}}, out));
  const auto ref = bastion::test::reference_logits(f.spec, f.hf, prompt_a);
  CHECK(bastion::test::normalised_error(out.logits.data(), ref) > 1e-2);
}

TEST_CASE("F16, BF16 and Q8_0 weights stay close to the F32 reference") {
  // Bounds: a few times the measured error (F16 ~1e-3, BF16 ~1e-2, Q8_0 ~3e-2 on this
  // random model); a wrong dequantization gives errors of order 1.
  for (auto [type, bound] : {std::pair{tensor_type::f16, 5e-3}, std::pair{tensor_type::bf16, 5e-2},
                             std::pair{tensor_type::q8_0, 6e-2}}) {
    fixture f{tiny_spec{}, type};
    decoder d{f.m, *f.be, *f.kv};
    step_output out;
    REQUIRE(d.step({{f.add(1), prompt_a, true}}, out));
    const double err = bastion::test::normalised_error(
        out.logits.data(), bastion::test::reference_logits(f.spec, f.hf, prompt_a));
    INFO(traits_of(static_cast<std::uint32_t>(type))->name << " normalised max error " << err);
    CHECK(err < bound);
  }
}

TEST_CASE("prefill at once, token by token and in a mixed batch give identical logits") {
  fixture f{tiny_spec{}, tensor_type::q8_0};
  decoder d{f.m, *f.be, *f.kv};

  // (1) Whole prompt in one step, logits for every position.
  step_output whole;
  REQUIRE(d.step({{f.add(1), prompt_a, true}}, whole));

  // (2) One token per step.
  const sequence_id one = f.add(2);
  std::vector<float> stepped;
  for (auto t : prompt_a) {
    step_output o;
    REQUIRE(d.step({{one, {t}, false}}, o));
    stepped.insert(stepped.end(), o.logits.begin(), o.logits.end());
  }
  CHECK(stepped == whole.logits);

  // (3) Chunks of A mixed with B's prefill and decode steps in the same batches.
  const sequence_id a = f.add(3), b = f.add(4);
  std::vector<float> mixed;
  step_output o;
  REQUIRE(d.step({{b, {prompt_b.begin(), prompt_b.end() - 1}, false},
                  {a, {prompt_a.begin(), prompt_a.begin() + 4}, true}},
                 o));
  mixed.insert(mixed.end(), o.logits.begin() + o.row_begin[1] * o.vocab, o.logits.end());
  REQUIRE(d.step(
      {{a, {prompt_a.begin() + 4, prompt_a.begin() + 5}, true}, {b, {prompt_b.back()}, false}}, o));
  mixed.insert(mixed.end(), o.logits.begin(), o.logits.begin() + o.row_begin[1] * o.vocab);
  const std::vector<float> b_last(o.logits.begin() + o.row_begin[1] * o.vocab, o.logits.end());
  REQUIRE(d.step({{a, {prompt_a.begin() + 5, prompt_a.end()}, true}}, o));
  mixed.insert(mixed.end(), o.logits.begin(), o.logits.end());
  CHECK(mixed == whole.logits);

  // B alone gives the same last logits as B inside the mixed batches.
  const sequence_id b_alone = f.add(5);
  REQUIRE(d.step({{b_alone, prompt_b, false}}, o));
  CHECK(o.logits == b_last);
}

TEST_CASE("int8 numerics: the repacked weights change no bit, alone or batched") {
  // The CPU backend's eight-row copies (resident_weights, backend::repack_weight) against the
  // stored layout: a prefill with every position's logits, then a batch that decodes one
  // sequence beside another's prefill. Only the AVX2 kernels read such copies; the scalar
  // kernels get none (they read the stored layout), so their weights stay where they were.
  fixture f{tiny_spec{}, tensor_type::q8_0};
  std::vector<cpu_kernel_set> sets{cpu_kernel_set::scalar};
  if (cpu_has_avx2_kernels()) sets.push_back(cpu_kernel_set::avx2);
  for (auto set : sets) {
    std::vector<std::vector<float>> runs;
    for (bool repack : {true, false}) {
      cpu_backend_options o{1, set, cpu_matmul_numerics::int8_activations};
      o.repack_weights = repack;
      std::unique_ptr<backend> be;
      REQUIRE(make_cpu_backend(o, be));
      std::unique_ptr<kv_cache> kv;
      REQUIRE(kv_cache::create({f.m.config.n_layers, f.m.config.kv_dim(), 4, 32, 8}, kv));
      decoder d{f.m, *be, *kv};
      REQUIRE(d.prepare());
      // Every matrix of the tiny model has at least eight rows: all of them are copies.
      const bool copies = repack && set == cpu_kernel_set::avx2;
      CHECK((d.resident()->layers[0].w_down.layout == weight_layout::cpu_rows8) == copies);
      CHECK((d.resident()->output.layout == weight_layout::cpu_rows8) == copies);
      CHECK((d.resident()->arena.bytes() > 0) == copies);  // no memory for copies not made
      REQUIRE(kv->add_sequence(1));
      REQUIRE(kv->add_sequence(2));
      step_output o1, o2;
      REQUIRE(d.step({{1, prompt_a, true}}, o1));
      REQUIRE(d.step({{1, {7}, false}, {2, prompt_b, true}}, o2));
      auto all = o1.logits;
      all.insert(all.end(), o2.logits.begin(), o2.logits.end());
      runs.push_back(all);
    }
    INFO(cpu_kernel_set_name(set));
    CHECK(runs[0] == runs[1]);
  }
}

TEST_CASE("decoder refuses bad steps and leaves the cache as it was") {
  fixture f{tiny_spec{}, tensor_type::f32, /*blocks=*/4};  // 4 blocks of 4 tokens
  decoder d{f.m, *f.be, *f.kv, /*step_tokens_max=*/12};
  const sequence_id a = f.add(1), b = f.add(2);
  step_output out;
  REQUIRE(d.step({{a, {1, 2, 3, 4, 5}, false}}, out));  // 2 blocks
  REQUIRE(f.kv->blocks_free() == 2);

  auto expect = [&](const std::vector<step_entry>& batch, status_code code, const char* text) {
    const auto s = d.step(batch, out);
    INFO(s.message());
    CHECK(s.code() == code);
    CHECK_THAT(s.message(), Catch::Contains(text));
    CHECK(f.kv->length(a) == 5);
    CHECK(f.kv->length(b) == 0);
    CHECK(f.kv->blocks_free() == 2);
  };
  expect({{99, {1}, false}}, status_code::invalid_argument, "not live");
  expect({{b, {1}, false}, {b, {2}, false}}, status_code::invalid_argument, "twice");
  expect({{b, {}, false}}, status_code::invalid_argument, "no tokens");
  expect({{b, {96}, false}}, status_code::invalid_argument, "outside the vocabulary");
  expect({{b, {-1}, false}}, status_code::invalid_argument, "outside the vocabulary");
  expect({{b, std::vector<std::int32_t>(13, 1), false}}, status_code::invalid_argument, "bound");
  // b fits (2 blocks) only if a does not also grow past its second block: all or nothing.
  expect({{b, {1, 2, 3, 4, 5, 6, 7, 8}, false}, {a, {6, 7, 8, 9}, false}},
         status_code::resource_exhausted, "blocks");
  // The context bound (64 tokens) holds even with room in the cache.
  f.m.config.context = 8;
  expect({{a, {1, 2, 3, 4}, false}}, status_code::invalid_argument, "context");
}

TEST_CASE("GGUF models with missing or misshapen tensors or unknown architectures are refused") {
  tiny_spec s;
  auto w = bastion::test::random_hf_weights(s, 2);
  const std::string path = temp_path("broken");
  auto expect = [&](const std::vector<std::string>& words, status_code code) {
    model m;
    const auto st = load_gguf_model(path, m);
    INFO(st.message());
    CHECK(st.code() == code);
    CHECK_THAT(st.message(), Catch::Contains(path));
    for (const auto& word : words) CHECK_THAT(st.message(), Catch::Contains(word));
    CHECK(m.storage.empty());
  };
  SECTION("missing tensor") {
    w.erase(w.begin() + 4);  // layer 0's v_proj
    REQUIRE(bastion::test::write_gguf(s, w, tensor_type::f32, path));
    expect({"'blk.0.attn_v.weight' is missing"}, status_code::invalid_argument);
  }
  SECTION("shape that disagrees with the metadata") {
    auto bigger = s;
    bigger.ffn = 128;  // metadata says 128, tensors are 96 wide
    REQUIRE(bastion::test::write_gguf(bigger, w, tensor_type::f32, path));
    expect({"blk.0.ffn_gate.weight", "[96, 64]", "[128, 64]"}, status_code::invalid_argument);
  }
  SECTION("biases a llama model does not declare") {
    auto qwen = s;
    qwen.arch = "qwen2";
    const auto with_bias = bastion::test::random_hf_weights(qwen, 2);
    REQUIRE(bastion::test::write_gguf(qwen, with_bias, tensor_type::f32, path));
    model m;
    REQUIRE(load_gguf_model(path, m));  // fine as qwen2
    gguf::writer g;                     // and the same tensors under "llama" are refused
    std::unique_ptr<gguf::file> f;
    REQUIRE(gguf::file::open(path, f));
    g.set_string("general.architecture", "llama");
    for (const auto& [key, value] : f->metadata())
      if (key.rfind("qwen2.", 0) == 0) g.copy_value("llama." + key.substr(6), value);
    for (const auto& t : f->tensors())
      REQUIRE(g.add_tensor(t.name, t.type, t.dims,
                           std::vector<std::uint8_t>(f->data(t), f->data(t) + t.n_bytes)));
    f.reset();
    REQUIRE(g.write(path));
    expect({"biases"}, status_code::unsupported);
  }
  SECTION("unknown architecture") {
    gguf::writer g;
    g.set_string("general.architecture", "mamba");
    REQUIRE(g.write(path));
    expect({"'mamba'"}, status_code::unsupported);
  }
  SECTION("missing metadata") {
    gguf::writer g;
    g.set_string("general.architecture", "llama");
    g.set_u32("llama.block_count", 2);
    REQUIRE(g.write(path));
    expect({"llama.embedding_length"}, status_code::invalid_argument);
  }
  ::unlink(path.c_str());
}
