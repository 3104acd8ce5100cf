#include "kernels/model/hf/hf_loader.hpp"

#include "kernels/model/hf/safetensors_file.hpp"
#include "kernels/model/model_builder.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

namespace bastion::kernels {
namespace {

using json = nlohmann::json;

constexpr std::uint64_t json_file_bytes_max = 64u << 20;  // configs and shard indexes are small

status read_json(const std::string& path, json& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {status_code::invalid_argument, path + ": cannot open"};
  in.seekg(0, std::ios::end);
  const auto size = static_cast<std::uint64_t>(in.tellg());
  if (size > json_file_bytes_max)
    return {status_code::invalid_argument,
            path + ": " + std::to_string(size) + " bytes is too large for a JSON file"};
  in.seekg(0);
  std::string text(static_cast<std::size_t>(size), '\0');
  in.read(text.data(), static_cast<std::streamsize>(size));
  out = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (out.is_discarded()) return {status_code::invalid_argument, path + ": not valid JSON"};
  if (!out.is_object()) return {status_code::invalid_argument, path + ": not a JSON object"};
  return status::ok();
}

class config_reader {
 public:
  config_reader(const json& j, const std::string& path) : j_(j), path_(path) {}

  status integer(const char* key, std::int64_t& out, std::optional<std::int64_t> fallback) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) {
      if (!fallback) return bad(key, "is missing");
      out = *fallback;
      return status::ok();
    }
    if (!it->is_number_unsigned() || it->get<std::uint64_t>() > (std::uint64_t{1} << 40))
      return bad(key, "is not a non-negative integer of sane size");
    out = static_cast<std::int64_t>(it->get<std::uint64_t>());
    return status::ok();
  }
  status number(const char* key, float& out, std::optional<float> fallback) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) {
      if (!fallback) return bad(key, "is missing");
      out = *fallback;
      return status::ok();
    }
    if (!it->is_number()) return bad(key, "is not a number");
    out = it->get<float>();
    return status::ok();
  }
  status boolean(const char* key, bool& out, bool fallback) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) {
      out = fallback;
      return status::ok();
    }
    if (!it->is_boolean()) return bad(key, "is not true or false");
    out = it->get<bool>();
    return status::ok();
  }
  status bad(const std::string& key, const std::string& why) const {
    return {status_code::invalid_argument, path_ + ": '" + key + "' " + why};
  }
  status unsupported(const std::string& key, const std::string& why) const {
    return {status_code::unsupported, path_ + ": '" + key + "' " + why};
  }

 private:
  const json& j_;
  const std::string& path_;
};

status read_config(const json& j, const std::string& path, model_config& c,
                   std::vector<std::int32_t>& eog) {
  const config_reader r{j, path};
  const auto type = j.find("model_type");
  if (type == j.end() || !type->is_string()) return r.bad("model_type", "is missing");
  const std::string t = type->get<std::string>();
  if (t == "llama") {
    c.arch = architecture::llama;
    bool attention_bias = false;
    if (auto s = r.boolean("attention_bias", attention_bias, false); !s) return s;
    // Llama's attention_bias also adds an output-projection bias, which we do not run.
    if (attention_bias) return r.unsupported("attention_bias", "= true is not supported");
    c.qkv_bias = false;
  } else if (t == "qwen2") {
    c.arch = architecture::qwen2;
    c.qkv_bias = true;
    bool sliding = false;
    if (auto s = r.boolean("use_sliding_window", sliding, false); !s) return s;
    if (sliding) return r.unsupported("use_sliding_window", "= true is not supported");
  } else {
    return r.unsupported("model_type", "'" + t + "' is not supported (llama, qwen2)");
  }
  c.rope.style = rope_style::half_split;  // transformers' rotate_half, for both
  for (const auto& s : {r.integer("num_hidden_layers", c.n_layers, std::nullopt),
                        r.integer("hidden_size", c.dim, std::nullopt),
                        r.integer("intermediate_size", c.ffn_dim, std::nullopt),
                        r.integer("num_attention_heads", c.n_heads, std::nullopt),
                        r.integer("vocab_size", c.vocab, std::nullopt),
                        r.integer("max_position_embeddings", c.context, std::nullopt)})
    if (!s) return s;
  if (c.n_heads <= 0) return r.bad("num_attention_heads", "is 0");
  for (const auto& s :
       {r.integer("num_key_value_heads", c.n_kv_heads, c.n_heads),
        r.integer("head_dim", c.head_dim, c.dim / c.n_heads),
        r.number("rms_norm_eps", c.rms_eps, 1e-6f), r.number("rope_theta", c.rope.base, 10000.0f),
        r.boolean("tie_word_embeddings", c.tied_output, false)})
    if (!s) return s;
  c.rope.rot_dim = c.head_dim;
  if (auto it = j.find("rope_scaling"); it != j.end() && !it->is_null())
    return r.unsupported("rope_scaling", "is set; RoPE scaling is not supported yet");
  // transformers 5 writes RoPE settings under "rope_parameters" instead of the top level.
  if (auto it = j.find("rope_parameters"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return r.bad("rope_parameters", "is not an object");
    const auto rope_type = it->find("rope_type");
    if (rope_type != it->end() && *rope_type != "default")
      return r.unsupported("rope_parameters", "rope_type must be \"default\"");
    const config_reader rp{*it, path};
    if (auto s = rp.number("rope_theta", c.rope.base, c.rope.base); !s)
      return r.bad("rope_parameters.rope_theta", "is not a number");
    for (const auto& item : it->items())
      if (item.key() != "rope_type" && item.key() != "rope_theta")
        return r.unsupported("rope_parameters." + item.key(), "is not supported");
  }
  if (auto it = j.find("hidden_act"); it != j.end() && *it != "silu")
    return r.unsupported("hidden_act", "must be \"silu\"");
  if (auto it = j.find("eos_token_id"); it != j.end()) {
    const json ids = it->is_array() ? *it : json::array({*it});
    for (const auto& id : ids)
      if (id.is_number_unsigned() && id.get<std::uint64_t>() < static_cast<std::uint64_t>(c.vocab))
        eog.push_back(static_cast<std::int32_t>(id.get<std::uint64_t>()));
  }
  if (auto s = c.validate(); !s) return {s.code(), path + ": " + s.message()};
  return status::ok();
}

// A shard's file name from the index must name a file in the folder, nothing elsewhere.
bool plain_file_name(const std::string& name) {
  return !name.empty() && name.size() < 256 && name.find('/') == std::string::npos &&
         name.find('\\') == std::string::npos && name.front() != '.' &&
         name.find('\0') == std::string::npos;
}

}  // namespace

status load_hf_model(const std::string& folder, model& out) {
  model m;
  m.source = folder;
  const std::string config_path = folder + "/config.json";
  json config;
  if (auto s = read_json(config_path, config); !s) return s;
  if (auto s = read_config(config, config_path, m.config, m.end_of_generation_ids); !s) return s;

  // Which files hold the weights: one model.safetensors, or the shards of an index.
  std::vector<std::string> files;
  std::map<std::string, std::string> expected_file;  // tensor -> shard, from the index
  const std::string index_path = folder + "/model.safetensors.index.json";
  if (std::ifstream(index_path).good()) {
    json index;
    if (auto s = read_json(index_path, index); !s) return s;
    const auto map = index.find("weight_map");
    if (map == index.end() || !map->is_object())
      return {status_code::invalid_argument, index_path + ": 'weight_map' is missing"};
    for (const auto& item : map->items()) {
      if (!item.value().is_string() || !plain_file_name(item.value().get<std::string>()))
        return {status_code::invalid_argument,
                index_path + ": tensor '" + item.key() + "' maps to an invalid file name"};
      expected_file[item.key()] = item.value().get<std::string>();
      files.push_back(item.value().get<std::string>());
    }
    std::sort(files.begin(), files.end());
    files.erase(std::unique(files.begin(), files.end()), files.end());
    if (files.empty()) return {status_code::invalid_argument, index_path + ": no shards listed"};
  } else {
    files.push_back("model.safetensors");
  }

  std::map<std::string, stored_tensor, std::less<>> tensors;
  for (const auto& name : files) {
    const std::string path = folder + "/" + name;
    std::unique_ptr<safetensors::file> f;
    if (auto s = safetensors::file::open(path, f); !s) return s;
    for (const auto& t : f->tensors()) {
      if (!expected_file.empty()) {
        auto it = expected_file.find(t.name);
        if (it == expected_file.end() || it->second != name) continue;  // not this shard's
      }
      stored_tensor st;
      st.shape = t.shape;
      st.data = f->data(t);
      st.file = path;
      if (t.type)
        st.type = *t.type;
      else
        st.unsupported_dtype = t.dtype;
      if (!tensors.emplace(t.name, std::move(st)).second)
        return {status_code::invalid_argument,
                path + ": tensor '" + t.name + "' appears in two files"};
    }
    m.storage.push_back(std::shared_ptr<const safetensors::file>(std::move(f)));
  }
  for (const auto& [name, file] : expected_file)
    if (!tensors.count(name))
      return {status_code::invalid_argument,
              folder + "/" + file + ": tensor '" + name + "', listed in the index, is missing"};

  const tensor_lookup lookup = [&](const std::string& name) -> const stored_tensor* {
    auto it = tensors.find(name);
    return it == tensors.end() ? nullptr : &it->second;
  };
  if (auto s = build_weights(m.config, hugging_face_naming(), lookup, folder, m.weights); !s)
    return s;
  out = std::move(m);
  return status::ok();
}

}  // namespace bastion::kernels
