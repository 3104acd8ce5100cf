#pragma once
// A read-only view of a GGUF (v2/v3) model file: metadata, tensor directory and tensor bytes,
// memory-mapped. Every length, count, offset and shape read from the file is checked against
// the file's size and the limits below before it is used, so a truncated, corrupt or hostile
// file gives a status naming the file, the key or tensor, and the reason; never a crash, an
// out-of-bounds read or a huge allocation. Spec: the GGUF format document of ggml.

#include "kernels/quant/tensor_type.hpp"
#include "kernels/status.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace bastion::kernels::gguf {

enum class value_type : std::uint32_t {
  u8 = 0,
  i8 = 1,
  u16 = 2,
  i16 = 3,
  u32 = 4,
  i32 = 5,
  f32 = 6,
  boolean = 7,
  string = 8,
  array = 9,
  u64 = 10,
  i64 = 11,
  f64 = 12,
};

/// One metadata value. Scalars use the field matching their category; arrays fill one of the
/// vectors (integers and booleans go to `ints`, floats to `floats`, strings to `strings`).
struct metadata_value {
  value_type type = value_type::u8;
  value_type array_type = value_type::u8;  // only for arrays
  std::uint64_t u = 0;
  std::int64_t i = 0;
  double f = 0.0;
  std::string s;
  std::vector<std::int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strings;
};

struct tensor_info {
  std::string name;
  tensor_type type = tensor_type::f32;
  std::vector<std::int64_t> dims;  // GGUF order: dims[0] is the innermost (contiguous) one
  std::uint64_t offset = 0;        // from the start of the data section
  std::uint64_t n_elements = 0;
  std::uint64_t n_bytes = 0;
};

struct open_limits {
  std::uint64_t string_bytes_max = std::uint64_t{16} << 20;  // a chat template, a token, a key
  std::uint64_t array_elems_max = std::uint64_t{16} << 20;   // vocabularies are ~150k
  std::uint64_t metadata_kv_max = 65536;
  std::uint64_t tensor_count_max = 1u << 20;
  std::uint32_t dims_max = 4;
};

class file {
 public:
  /// Opens and validates `path`. On failure `out` stays empty and the status says why.
  static status open(const std::string& path, std::unique_ptr<file>& out,
                     const open_limits& limits = {});

  ~file();
  file(const file&) = delete;
  file& operator=(const file&) = delete;

  const std::string& path() const noexcept { return path_; }
  std::uint32_t version() const noexcept { return version_; }
  std::uint64_t alignment() const noexcept { return alignment_; }
  std::uint64_t size_bytes() const noexcept { return size_; }

  const std::map<std::string, metadata_value, std::less<>>& metadata() const noexcept {
    return metadata_;
  }
  const metadata_value* find(std::string_view key) const;

  /// Typed getters: a status naming the key when it is missing or of the wrong type.
  status get_uint(std::string_view key, std::uint64_t& out) const;  // any unsigned/int >= 0
  status get_float(std::string_view key, double& out) const;        // f32/f64 (ints allowed)
  status get_string(std::string_view key, std::string& out) const;
  status get_bool(std::string_view key, bool& out) const;
  status get_strings(std::string_view key, const std::vector<std::string>*& out) const;
  status get_ints(std::string_view key, const std::vector<std::int64_t>*& out) const;

  const std::vector<tensor_info>& tensors() const noexcept { return tensors_; }
  const tensor_info* find_tensor(std::string_view name) const;
  /// The tensor's bytes inside the mapping; valid while this file lives.
  const std::uint8_t* data(const tensor_info& t) const noexcept { return data_ + t.offset; }

 private:
  file() = default;

  std::string path_;
  std::uint32_t version_ = 0;
  std::uint64_t alignment_ = 32;
  std::uint64_t size_ = 0;
  void* mapping_ = nullptr;
  const std::uint8_t* data_ = nullptr;  // start of the tensor data section
  std::map<std::string, metadata_value, std::less<>> metadata_;
  std::vector<tensor_info> tensors_;
  std::map<std::string, std::size_t, std::less<>> tensor_index_;
};

}  // namespace bastion::kernels::gguf
