#pragma once
// A read-only, memory-mapped safetensors file, validated exactly as the format specifies:
// an 8-byte little-endian header length N, N bytes of UTF-8 JSON (an object mapping each tensor
// name to {"dtype", "shape", "data_offsets": [begin, end]} plus an optional "__metadata__"
// object of strings), then the data buffer. Offsets are relative to the buffer; every tensor's
// byte range must match its dtype and shape, and the ranges must cover the buffer exactly, in
// order, without overlap or holes. Duplicate names are refused. Any violation gives a status
// naming the file, the tensor and the reason; never a crash or an out-of-bounds read.
//
// Part of the optional Hugging Face support (needs nlohmann-json); GGUF never needs it.

#include "kernels/quant/tensor_type.hpp"
#include "kernels/status.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bastion::kernels::safetensors {

struct tensor_entry {
  std::string name;
  std::string dtype;                // as written: "F32", "BF16", "I64", ...
  std::optional<tensor_type> type;  // set for the dtypes the engine executes (F32/F16/BF16)
  std::vector<std::int64_t> shape;  // outermost first
  std::uint64_t begin = 0;          // byte range in the data buffer
  std::uint64_t end = 0;
};

struct open_limits {
  std::uint64_t header_bytes_max = 100u << 20;  // as the reference implementation
  std::uint64_t tensor_count_max = 1u << 20;
  std::size_t dims_max = 8;
};

/// Bytes per element of a safetensors dtype name; nullopt when the name is unknown.
std::optional<std::uint32_t> dtype_size(std::string_view dtype) noexcept;

class file {
 public:
  /// Opens and validates `path`. On failure `out` stays empty and the status says why.
  static status open(const std::string& path, std::unique_ptr<file>& out,
                     const open_limits& limits = {});

  ~file();
  file(const file&) = delete;
  file& operator=(const file&) = delete;

  const std::string& path() const noexcept { return path_; }
  const std::vector<tensor_entry>& tensors() const noexcept { return tensors_; }
  const tensor_entry* find(std::string_view name) const;
  const std::map<std::string, std::string, std::less<>>& metadata() const noexcept {
    return metadata_;
  }
  /// The tensor's bytes inside the mapping (end - begin of them); valid while this file lives.
  /// Not aligned in general: the header length is arbitrary.
  const std::uint8_t* data(const tensor_entry& t) const noexcept { return buffer_ + t.begin; }

 private:
  file() = default;

  std::string path_;
  std::uint64_t size_ = 0;
  void* mapping_ = nullptr;
  const std::uint8_t* buffer_ = nullptr;
  std::vector<tensor_entry> tensors_;
  std::map<std::string, std::size_t, std::less<>> index_;
  std::map<std::string, std::string, std::less<>> metadata_;
};

}  // namespace bastion::kernels::safetensors
