#pragma once
// Embedding lookup on the device: row ids[i] of a table in any stored type, as F32.

#include "kernels/backend.hpp"

#include <cuda_runtime.h>

#include <cstdint>

namespace bastion::kernels::cuda {

/// out[i] = row ids[i] of `table` as F32 ([n x table.cols]); table data, ids and out are device
/// pointers. An id outside [0, table.rows) sets error_embed_id in *error_word (device) and
/// zeroes its row, since the ids are not readable from the host.
status embed_rows(const weight_view& table, const std::int32_t* ids, std::int64_t n, float* out,
                  unsigned* error_word, cudaStream_t stream);

}  // namespace bastion::kernels::cuda
