#pragma once
// Writes GGUF v3 files: for test fixtures (valid files to corrupt on purpose) and for the small
// models the GPU check carries (the first layers of a real model). Metadata keeps insertion
// order; tensor data is aligned to general.alignment (32 unless set).

#include "kernels/model/gguf_file.hpp"

#include <string>
#include <utility>
#include <vector>

namespace bastion::kernels::gguf {

class writer {
 public:
  void set_u32(const std::string& key, std::uint32_t v);
  void set_u64(const std::string& key, std::uint64_t v);
  void set_i32(const std::string& key, std::int32_t v);
  void set_f32(const std::string& key, float v);
  void set_bool(const std::string& key, bool v);
  void set_string(const std::string& key, std::string v);
  void set_strings(const std::string& key, std::vector<std::string> v);
  void set_i32s(const std::string& key, const std::vector<std::int32_t>& v);
  void set_f32s(const std::string& key, const std::vector<float>& v);
  /// Copies a metadata entry read from another file unchanged.
  void copy_value(const std::string& key, const metadata_value& v);

  /// `dims` in GGUF order (innermost first); `bytes` must be row_bytes(type, product(dims)).
  status add_tensor(const std::string& name, tensor_type type, std::vector<std::int64_t> dims,
                    std::vector<std::uint8_t> bytes);

  /// Writes the file (to a temporary name, then renamed into place).
  status write(const std::string& path) const;

 private:
  void set(const std::string& key, metadata_value v);
  struct pending_tensor {
    std::string name;
    tensor_type type;
    std::vector<std::int64_t> dims;
    std::vector<std::uint8_t> bytes;
  };
  std::vector<std::pair<std::string, metadata_value>> metadata_;
  std::vector<pending_tensor> tensors_;
};

}  // namespace bastion::kernels::gguf
