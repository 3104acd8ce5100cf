#include "kernels/model/gguf_loader.hpp"

#include "kernels/model/model_builder.hpp"

#include <algorithm>
#include <map>

namespace bastion::kernels {
namespace {

// Texts that end a turn in the chat templates we know (ChatML, Llama 3, GPT-2 style).
constexpr std::string_view end_of_generation_texts[] = {"<|im_end|>", "<|endoftext|>", "<|eot_id|>",
                                                        "<|end_of_text|>"};

status read_config(const gguf::file& f, model_config& c) {
  std::string arch;
  if (auto s = f.get_string("general.architecture", arch); !s) return s;
  if (arch == "llama") {
    c.arch = architecture::llama;
    c.rope.style = rope_style::adjacent_pairs;
    c.qkv_bias = false;
  } else if (arch == "qwen2") {
    c.arch = architecture::qwen2;
    c.rope.style = rope_style::half_split;
    c.qkv_bias = true;
  } else {
    return {status_code::unsupported,
            f.path() + ": architecture '" + arch + "' is not supported (llama, qwen2)"};
  }
  const std::string p = arch + ".";
  auto get_int = [&](const std::string& key, std::int64_t& out, bool required,
                     std::int64_t fallback) -> status {
    std::uint64_t v = 0;
    if (!f.find(key)) {
      if (required) return f.get_uint(key, v);  // the getter's message names the missing key
      out = fallback;
      return status::ok();
    }
    if (auto s = f.get_uint(key, v); !s) return s;
    if (v > (std::uint64_t{1} << 40))
      return {status_code::invalid_argument,
              f.path() + ": metadata '" + key + "' = " + std::to_string(v) + " is absurd"};
    out = static_cast<std::int64_t>(v);
    return status::ok();
  };
  for (const auto& s : {get_int(p + "block_count", c.n_layers, true, 0),
                        get_int(p + "embedding_length", c.dim, true, 0),
                        get_int(p + "feed_forward_length", c.ffn_dim, true, 0),
                        get_int(p + "attention.head_count", c.n_heads, true, 0),
                        get_int(p + "context_length", c.context, true, 0)})
    if (!s) return s;
  if (c.n_heads <= 0)
    return {status_code::invalid_argument, f.path() + ": " + p + "attention.head_count is 0"};
  for (const auto& s : {get_int(p + "attention.head_count_kv", c.n_kv_heads, false, c.n_heads),
                        get_int(p + "attention.key_length", c.head_dim, false, c.dim / c.n_heads)})
    if (!s) return s;
  if (auto s = get_int(p + "rope.dimension_count", c.rope.rot_dim, false, c.head_dim); !s) return s;
  double eps = 0.0, base = 10000.0;
  if (auto s = f.get_float(p + "attention.layer_norm_rms_epsilon", eps); !s) return s;
  if (f.find(p + "rope.freq_base"))
    if (auto s = f.get_float(p + "rope.freq_base", base); !s) return s;
  c.rms_eps = static_cast<float>(eps);
  c.rope.base = static_cast<float>(base);
  std::string scaling;
  if (f.find(p + "rope.scaling.type") && f.get_string(p + "rope.scaling.type", scaling) &&
      scaling != "none")
    return {status_code::unsupported,
            f.path() + ": RoPE scaling '" + scaling + "' is not supported yet"};
  if (f.find_tensor("rope_freqs.weight"))
    return {status_code::unsupported,
            f.path() + ": per-dimension RoPE frequencies (rope_freqs.weight) are not supported"};
  // The vocabulary size: metadata when present, else the embedding table's rows.
  const auto* emb = f.find_tensor("token_embd.weight");
  if (!emb || emb->dims.size() != 2)
    return {status_code::invalid_argument,
            f.path() + ": tensor 'token_embd.weight' is missing or not 2-D"};
  if (auto s = get_int(p + "vocab_size", c.vocab, false, emb->dims[1]); !s) return s;
  c.tied_output = f.find_tensor("output.weight") == nullptr;
  return c.validate();
}

}  // namespace

status load_gguf_model(const std::string& path, model& out) {
  std::unique_ptr<gguf::file> f;
  if (auto s = gguf::file::open(path, f); !s) return s;
  return load_gguf_model(std::shared_ptr<const gguf::file>(std::move(f)), out);
}

status load_gguf_model(std::shared_ptr<const gguf::file> file, model& out) {
  const gguf::file& f = *file;
  model m;
  m.source = f.path();
  if (auto s = read_config(f, m.config); !s) {
    if (s.message().rfind(f.path(), 0) == 0) return s;
    return {s.code(), f.path() + ": " + s.message()};
  }
  // GGUF dims are innermost first; the builder wants outermost first.
  std::map<std::string, stored_tensor, std::less<>> tensors;
  for (const auto& t : f.tensors()) {
    stored_tensor st;
    st.type = t.type;
    st.shape.assign(t.dims.rbegin(), t.dims.rend());
    st.data = f.data(t);
    st.file = f.path();
    tensors.emplace(t.name, std::move(st));
  }
  const tensor_lookup lookup = [&](const std::string& name) -> const stored_tensor* {
    auto it = tensors.find(name);
    return it == tensors.end() ? nullptr : &it->second;
  };
  if (auto s = build_weights(m.config, gguf_naming(), lookup, f.path(), m.weights); !s) return s;

  const std::vector<std::string>* texts = nullptr;
  if (f.find("tokenizer.ggml.tokens") && f.get_strings("tokenizer.ggml.tokens", texts)) {
    m.token_texts = *texts;
    for (std::size_t i = 0; i < texts->size(); ++i)
      for (auto eog : end_of_generation_texts)
        if ((*texts)[i] == eog) m.end_of_generation_ids.push_back(static_cast<std::int32_t>(i));
  }
  for (const char* key : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"}) {
    std::uint64_t id = 0;
    if (f.find(key) && f.get_uint(key, id) && id < static_cast<std::uint64_t>(m.config.vocab))
      m.end_of_generation_ids.push_back(static_cast<std::int32_t>(id));
  }
  std::sort(m.end_of_generation_ids.begin(), m.end_of_generation_ids.end());
  m.end_of_generation_ids.erase(
      std::unique(m.end_of_generation_ids.begin(), m.end_of_generation_ids.end()),
      m.end_of_generation_ids.end());
  m.storage.push_back(std::move(file));
  out = std::move(m);
  return status::ok();
}

}  // namespace bastion::kernels
