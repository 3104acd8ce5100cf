#pragma once
// The collective (kernels/engine/collective.hpp) across the GPUs of one node with NCCL: one
// communicator rank per CUDA backend, the all-reduce queued on that backend's stream so it
// orders with the decoder's kernels. Built when NCCL is found (BASTION_HAVE_NCCL).
//
// One process per GPU, or one thread per GPU: rank 0 makes the id (make_nccl_id) and hands
// it to every rank (a file, a socket, an actor message); each rank then calls create with its
// own backend. A one-GPU machine cannot run two ranks: NCCL refuses two ranks on one device.

#include "kernels/backend.hpp"
#include "kernels/engine/collective.hpp"

#include <array>
#include <memory>
#include <vector>

namespace bastion::kernels::cuda {

/// NCCL's unique id, as bytes (ncclUniqueId is 128 bytes), so callers need no NCCL header.
using nccl_id = std::array<char, 128>;

/// A fresh id for a new communicator (rank 0 calls it once).
status make_nccl_id(nccl_id& out);

/// Joins rank `rank` of `ranks` on the device of `be` (a CUDA backend). Blocks until every
/// rank has joined (NCCL's ncclCommInitRank).
status make_nccl_collective(backend& be, int rank, int ranks, const nccl_id& id,
                            std::unique_ptr<collective>& out);

/// One process driving every GPU of a group (a tensor-parallel worker): rank r on backends[r],
/// made together (ncclCommInitAll), so no rank waits for another thread to join. Each backend
/// must be a CUDA backend on its own device. out[r] is rank r's handle.
status make_nccl_group(const std::vector<backend*>& backends,
                       std::vector<std::unique_ptr<collective>>& out);

}  // namespace bastion::kernels::cuda
