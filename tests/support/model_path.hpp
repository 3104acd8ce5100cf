#pragma once
// Where the real test model lives: scripts/fetch-model puts SmolLM2-135M-Instruct (Q4_1 GGUF)
// in ${BASTION_MODEL_CACHE:-$HOME/.cache/bastion/models}. Tests that need it skip (exit 77)
// with this path in their message when it is absent.

#include <sys/stat.h>
#include <cstdlib>
#include <string>

namespace bastion::test {

inline std::string model_cache_dir() {
  if (const char* dir = std::getenv("BASTION_MODEL_CACHE"); dir && *dir) return dir;
  const char* home = std::getenv("HOME");
  return std::string{home ? home : "/root"} + "/.cache/bastion/models";
}

inline std::string smollm2_path() { return model_cache_dir() + "/SmolLM2-135M-Instruct.Q4_1.gguf"; }

inline bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace bastion::test
