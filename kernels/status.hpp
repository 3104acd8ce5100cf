#pragma once
// Results of kernel operations. kernels/ depends on nothing of ours (and not on CAF), so it
// has its own small status type; the worker turns a failed status into an actor error.

#include <cstring>
#include <string>
#include <utility>

namespace bastion::kernels {

enum class status_code {
  ok = 0,
  invalid_argument,  // shapes or pointers that cannot be right
  unsupported,       // the backend lacks this operation or type
  out_of_memory,
  device_error,  // a CUDA / cuBLAS / NCCL call failed; the message names it
};

class [[nodiscard]] status {
 public:
  status() = default;
  status(status_code code, std::string message) : code_(code), message_(std::move(message)) {}

  static status ok() { return {}; }
  bool is_ok() const noexcept { return code_ == status_code::ok; }
  explicit operator bool() const noexcept { return is_ok(); }
  status_code code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }

 private:
  status_code code_ = status_code::ok;
  std::string message_;
};

/// Thread-safe text of an errno value (std::strerror shares one buffer between threads).
inline std::string errno_message(int err) {
  char buf[256];
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
  return ::strerror_r(err, buf, sizeof buf);  // GNU variant: returns the message pointer
#else
  return ::strerror_r(err, buf, sizeof buf) == 0 ? std::string{buf}
                                                 : "errno " + std::to_string(err);
#endif
}

}  // namespace bastion::kernels
