#pragma once
// Every CUDA runtime and cuBLAS call goes through these macros (STYLE.md 6). A failure
// becomes a kernels::status naming the call, the file and the line; nothing aborts the node.
// REQUIRES: used inside a function returning bastion::kernels::status.

#include "kernels/status.hpp"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

namespace bastion::kernels::cuda {

inline status cuda_failure(cudaError_t err, const char* call, const char* file, int line) {
  return {err == cudaErrorMemoryAllocation ? status_code::out_of_memory : status_code::device_error,
          std::string{call} + " failed: " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) +
              ") at " + file + ":" + std::to_string(line)};
}

inline status cublas_failure(cublasStatus_t err, const char* call, const char* file, int line) {
  return {
      err == CUBLAS_STATUS_ALLOC_FAILED ? status_code::out_of_memory : status_code::device_error,
      std::string{call} + " failed: " + cublasGetStatusName(err) + " (" +
          cublasGetStatusString(err) + ") at " + file + ":" + std::to_string(line)};
}

}  // namespace bastion::kernels::cuda

#define BASTION_CUDA_CHECK(call)                                                              \
  do {                                                                                        \
    cudaError_t bastion_err_ = (call);                                                        \
    if (bastion_err_ != cudaSuccess)                                                          \
      return ::bastion::kernels::cuda::cuda_failure(bastion_err_, #call, __FILE__, __LINE__); \
  } while (0)

#define BASTION_CUBLAS_CHECK(call)                                                              \
  do {                                                                                          \
    cublasStatus_t bastion_err_ = (call);                                                       \
    if (bastion_err_ != CUBLAS_STATUS_SUCCESS)                                                  \
      return ::bastion::kernels::cuda::cublas_failure(bastion_err_, #call, __FILE__, __LINE__); \
  } while (0)
