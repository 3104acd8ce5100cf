#pragma once
// A model's weights where a backend's operations can read them. For a host backend these are
// the model's own views, except the projection matrices the backend reads faster in another
// layout (backend::repack_weight: the CPU backend's eight-row copies for its int8 numerics),
// which are copied once into one arena; for a device backend every tensor is uploaded once
// into one arena of device memory, so a step reads no host memory. The tied output projection
// shares the embedding's copy on a device.

#include "kernels/backend.hpp"
#include "kernels/engine/backend_buffer.hpp"
#include "kernels/model/model.hpp"

#include <cstdint>
#include <vector>

namespace bastion::kernels {

struct resident_layer {
  const float* attn_norm = nullptr;
  weight_view wq, wk, wv;
  const float* bq = nullptr;  // null unless config.qkv_bias
  const float* bk = nullptr;
  const float* bv = nullptr;
  weight_view wo;
  const float* ffn_norm = nullptr;
  weight_view w_gate, w_up, w_down;
};

struct resident_weights {
  weight_view token_embd;
  std::vector<resident_layer> layers;
  const float* output_norm = nullptr;
  weight_view output;
  /// Bytes of weight matrices one decode token reads (every layer's projections and the
  /// output projection; the embedding reads one row): the memory-bandwidth bound of decode.
  std::uint64_t matrix_bytes_per_token = 0;
  /// Arena holding the copies (device copies, or a host backend's repacked matrices); empty
  /// when nothing was copied.
  backend_buffer arena;

  /// Makes the weights of `m` resident on `be`. REQUIRES: `m` and `be` outlive `out`.
  static status make(const model& m, backend& be, resident_weights& out);
};

}  // namespace bastion::kernels
