// The safetensors reader against valid and hostile files: every violation of the format gives
// a status naming the file, the tensor and the reason; random corruption never crashes.

#include "kernels/model/hf/safetensors_file.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>
#include <cstring>
#include <fstream>
#include <random>

using namespace bastion::kernels;
using namespace bastion::kernels::safetensors;

namespace {

std::string temp_path(const std::string& stem) {
  return "/tmp/bastion-st-" + std::to_string(::getpid()) + "-" + stem + ".safetensors";
}

std::vector<std::uint8_t> make_file(const std::string& header, std::size_t data_bytes,
                                    std::uint64_t header_len_override = 0) {
  std::vector<std::uint8_t> out(8);
  const std::uint64_t n = header_len_override ? header_len_override : header.size();
  for (int i = 0; i < 8; ++i)
    out[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(n >> (8 * i));
  out.insert(out.end(), header.begin(), header.end());
  for (std::size_t i = 0; i < data_bytes; ++i) out.push_back(static_cast<std::uint8_t>(i * 7));
  return out;
}

std::string write(const std::string& stem, const std::vector<std::uint8_t>& bytes) {
  const auto path = temp_path(stem);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  return path;
}

// Two tensors: "a" F32 [2, 3] (24 bytes) then "b" BF16 [4] (8 bytes).
const std::string good_header =
    R"({"__metadata__":{"format":"pt"},"b":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]},)"
    R"("a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}})";

status open_bytes(const std::string& stem, const std::vector<std::uint8_t>& bytes,
                  std::unique_ptr<file>& f) {
  const auto path = write(stem, bytes);
  auto s = file::open(path, f);
  ::unlink(path.c_str());
  return s;
}

void expect_refused(const std::string& stem, const std::vector<std::uint8_t>& bytes,
                    const std::vector<std::string>& words) {
  std::unique_ptr<file> f;
  const auto s = open_bytes(stem, bytes, f);
  INFO(stem << ": " << s.message());
  CHECK(s.code() == status_code::invalid_argument);
  CHECK(f == nullptr);
  CHECK_THAT(s.message(), Catch::Contains(temp_path(stem)));
  for (const auto& w : words) CHECK_THAT(s.message(), Catch::Contains(w));
}

std::string header_with(const std::string& a_entry) { return R"({"a":)" + a_entry + "}"; }

}  // namespace

TEST_CASE("a valid safetensors file opens with its tensors, metadata and bytes") {
  auto bytes = make_file(good_header, 32);
  std::unique_ptr<file> f;
  REQUIRE(open_bytes("good", bytes, f));
  REQUIRE(f->tensors().size() == 2);
  const auto* a = f->find("a");
  REQUIRE(a != nullptr);
  CHECK(a->dtype == "F32");
  CHECK(a->type == tensor_type::f32);
  CHECK(a->shape == std::vector<std::int64_t>{2, 3});
  const auto* b = f->find("b");
  REQUIRE(b != nullptr);
  CHECK(b->type == tensor_type::bf16);
  CHECK(f->data(*b)[0] == static_cast<std::uint8_t>(24 * 7));
  CHECK(f->metadata().at("format") == "pt");
  CHECK(f->find("c") == nullptr);
  // Header padded with trailing spaces is allowed by the format.
  REQUIRE(open_bytes("padded", make_file(good_header + "    ", 32), f));
  // A dtype the engine cannot execute still parses (it is valid safetensors).
  REQUIRE(open_bytes(
      "i64", make_file(header_with(R"({"dtype":"I64","shape":[2],"data_offsets":[0,16]})"), 16),
      f));
  CHECK_FALSE(f->find("a")->type.has_value());
  // Scalars (empty shape) and empty tensors are valid too.
  REQUIRE(open_bytes(
      "scalar",
      make_file(
          R"({"s":{"dtype":"F16","shape":[],"data_offsets":[0,2]},"e":{"dtype":"F32","shape":[0,5],"data_offsets":[2,2]}})",
          2),
      f));
}

TEST_CASE("truncated and absurd-length safetensors files are refused") {
  expect_refused("tiny", {1, 2, 3}, {"too short"});
  auto bytes = make_file(good_header, 32);
  bytes.resize(bytes.size() - 5);  // data cut short
  expect_refused("truncated-data", bytes, {"tensor 'b'", "past the end"});
  expect_refused("header-past-end", make_file(good_header, 0, good_header.size() + 100),
                 {"past the end"});
  expect_refused("header-absurd", make_file(good_header, 32, std::uint64_t{1} << 62),
                 {"exceeds the limit"});
  expect_refused("header-huge-but-present", make_file(good_header, 32, (100u << 20) + 1),
                 {"exceeds the limit"});
  bytes = make_file(good_header, 32);
  bytes.resize(8 + good_header.size() / 2);  // header cut in the middle
  expect_refused("truncated-header", bytes, {"past the end"});
}

TEST_CASE("malformed safetensors headers are refused with the reason") {
  expect_refused("not-json", make_file("{not json at all", 0), {"not valid JSON"});
  expect_refused("not-object", make_file("[1,2,3]", 0), {"'{'"});
  expect_refused("duplicate",
                 make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                           R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                           8),
                 {"'a'", "twice"});
  expect_refused("dtype-unknown",
                 make_file(header_with(R"({"dtype":"Q4","shape":[2],"data_offsets":[0,1]})"), 1),
                 {"tensor 'a'", "unknown dtype 'Q4'"});
  expect_refused("dtype-missing",
                 make_file(header_with(R"({"shape":[2],"data_offsets":[0,8]})"), 8),
                 {"tensor 'a'", "dtype"});
  expect_refused("shape-negative",
                 make_file(header_with(R"({"dtype":"F32","shape":[-2],"data_offsets":[0,8]})"), 8),
                 {"tensor 'a'", "shape"});
  expect_refused("shape-float",
                 make_file(header_with(R"({"dtype":"F32","shape":[2.5],"data_offsets":[0,8]})"), 8),
                 {"tensor 'a'", "shape"});
  expect_refused("shape-overflow",
                 make_file(header_with(R"({"dtype":"F64","shape":[1099511627775,1099511627775,)"
                                       R"(1099511627775],"data_offsets":[0,8]})"),
                           8),
                 {"tensor 'a'", "absurdly large"});
  expect_refused("shape-vs-offsets",
                 make_file(header_with(R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})"), 8),
                 {"tensor 'a'", "need 12"});
  expect_refused("offsets-reversed",
                 make_file(header_with(R"({"dtype":"F32","shape":[0],"data_offsets":[8,0]})"), 8),
                 {"tensor 'a'", "end before"});
  expect_refused("offsets-negative",
                 make_file(header_with(R"({"dtype":"F32","shape":[2],"data_offsets":[-8,0]})"), 8),
                 {"tensor 'a'"});
  expect_refused(
      "extra-field",
      make_file(header_with(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1})"), 8),
      {"tensor 'a'", "unexpected field 'x'"});
  expect_refused(
      "metadata-not-string",
      make_file(R"({"__metadata__":{"n":5},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})",
                1),
      {"__metadata__"});
}

TEST_CASE("safetensors byte ranges must tile the data buffer exactly") {
  expect_refused("outside",
                 make_file(header_with(R"({"dtype":"F32","shape":[4],"data_offsets":[0,16]})"), 8),
                 {"tensor 'a'", "past the end"});
  expect_refused(
      "far-outside",
      make_file(
          header_with(
              R"({"dtype":"U8","shape":[8],"data_offsets":[18446744073709551607,18446744073709551615]})"),
          8),
      {"tensor 'a'", "past the end"});
  expect_refused("overlap",
                 make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                           12),
                 {"overlap"});
  expect_refused("hole",
                 make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                           R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                           12),
                 {"tensor 'b'", "hole"});
  expect_refused("trailing-bytes",
                 make_file(header_with(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4]})"), 9),
                 {"5 bytes no tensor covers"});
}

TEST_CASE("randomly corrupted safetensors files never crash the reader") {
  const auto good = make_file(good_header, 32);
  std::mt19937 rng{17};
  int refused = 0;
  for (int trial = 0; trial < 400; ++trial) {
    auto bytes = good;
    const int flips = 1 + trial % 4;
    for (int i = 0; i < flips; ++i)
      bytes[std::uniform_int_distribution<std::size_t>{0, bytes.size() - 1}(rng)] =
          static_cast<std::uint8_t>(rng());
    if (trial % 5 == 0)
      bytes.resize(std::uniform_int_distribution<std::size_t>{0, bytes.size()}(rng));
    std::unique_ptr<file> f;
    const auto s = open_bytes("fuzz", bytes, f);
    if (!s) {
      ++refused;
      CHECK(f == nullptr);
      continue;
    }
    // Whatever opened must be self-consistent: every range inside the file.
    for (const auto& t : f->tensors()) CHECK(t.end <= bytes.size());
  }
  CHECK(refused > 100);
}
