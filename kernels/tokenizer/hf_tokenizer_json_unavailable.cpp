// The tokenizer.json loader when nlohmann_json was not found at configure time.

#include "kernels/tokenizer/hf_tokenizer_json.hpp"

namespace bastion::kernels::tokenizer {

static status unavailable() {
  return {status_code::unsupported,
          "tokenizer.json support was not built (nlohmann_json was not found); use the GGUF "
          "metadata instead"};
}

status spec_from_tokenizer_json(std::string_view, tokenizer_spec&, const tokenizer_limits&) {
  return unavailable();
}

status spec_from_tokenizer_json_file(const std::string&, tokenizer_spec&, std::size_t,
                                     const tokenizer_limits&) {
  return unavailable();
}

bool tokenizer_json_supported() noexcept { return false; }

}  // namespace bastion::kernels::tokenizer
