#pragma once
// A rank's collective handle that forwards to another one: the base of the tests' handles that
// change one behaviour (hang in the all-reduce, claim to be capturable, be borrowed by a worker
// that must not own the group) and leave the rest to the real rank.

#include "kernels/engine/collective.hpp"

namespace bastion::test {

class forwarding_collective : public kernels::collective {
 public:
  explicit forwarding_collective(kernels::collective& inner) : inner_(inner) {}
  int ranks() const noexcept override { return inner_.ranks(); }
  int rank() const noexcept override { return inner_.rank(); }
  kernels::status all_reduce_sum(float* data, std::int64_t n) override {
    return inner_.all_reduce_sum(data, n);
  }
  void abort() noexcept override { inner_.abort(); }
  kernels::status async_error() noexcept override { return inner_.async_error(); }
  bool capturable() const noexcept override { return inner_.capturable(); }

 protected:
  kernels::collective& inner_;
};

}  // namespace bastion::test
