#pragma once
// Tiny random llama/qwen2 models for the engine's tests: weights in the Hugging Face layout,
// writers for the GGUF form (Q/K rows permuted for llama, as llama.cpp's converter does) and
// the Hugging Face form (config.json + safetensors), and an independent dense reference
// forward pass in double precision written straight from the architecture's definition.

#include "kernels/model/gguf_writer.hpp"
#include "tests/support/numeric.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace bastion::test {

struct tiny_spec {
  std::string arch = "llama";  // or "qwen2" (Q/K/V biases)
  std::int64_t n_layers = 2, dim = 64, n_heads = 4, n_kv_heads = 2, head_dim = 16, ffn = 96;
  std::int64_t vocab = 96, context = 64;
  float rope_base = 10000.0f, eps = 1e-5f;
  bool tied = false;
};

struct named_tensor {
  std::string name;                 // Hugging Face name
  std::vector<std::int64_t> shape;  // outermost first
  std::vector<float> values;
};

inline std::vector<named_tensor> random_hf_weights(const tiny_spec& s, std::uint32_t seed) {
  std::mt19937 rng{seed};
  std::normal_distribution<float> normal{0.0f, 1.0f};
  std::vector<named_tensor> out;
  auto add = [&](const std::string& name, std::vector<std::int64_t> shape, float sd, float mean) {
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    named_tensor t{name, shape, std::vector<float>(static_cast<std::size_t>(n))};
    for (auto& v : t.values) v = mean + sd * normal(rng);
    out.push_back(std::move(t));
  };
  const std::int64_t q = s.n_heads * s.head_dim, kv = s.n_kv_heads * s.head_dim;
  add("model.embed_tokens.weight", {s.vocab, s.dim}, 1.0f, 0.0f);
  for (std::int64_t l = 0; l < s.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {s.dim}, 0.1f, 1.0f);
    add(p + "self_attn.q_proj.weight", {q, s.dim}, 0.15f, 0.0f);
    add(p + "self_attn.k_proj.weight", {kv, s.dim}, 0.15f, 0.0f);
    add(p + "self_attn.v_proj.weight", {kv, s.dim}, 0.15f, 0.0f);
    if (s.arch == "qwen2") {
      add(p + "self_attn.q_proj.bias", {q}, 0.2f, 0.0f);
      add(p + "self_attn.k_proj.bias", {kv}, 0.2f, 0.0f);
      add(p + "self_attn.v_proj.bias", {kv}, 0.2f, 0.0f);
    }
    add(p + "self_attn.o_proj.weight", {s.dim, q}, 0.15f, 0.0f);
    add(p + "post_attention_layernorm.weight", {s.dim}, 0.1f, 1.0f);
    add(p + "mlp.gate_proj.weight", {s.ffn, s.dim}, 0.15f, 0.0f);
    add(p + "mlp.up_proj.weight", {s.ffn, s.dim}, 0.15f, 0.0f);
    add(p + "mlp.down_proj.weight", {s.dim, s.ffn}, 0.15f, 0.0f);
  }
  add("model.norm.weight", {s.dim}, 0.1f, 1.0f);
  if (!s.tied) add("lm_head.weight", {s.vocab, s.dim}, 0.2f, 0.0f);
  return out;
}

inline const named_tensor& find(const std::vector<named_tensor>& w, const std::string& name) {
  for (const auto& t : w)
    if (t.name == name) return t;
  throw std::runtime_error("tiny model: no tensor " + name);
}

// llama.cpp's converter reorders each head's rows of q_proj/k_proj from (i, i + d/2) pairs to
// (2i, 2i + 1) pairs: new row h*d + 2i + j is old row h*d + j*d/2 + i.
inline std::vector<float> permute_for_adjacent_rope(const named_tensor& t, std::int64_t heads) {
  const std::int64_t rows = t.shape[0], cols = t.shape[1], d = rows / heads;
  std::vector<float> out(t.values.size());
  for (std::int64_t h = 0; h < heads; ++h)
    for (std::int64_t i = 0; i < d / 2; ++i)
      for (std::int64_t j = 0; j < 2; ++j) {
        const std::int64_t to = h * d + 2 * i + j, from = h * d + j * (d / 2) + i;
        std::memcpy(&out[static_cast<std::size_t>(to * cols)],
                    &t.values[static_cast<std::size_t>(from * cols)],
                    static_cast<std::size_t>(cols) * sizeof(float));
      }
  return out;
}

// Q8_0 blocks from floats: scale = max|x| / 127, round to nearest.
inline std::vector<std::uint8_t> quantize_q8_0(const std::vector<float>& v) {
  std::vector<std::uint8_t> out;
  for (std::size_t b = 0; b < v.size() / 32; ++b) {
    float amax = 0.0f;
    for (std::size_t j = 0; j < 32; ++j) amax = std::max(amax, std::abs(v[b * 32 + j]));
    const float d = amax / 127.0f;
    const std::uint16_t h = kernels::float_to_half(d);
    out.push_back(static_cast<std::uint8_t>(h & 0xff));
    out.push_back(static_cast<std::uint8_t>(h >> 8));
    for (std::size_t j = 0; j < 32; ++j)
      out.push_back(static_cast<std::uint8_t>(
          static_cast<std::int8_t>(d == 0.0f ? 0.0f : std::nearbyint(v[b * 32 + j] / d))));
  }
  return out;
}

inline std::vector<std::uint8_t> encode(kernels::tensor_type type, const std::vector<float>& v) {
  std::vector<std::uint8_t> out;
  switch (type) {
    case kernels::tensor_type::f32:
      out.resize(v.size() * 4);
      std::memcpy(out.data(), v.data(), out.size());
      return out;
    case kernels::tensor_type::f16:
    case kernels::tensor_type::bf16:
      for (float x : v) {
        const std::uint16_t h = type == kernels::tensor_type::f16 ? kernels::float_to_half(x)
                                                                  : kernels::float_to_bf16(x);
        out.push_back(static_cast<std::uint8_t>(h & 0xff));
        out.push_back(static_cast<std::uint8_t>(h >> 8));
      }
      return out;
    case kernels::tensor_type::q8_0:
      return quantize_q8_0(v);
    default:
      throw std::runtime_error("tiny model: cannot encode this type");
  }
}

/// The GGUF form of the model: llama.cpp names, dims innermost first, Q/K permuted for llama.
inline kernels::status write_gguf(const tiny_spec& s, const std::vector<named_tensor>& w,
                                  kernels::tensor_type matrix_type, const std::string& path) {
  kernels::gguf::writer g;
  const std::string a = s.arch;
  g.set_string("general.architecture", a);
  g.set_u32(a + ".block_count", static_cast<std::uint32_t>(s.n_layers));
  g.set_u32(a + ".embedding_length", static_cast<std::uint32_t>(s.dim));
  g.set_u32(a + ".feed_forward_length", static_cast<std::uint32_t>(s.ffn));
  g.set_u32(a + ".attention.head_count", static_cast<std::uint32_t>(s.n_heads));
  g.set_u32(a + ".attention.head_count_kv", static_cast<std::uint32_t>(s.n_kv_heads));
  g.set_u32(a + ".context_length", static_cast<std::uint32_t>(s.context));
  g.set_u32(a + ".rope.dimension_count", static_cast<std::uint32_t>(s.head_dim));
  g.set_f32(a + ".rope.freq_base", s.rope_base);
  g.set_f32(a + ".attention.layer_norm_rms_epsilon", s.eps);
  std::vector<std::string> tokens;
  for (std::int64_t i = 0; i < s.vocab; ++i) tokens.push_back("t" + std::to_string(i));
  tokens[3] = "<|im_end|>";
  g.set_strings("tokenizer.ggml.tokens", tokens);
  g.set_u32("tokenizer.ggml.eos_token_id", 1);
  auto put = [&](const std::string& name, const named_tensor& t, std::vector<float> values) {
    const bool matrix = t.shape.size() == 2;
    const auto type = matrix ? matrix_type : kernels::tensor_type::f32;
    std::vector<std::int64_t> dims(t.shape.rbegin(), t.shape.rend());
    return g.add_tensor(name, type, dims, encode(type, values));
  };
  const std::vector<std::pair<std::string, std::string>> names = {
      {"input_layernorm.weight", "attn_norm.weight"},
      {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.q_proj.bias", "attn_q.bias"},
      {"self_attn.k_proj.bias", "attn_k.bias"},
      {"self_attn.v_proj.bias", "attn_v.bias"},
      {"self_attn.o_proj.weight", "attn_output.weight"},
      {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},
      {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"}};
  for (const auto& t : w) {
    std::string name;
    std::vector<float> values = t.values;
    if (t.name == "model.embed_tokens.weight") name = "token_embd.weight";
    if (t.name == "model.norm.weight") name = "output_norm.weight";
    if (t.name == "lm_head.weight") name = "output.weight";
    for (std::int64_t l = 0; l < s.n_layers && name.empty(); ++l)
      for (const auto& [hf, gg] : names)
        if (t.name == "model.layers." + std::to_string(l) + "." + hf)
          name = "blk." + std::to_string(l) + "." + gg;
    if (s.arch == "llama" && name.find("attn_q.weight") != std::string::npos)
      values = permute_for_adjacent_rope(t, s.n_heads);
    if (s.arch == "llama" && name.find("attn_k.weight") != std::string::npos)
      values = permute_for_adjacent_rope(t, s.n_kv_heads);
    if (auto st = put(name, t, values); !st) return st;
  }
  return g.write(path);
}

/// A safetensors file of `tensors` in `dtype` ("F32", "F16" or "BF16").
inline void write_safetensors(const std::vector<const named_tensor*>& tensors,
                              const std::string& dtype, const std::string& path) {
  const auto type = dtype == "F32"   ? kernels::tensor_type::f32
                    : dtype == "F16" ? kernels::tensor_type::f16
                                     : kernels::tensor_type::bf16;
  std::string header = "{\"__metadata__\":{\"format\":\"pt\"}";
  std::vector<std::uint8_t> data;
  for (const auto* t : tensors) {
    const auto bytes = encode(type, t->values);
    std::string shape;
    for (auto d : t->shape) shape += (shape.empty() ? "" : ",") + std::to_string(d);
    header += ",\"" + t->name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":[" + shape +
              "],\"data_offsets\":[" + std::to_string(data.size()) + "," +
              std::to_string(data.size() + bytes.size()) + "]}";
    data.insert(data.end(), bytes.begin(), bytes.end());
  }
  header += "}";
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  const std::uint64_t n = header.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << header;
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

inline std::string hf_config_json(const tiny_spec& s) {
  return std::string{"{\"model_type\":\""} + s.arch +
         "\",\"hidden_size\":" + std::to_string(s.dim) +
         ",\"intermediate_size\":" + std::to_string(s.ffn) +
         ",\"num_hidden_layers\":" + std::to_string(s.n_layers) +
         ",\"num_attention_heads\":" + std::to_string(s.n_heads) +
         ",\"num_key_value_heads\":" + std::to_string(s.n_kv_heads) +
         ",\"vocab_size\":" + std::to_string(s.vocab) +
         ",\"max_position_embeddings\":" + std::to_string(s.context) +
         ",\"rms_norm_eps\":" + std::to_string(s.eps) +
         ",\"rope_theta\":" + std::to_string(s.rope_base) +
         ",\"tie_word_embeddings\":" + (s.tied ? "true" : "false") +
         ",\"hidden_act\":\"silu\",\"rope_scaling\":null,\"eos_token_id\":[1,3]}";
}

/// The dense forward pass in double: logits [tokens x vocab] for every position of `tokens`,
/// from the Hugging Face weights with rotate_half RoPE; no paging, no batching, no quantization.
inline std::vector<double> reference_logits(const tiny_spec& s, const std::vector<named_tensor>& w,
                                            const std::vector<std::int32_t>& tokens) {
  const auto T = static_cast<std::int64_t>(tokens.size());
  const std::int64_t hd = s.head_dim, q_dim = s.n_heads * hd, kv_dim = s.n_kv_heads * hd;
  auto W = [&](const std::string& n) -> const std::vector<float>& { return find(w, n).values; };
  auto linear = [&](const std::vector<double>& x, const std::vector<float>& m, std::int64_t out_n,
                    std::int64_t in_n) {
    std::vector<double> y(static_cast<std::size_t>(T * out_n));
    for (std::int64_t t = 0; t < T; ++t)
      for (std::int64_t o = 0; o < out_n; ++o) {
        double acc = 0.0;
        for (std::int64_t i = 0; i < in_n; ++i)
          acc += x[static_cast<std::size_t>(t * in_n + i)] *
                 static_cast<double>(m[static_cast<std::size_t>(o * in_n + i)]);
        y[static_cast<std::size_t>(t * out_n + o)] = acc;
      }
    return y;
  };
  auto rmsnorm = [&](const std::vector<double>& x, const std::vector<float>& g) {
    std::vector<double> y(x.size());
    for (std::int64_t t = 0; t < T; ++t) {
      double ss = 0.0;
      for (std::int64_t i = 0; i < s.dim; ++i)
        ss +=
            x[static_cast<std::size_t>(t * s.dim + i)] * x[static_cast<std::size_t>(t * s.dim + i)];
      const double r =
          1.0 / std::sqrt(ss / static_cast<double>(s.dim) + static_cast<double>(s.eps));
      for (std::int64_t i = 0; i < s.dim; ++i)
        y[static_cast<std::size_t>(t * s.dim + i)] =
            x[static_cast<std::size_t>(t * s.dim + i)] * r *
            static_cast<double>(g[static_cast<std::size_t>(i)]);
    }
    return y;
  };
  auto rope = [&](std::vector<double>& x, std::int64_t heads) {  // rotate_half
    for (std::int64_t t = 0; t < T; ++t)
      for (std::int64_t h = 0; h < heads; ++h)
        for (std::int64_t i = 0; i < hd / 2; ++i) {
          const double ang = static_cast<double>(t) *
                             std::pow(static_cast<double>(s.rope_base),
                                      -2.0 * static_cast<double>(i) / static_cast<double>(hd));
          double& a = x[static_cast<std::size_t>((t * heads + h) * hd + i)];
          double& b = x[static_cast<std::size_t>((t * heads + h) * hd + i + hd / 2)];
          const double a0 = a, b0 = b;
          a = a0 * std::cos(ang) - b0 * std::sin(ang);
          b = b0 * std::cos(ang) + a0 * std::sin(ang);
        }
  };
  std::vector<double> x(static_cast<std::size_t>(T * s.dim));
  const auto& emb = W("model.embed_tokens.weight");
  for (std::int64_t t = 0; t < T; ++t)
    for (std::int64_t i = 0; i < s.dim; ++i)
      x[static_cast<std::size_t>(t * s.dim + i)] = static_cast<double>(
          emb[static_cast<std::size_t>(tokens[static_cast<std::size_t>(t)] * s.dim + i)]);
  for (std::int64_t l = 0; l < s.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    auto h = rmsnorm(x, W(p + "input_layernorm.weight"));
    auto q = linear(h, W(p + "self_attn.q_proj.weight"), q_dim, s.dim);
    auto k = linear(h, W(p + "self_attn.k_proj.weight"), kv_dim, s.dim);
    auto v = linear(h, W(p + "self_attn.v_proj.weight"), kv_dim, s.dim);
    if (s.arch == "qwen2") {
      for (std::int64_t t = 0; t < T; ++t) {
        for (std::int64_t i = 0; i < q_dim; ++i)
          q[static_cast<std::size_t>(t * q_dim + i)] +=
              static_cast<double>(W(p + "self_attn.q_proj.bias")[static_cast<std::size_t>(i)]);
        for (std::int64_t i = 0; i < kv_dim; ++i) {
          k[static_cast<std::size_t>(t * kv_dim + i)] +=
              static_cast<double>(W(p + "self_attn.k_proj.bias")[static_cast<std::size_t>(i)]);
          v[static_cast<std::size_t>(t * kv_dim + i)] +=
              static_cast<double>(W(p + "self_attn.v_proj.bias")[static_cast<std::size_t>(i)]);
        }
      }
    }
    rope(q, s.n_heads);
    rope(k, s.n_kv_heads);
    std::vector<double> attn(static_cast<std::size_t>(T * q_dim));
    for (std::int64_t t = 0; t < T; ++t)
      for (std::int64_t hh = 0; hh < s.n_heads; ++hh) {
        const std::int64_t g = hh / (s.n_heads / s.n_kv_heads);
        std::vector<double> sc;
        for (std::int64_t j = 0; j <= t; ++j) {
          double dot = 0.0;
          for (std::int64_t d = 0; d < hd; ++d)
            dot += q[static_cast<std::size_t>(t * q_dim + hh * hd + d)] *
                   k[static_cast<std::size_t>(j * kv_dim + g * hd + d)];
          sc.push_back(dot / std::sqrt(static_cast<double>(hd)));
        }
        double mx = sc[0], sum = 0.0;
        for (double v2 : sc) mx = std::max(mx, v2);
        for (auto& v2 : sc) sum += (v2 = std::exp(v2 - mx));
        for (std::int64_t d = 0; d < hd; ++d) {
          double acc = 0.0;
          for (std::int64_t j = 0; j <= t; ++j)
            acc += sc[static_cast<std::size_t>(j)] / sum *
                   v[static_cast<std::size_t>(j * kv_dim + g * hd + d)];
          attn[static_cast<std::size_t>(t * q_dim + hh * hd + d)] = acc;
        }
      }
    auto o = linear(attn, W(p + "self_attn.o_proj.weight"), s.dim, q_dim);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] += o[i];
    h = rmsnorm(x, W(p + "post_attention_layernorm.weight"));
    auto gate = linear(h, W(p + "mlp.gate_proj.weight"), s.ffn, s.dim);
    const auto up = linear(h, W(p + "mlp.up_proj.weight"), s.ffn, s.dim);
    for (std::size_t i = 0; i < gate.size(); ++i)
      gate[i] = gate[i] / (1.0 + std::exp(-gate[i])) * up[i];
    o = linear(gate, W(p + "mlp.down_proj.weight"), s.dim, s.ffn);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] += o[i];
  }
  x = rmsnorm(x, W("model.norm.weight"));
  return linear(x, W(s.tied ? "model.embed_tokens.weight" : "lm_head.weight"), s.vocab, s.dim);
}

}  // namespace bastion::test
