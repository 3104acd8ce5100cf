// GGUF reading and writing: round trips through our writer, and hostile files (truncated,
// flipped bytes, absurd sizes and counts) that must give a clear status, never a crash.

#include "kernels/model/gguf_file.hpp"
#include "kernels/model/gguf_writer.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>

using namespace bastion::kernels;
using namespace bastion::kernels::gguf;

namespace {

std::string temp_path(const std::string& stem) {
  return "/tmp/bastion-gguf-" + std::to_string(::getpid()) + "-" + stem + ".gguf";
}

std::vector<std::uint8_t> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_all(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

std::vector<std::uint8_t> f32_bytes(const std::vector<float>& v) {
  std::vector<std::uint8_t> out(v.size() * 4);
  std::memcpy(out.data(), v.data(), out.size());
  return out;
}

// A small valid model-like file: metadata of several types and tensors of every supported type.
std::string make_sample(const std::string& stem) {
  writer w;
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.block_count", 2);
  w.set_f32("llama.rope.freq_base", 10000.0f);
  w.set_bool("tokenizer.ggml.add_bos_token", true);
  w.set_strings("tokenizer.ggml.tokens", {"<s>", "a", "b", "\xe4\xbd\xa0"});
  w.set_i32s("tokenizer.ggml.token_type", {3, 1, 1, 1});
  w.set_f32s("scores", {0.5f, -1.0f});
  std::vector<float> vals(64);
  for (int i = 0; i < 64; ++i)
    vals[static_cast<std::size_t>(i)] = static_cast<float>(i - 32) / 8.0f;
  REQUIRE(w.add_tensor("f32", tensor_type::f32, {64}, f32_bytes(vals)));
  std::vector<std::uint8_t> half(128), bf(128);
  for (int i = 0; i < 64; ++i) {
    const std::uint16_t h = float_to_half(vals[static_cast<std::size_t>(i)]);
    const std::uint16_t b = float_to_bf16(vals[static_cast<std::size_t>(i)]);
    std::memcpy(&half[static_cast<std::size_t>(2 * i)], &h, 2);
    std::memcpy(&bf[static_cast<std::size_t>(2 * i)], &b, 2);
  }
  REQUIRE(w.add_tensor("f16", tensor_type::f16, {32, 2}, half));
  REQUIRE(w.add_tensor("bf16", tensor_type::bf16, {64}, bf));
  // Q8_0: one block, scale 0.5, values -16..15.
  std::vector<std::uint8_t> q8(34);
  const std::uint16_t d = float_to_half(0.5f);
  std::memcpy(q8.data(), &d, 2);
  for (int j = 0; j < 32; ++j)
    q8[static_cast<std::size_t>(2 + j)] =
        static_cast<std::uint8_t>(static_cast<std::int8_t>(j - 16));
  REQUIRE(w.add_tensor("q8_0", tensor_type::q8_0, {32}, q8));
  // Q4_0 and Q4_1: one block each with nibble patterns.
  std::vector<std::uint8_t> q40(18), q41(20);
  std::memcpy(q40.data(), &d, 2);
  const std::uint16_t m = float_to_half(-1.0f);
  std::memcpy(q41.data(), &d, 2);
  std::memcpy(q41.data() + 2, &m, 2);
  for (int j = 0; j < 16; ++j) {
    q40[static_cast<std::size_t>(2 + j)] = static_cast<std::uint8_t>((j & 0xf) | ((15 - j) << 4));
    q41[static_cast<std::size_t>(4 + j)] = static_cast<std::uint8_t>((j & 0xf) | ((15 - j) << 4));
  }
  REQUIRE(w.add_tensor("q4_0", tensor_type::q4_0, {32}, q40));
  REQUIRE(w.add_tensor("q4_1", tensor_type::q4_1, {32}, q41));
  const auto path = temp_path(stem);
  REQUIRE(w.write(path));
  return path;
}

std::vector<float> dequant(const file& f, const std::string& name) {
  const auto* t = f.find_tensor(name);
  REQUIRE(t != nullptr);
  std::vector<float> out(static_cast<std::size_t>(t->n_elements));
  dequantize_row(t->type, f.data(*t), out.data(), static_cast<std::int64_t>(t->n_elements));
  return out;
}

}  // namespace

TEST_CASE("gguf: our writer's file reads back with every metadata and tensor type") {
  const auto path = make_sample("roundtrip");
  std::unique_ptr<file> f;
  auto st = file::open(path, f);
  INFO(st.message());
  REQUIRE(st);
  CHECK(f->version() == 3);
  std::string arch;
  REQUIRE(f->get_string("general.architecture", arch));
  CHECK(arch == "llama");
  std::uint64_t blocks = 0;
  REQUIRE(f->get_uint("llama.block_count", blocks));
  CHECK(blocks == 2);
  double base = 0;
  REQUIRE(f->get_float("llama.rope.freq_base", base));
  CHECK(base == 10000.0);
  bool add_bos = false;
  REQUIRE(f->get_bool("tokenizer.ggml.add_bos_token", add_bos));
  CHECK(add_bos);
  const std::vector<std::string>* tokens = nullptr;
  REQUIRE(f->get_strings("tokenizer.ggml.tokens", tokens));
  CHECK(*tokens == std::vector<std::string>{"<s>", "a", "b", "\xe4\xbd\xa0"});
  const std::vector<std::int64_t>* types = nullptr;
  REQUIRE(f->get_ints("tokenizer.ggml.token_type", types));
  CHECK(*types == std::vector<std::int64_t>{3, 1, 1, 1});
  CHECK_FALSE(f->get_uint("general.architecture", blocks));  // wrong type -> status
  CHECK_THAT(f->get_uint("no.such.key", blocks).message(), Catch::Contains("no.such.key"));

  REQUIRE(f->tensors().size() == 6);
  const auto* f16 = f->find_tensor("f16");
  REQUIRE(f16);
  CHECK(f16->dims == std::vector<std::int64_t>{32, 2});
  auto ref = dequant(*f, "f32");
  CHECK(dequant(*f, "f16") == ref);   // multiples of 1/8 in [-4, 4) are exact in half
  CHECK(dequant(*f, "bf16") == ref);  // and in bfloat16
  auto q8 = dequant(*f, "q8_0");
  for (int j = 0; j < 32; ++j)
    CHECK(q8[static_cast<std::size_t>(j)] == 0.5f * static_cast<float>(j - 16));
  auto q40 = dequant(*f, "q4_0");
  auto q41 = dequant(*f, "q4_1");
  for (int j = 0; j < 16; ++j) {
    CHECK(q40[static_cast<std::size_t>(j)] == 0.5f * static_cast<float>(j - 8));
    CHECK(q40[static_cast<std::size_t>(j + 16)] == 0.5f * static_cast<float>(15 - j - 8));
    CHECK(q41[static_cast<std::size_t>(j)] == 0.5f * static_cast<float>(j) - 1.0f);
    CHECK(q41[static_cast<std::size_t>(j + 16)] == 0.5f * static_cast<float>(15 - j) - 1.0f);
  }
  std::remove(path.c_str());
}

TEST_CASE("gguf: half and bfloat16 conversions are exact where they must be") {
  for (std::uint32_t h = 0; h < 0x10000u; ++h) {
    const auto half = static_cast<std::uint16_t>(h);
    const float f = half_to_float(half);
    if (f != f) continue;  // NaN payloads need not round-trip
    if (float_to_half(f) != half) FAIL("half 0x" << std::hex << h << " does not round-trip");
  }
  CHECK(half_to_float(0x3c00) == 1.0f);
  CHECK(half_to_float(0xc000) == -2.0f);
  CHECK(half_to_float(0x0001) == 5.9604644775390625e-08f);  // smallest subnormal
  CHECK(float_to_half(65520.0f) == 0x7c00);                 // rounds to +inf
  CHECK(bf16_to_float(float_to_bf16(3.140625f)) == 3.140625f);
  CHECK(float_to_bf16(1.00390625f) == 0x3f80);  // ties to even
}

TEST_CASE("gguf: every truncation of a valid file is refused with a status") {
  const auto path = make_sample("trunc");
  const auto bytes = read_all(path);
  const auto cut = temp_path("trunc-cut");
  int refused = 0;
  for (std::size_t n = 0; n < bytes.size(); n += (n < 2048 ? 1 : 97)) {
    write_all(cut, {bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n)});
    std::unique_ptr<file> f;
    auto st = file::open(cut, f);
    // The last tensor's data ends at the file's end minus padding: a cut that removes only
    // padding is still a valid file.
    if (st) {
      for (const auto& t : f->tensors()) CHECK(t.offset + t.n_bytes <= f->size_bytes());
      continue;
    }
    CHECK(st.message().find(cut) == 0);  // names the file
    CHECK(f == nullptr);
    ++refused;
  }
  CHECK(refused > 100);
  std::remove(cut.c_str());
  std::remove(path.c_str());
}

TEST_CASE("gguf: random byte flips never crash and accepted files stay in bounds") {
  const auto path = make_sample("flip");
  const auto bytes = read_all(path);
  const auto bad = temp_path("flip-bad");
  std::mt19937_64 rng{99};
  int refused = 0;
  for (int trial = 0; trial < 1500; ++trial) {
    auto b = bytes;
    // Flip bits in the header/metadata/tensor directory, where sizes and offsets live.
    const std::size_t header = std::min<std::size_t>(b.size(), 600);
    for (int k = 0; k < 1 + static_cast<int>(rng() % 4); ++k)
      b[rng() % header] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
    write_all(bad, b);
    std::unique_ptr<file> f;
    auto st = file::open(bad, f);
    if (!st) {
      ++refused;
      continue;
    }
    for (const auto& t : f->tensors()) {
      REQUIRE(t.offset + t.n_bytes <= f->size_bytes());
      std::vector<float> out(static_cast<std::size_t>(t.n_elements));
      dequantize_row(t.type, f->data(t), out.data(), static_cast<std::int64_t>(t.n_elements));
    }
  }
  CHECK(refused > 0);
  std::remove(bad.c_str());
  std::remove(path.c_str());
}

TEST_CASE("gguf: hostile headers give errors that say what is wrong") {
  const auto path = temp_path("hostile");
  auto open_bytes = [&](const std::vector<std::uint8_t>& b) {
    write_all(path, b);
    std::unique_ptr<file> f;
    auto st = file::open(path, f);
    CHECK_FALSE(st);
    return st.message();
  };
  auto header = [](std::uint32_t version, std::uint64_t n_tensors, std::uint64_t n_kv) {
    std::vector<std::uint8_t> b(24);
    const std::uint32_t magic = 0x46554747;
    std::memcpy(&b[0], &magic, 4);
    std::memcpy(&b[4], &version, 4);
    std::memcpy(&b[8], &n_tensors, 8);
    std::memcpy(&b[16], &n_kv, 8);
    return b;
  };
  auto append_u64 = [](std::vector<std::uint8_t>& b, std::uint64_t v) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(&v);
    b.insert(b.end(), p, p + 8);
  };
  auto append_u32 = [](std::vector<std::uint8_t>& b, std::uint32_t v) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(&v);
    b.insert(b.end(), p, p + 4);
  };
  auto append_str = [&](std::vector<std::uint8_t>& b, const std::string& s) {
    append_u64(b, s.size());
    b.insert(b.end(), s.begin(), s.end());
  };

  CHECK_THAT(open_bytes({'G', 'G', 'U', 'F'}), Catch::Contains("too short"));
  auto wrong_magic = header(3, 0, 0);
  wrong_magic[0] = 'X';
  CHECK_THAT(open_bytes(wrong_magic), Catch::Contains("bad magic"));
  CHECK_THAT(open_bytes(header(1, 0, 0)), Catch::Contains("version 1"));
  CHECK_THAT(open_bytes(header(3, 0, std::uint64_t{1} << 60)), Catch::Contains("metadata entries"));
  CHECK_THAT(open_bytes(header(3, std::uint64_t{1} << 60, 0)), Catch::Contains("tensors, limit"));

  auto huge_string = header(3, 0, 1);
  append_u64(huge_string, std::uint64_t{1} << 62);
  CHECK_THAT(open_bytes(huge_string), Catch::Contains("exceeds the limit"));

  auto huge_array = header(3, 0, 1);
  append_str(huge_array, "tokenizer.ggml.tokens");
  append_u32(huge_array, 9);  // array
  append_u32(huge_array, 8);  // of strings
  append_u64(huge_array, std::uint64_t{1} << 40);
  CHECK_THAT(open_bytes(huge_array), Catch::Contains("tokenizer.ggml.tokens") &&
                                         Catch::Contains("exceeds the limit or the file"));

  auto bad_type = header(3, 0, 1);
  append_str(bad_type, "k");
  append_u32(bad_type, 77);
  CHECK_THAT(open_bytes(bad_type), Catch::Contains("unknown value type 77"));

  auto unknown_tensor_type = header(3, 1, 0);
  append_str(unknown_tensor_type, "blk.0.weight");
  append_u32(unknown_tensor_type, 1);
  append_u64(unknown_tensor_type, 256);
  append_u32(unknown_tensor_type, 14);  // Q6_K: a real type we do not execute
  append_u64(unknown_tensor_type, 0);
  CHECK_THAT(open_bytes(unknown_tensor_type), Catch::Contains("blk.0.weight") &&
                                                  Catch::Contains("Q6_K") &&
                                                  Catch::Contains("not supported"));

  auto outside = header(3, 1, 0);
  append_str(outside, "w");
  append_u32(outside, 1);
  append_u64(outside, 1024);
  append_u32(outside, 0);  // F32: 4 KiB of data that is not there
  append_u64(outside, 0);
  outside.resize(outside.size() + 100, 0);  // a data section, far too short
  CHECK_THAT(open_bytes(outside), Catch::Contains("tensor 'w'") && Catch::Contains("outside"));

  auto overflow = header(3, 1, 0);
  append_str(overflow, "w");
  append_u32(overflow, 2);
  append_u64(overflow, std::uint64_t{1} << 39);
  append_u64(overflow, std::uint64_t{1} << 39);
  append_u32(overflow, 0);
  append_u64(overflow, 0);
  CHECK_THAT(open_bytes(overflow), Catch::Contains("overflows"));

  auto misaligned = header(3, 1, 0);
  append_str(misaligned, "w");
  append_u32(misaligned, 1);
  append_u64(misaligned, 4);
  append_u32(misaligned, 0);
  append_u64(misaligned, 3);
  CHECK_THAT(open_bytes(misaligned), Catch::Contains("not aligned"));

  auto dup = header(3, 0, 2);
  for (int i = 0; i < 2; ++i) {
    append_str(dup, "k");
    append_u32(dup, 4);
    append_u32(dup, 1);
  }
  CHECK_THAT(open_bytes(dup), Catch::Contains("appears twice"));

  std::unique_ptr<file> f;
  CHECK_THAT(file::open("/nonexistent/model.gguf", f).message(), Catch::Contains("cannot open"));
  std::remove(path.c_str());
}
