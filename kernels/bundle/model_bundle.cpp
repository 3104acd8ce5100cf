#include "kernels/bundle/model_bundle.hpp"

#include "kernels/model/gguf_file.hpp"
#include "kernels/model/gguf_loader.hpp"
#include "kernels/tokenizer/gguf_tokenizer.hpp"
#include "kernels/tokenizer/hf_tokenizer_json.hpp"
#ifdef BASTION_HAVE_HF_LOADER
#include "kernels/model/hf/hf_loader.hpp"
#endif

#include <sys/stat.h>
#include <algorithm>

namespace bastion::kernels {
namespace {

bool is_directory(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void add_end_tokens(model_bundle& b) {
  auto& ids = b.end_of_generation_ids;
  ids = b.weights.end_of_generation_ids;
  for (std::size_t id = 0; id < b.tok->size(); ++id) {
    const auto t = static_cast<tokenizer::token_id>(id);
    if (b.tok->is_end_of_generation(t) && std::find(ids.begin(), ids.end(), t) == ids.end())
      ids.push_back(t);
  }
  std::sort(ids.begin(), ids.end());
}

status load_gguf_bundle(const std::string& path, model_bundle& out) {
  std::unique_ptr<gguf::file> f;
  if (auto s = gguf::file::open(path, f); !s) return s;
  std::shared_ptr<const gguf::file> shared{std::move(f)};
  if (auto s = tokenizer::load_gguf_tokenizer(*shared, out.tok); !s) return s;
  std::string tmpl;
  if (shared->get_string("tokenizer.chat_template", tmpl)) {
    tokenizer::chat_template t;
    std::string bos_text;
    if (out.tok->bos()) bos_text = std::string{out.tok->token_text(*out.tok->bos())};
    if (auto s = tokenizer::chat_template::from_template(tmpl, bos_text, t); !s)
      return {s.code(), path + ": chat template: " + s.message()};
    out.chat = std::move(t);
  }
  return load_gguf_model(shared, out.weights);
}

status load_hf_bundle(const std::string& dir, model_bundle& out) {
#ifdef BASTION_HAVE_HF_LOADER
  if (auto s = load_hf_model(dir, out.weights); !s) return s;
  tokenizer::tokenizer_spec spec;
  if (auto s = tokenizer::spec_from_tokenizer_json_file(dir + "/tokenizer.json", spec); !s)
    return s;
  if (auto s = tokenizer::bpe_tokenizer::create(std::move(spec), out.tok); !s)
    return {s.code(), dir + "/tokenizer.json: " + s.message()};
  out.chat = tokenizer::chat_template::chatml();
  return status::ok();
#else
  return {status_code::unsupported,
          dir + ": Hugging Face folders need the build's nlohmann-json support"};
#endif
}

}  // namespace

status load_model_bundle(const std::string& path, model_bundle& out) {
  out = model_bundle{};
  out.source = path;
  auto s = is_directory(path) ? load_hf_bundle(path, out) : load_gguf_bundle(path, out);
  if (!s) return s;
  if (out.tok->size() > static_cast<std::size_t>(out.weights.config.vocab))
    return {status_code::invalid_argument, path + ": the tokenizer has " +
                                               std::to_string(out.tok->size()) +
                                               " tokens but the model's vocabulary is " +
                                               std::to_string(out.weights.config.vocab)};
  add_end_tokens(out);
  return status::ok();
}

status encode_prompt(const model_bundle& b, const std::string& text,
                     std::vector<std::int32_t>& out) {
  return b.tok->encode(text, b.tok->add_bos_by_default(), true, out);
}

status encode_chat(const model_bundle& b, const std::vector<tokenizer::chat_message>& messages,
                   std::vector<std::int32_t>& out) {
  const auto tmpl = b.chat ? *b.chat : tokenizer::chat_template::chatml();
  const auto prompt = tmpl.render(messages, true);
  return b.tok->encode_with_control_ranges(prompt.text, b.tok->add_bos_by_default(),
                                           prompt.template_ranges, out);
}

detokenize_fn make_detokenizer(const model_bundle& b) {
  const tokenizer::bpe_tokenizer* tok = b.tok.get();
  return [tok](const std::vector<std::int32_t>& ids) {
    std::string text;
    if (!tok->decode(ids, text, false)) text.clear();
    return text;
  };
}

}  // namespace bastion::kernels
