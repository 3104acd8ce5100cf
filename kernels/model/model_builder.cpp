#include "kernels/model/model_builder.hpp"

#include <string>

namespace bastion::kernels {
namespace {

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

class builder {
 public:
  builder(const tensor_lookup& lookup, const std::string& source)
      : lookup_(lookup), source_(source) {}

  status matrix(const std::string& name, std::int64_t rows, std::int64_t cols, weight_view& out) {
    const stored_tensor* t = nullptr;
    if (auto s = find(name, {rows, cols}, t); !s) return s;
    const auto tr = traits_of(static_cast<std::uint32_t>(t->type));
    if (!tr || cols % tr->block_elems != 0)
      return fail(*t, name,
                  "type " + std::string{ggml_type_name(static_cast<std::uint32_t>(t->type))} +
                      " cannot be executed with rows of " + std::to_string(cols));
    out = weight_view{t->type, t->data, rows, cols};
    return status::ok();
  }

  status vector(const std::string& name, std::int64_t n, std::vector<float>& out) {
    const stored_tensor* t = nullptr;
    if (auto s = find(name, {n}, t); !s) return s;
    if (t->type != tensor_type::f32 && t->type != tensor_type::f16 && t->type != tensor_type::bf16)
      return fail(*t, name,
                  "a 1-D weight must be F32, F16 or BF16, not " +
                      std::string{ggml_type_name(static_cast<std::uint32_t>(t->type))});
    out.resize(static_cast<std::size_t>(n));
    dequantize_row(t->type, t->data, out.data(), n);
    return status::ok();
  }

  bool has(const std::string& name) const { return lookup_(name) != nullptr; }

 private:
  status find(const std::string& name, const std::vector<std::int64_t>& want,
              const stored_tensor*& out) {
    out = lookup_(name);
    if (!out)
      return {status_code::invalid_argument, source_ + ": tensor '" + name + "' is missing"};
    if (!out->unsupported_dtype.empty())
      return fail(*out, name, "dtype " + out->unsupported_dtype + " cannot be executed");
    if (out->shape != want)
      return fail(
          *out, name,
          "shape " + shape_text(out->shape) + " does not match the config's " + shape_text(want));
    return status::ok();
  }
  status fail(const stored_tensor& t, const std::string& name, const std::string& why) const {
    return {status_code::invalid_argument,
            (t.file.empty() ? source_ : t.file) + ": tensor '" + name + "': " + why};
  }

  const tensor_lookup& lookup_;
  const std::string& source_;
};

}  // namespace

tensor_naming gguf_naming() {
  tensor_naming n;
  n.token_embd = "token_embd.weight";
  n.output_norm = "output_norm.weight";
  n.output = "output.weight";
  n.layer_prefix = "blk.";
  n.attn_norm = "attn_norm.weight";
  n.wq = "attn_q.weight";
  n.wk = "attn_k.weight";
  n.wv = "attn_v.weight";
  n.bq = "attn_q.bias";
  n.bk = "attn_k.bias";
  n.bv = "attn_v.bias";
  n.wo = "attn_output.weight";
  n.ffn_norm = "ffn_norm.weight";
  n.w_gate = "ffn_gate.weight";
  n.w_up = "ffn_up.weight";
  n.w_down = "ffn_down.weight";
  return n;
}

tensor_naming hugging_face_naming() {
  tensor_naming n;
  n.token_embd = "model.embed_tokens.weight";
  n.output_norm = "model.norm.weight";
  n.output = "lm_head.weight";
  n.layer_prefix = "model.layers.";
  n.attn_norm = "input_layernorm.weight";
  n.wq = "self_attn.q_proj.weight";
  n.wk = "self_attn.k_proj.weight";
  n.wv = "self_attn.v_proj.weight";
  n.bq = "self_attn.q_proj.bias";
  n.bk = "self_attn.k_proj.bias";
  n.bv = "self_attn.v_proj.bias";
  n.wo = "self_attn.o_proj.weight";
  n.ffn_norm = "post_attention_layernorm.weight";
  n.w_gate = "mlp.gate_proj.weight";
  n.w_up = "mlp.up_proj.weight";
  n.w_down = "mlp.down_proj.weight";
  return n;
}

status build_weights(const model_config& c, const tensor_naming& n, const tensor_lookup& lookup,
                     const std::string& source, model_weights& out) {
  if (auto s = c.validate(); !s) return {s.code(), source + ": " + s.message()};
  builder b{lookup, source};
  model_weights w;
  if (auto s = b.matrix(n.token_embd, c.vocab, c.dim, w.token_embd); !s) return s;
  if (auto s = b.vector(n.output_norm, c.dim, w.output_norm); !s) return s;
  if (c.tied_output) {
    w.output = w.token_embd;
  } else if (auto s = b.matrix(n.output, c.vocab, c.dim, w.output); !s) {
    return s;
  }
  w.layers.resize(static_cast<std::size_t>(c.n_layers));
  for (std::int64_t i = 0; i < c.n_layers; ++i) {
    auto& l = w.layers[static_cast<std::size_t>(i)];
    const std::string p = n.layer_prefix + std::to_string(i) + ".";
    for (const auto& s :
         {b.vector(p + n.attn_norm, c.dim, l.attn_norm), b.matrix(p + n.wq, c.q_dim(), c.dim, l.wq),
          b.matrix(p + n.wk, c.kv_dim(), c.dim, l.wk), b.matrix(p + n.wv, c.kv_dim(), c.dim, l.wv),
          b.matrix(p + n.wo, c.dim, c.q_dim(), l.wo), b.vector(p + n.ffn_norm, c.dim, l.ffn_norm),
          b.matrix(p + n.w_gate, c.ffn_dim, c.dim, l.w_gate),
          b.matrix(p + n.w_up, c.ffn_dim, c.dim, l.w_up),
          b.matrix(p + n.w_down, c.dim, c.ffn_dim, l.w_down)})
      if (!s) return s;
    if (c.qkv_bias) {
      for (const auto& s :
           {b.vector(p + n.bq, c.q_dim(), l.bq), b.vector(p + n.bk, c.kv_dim(), l.bk),
            b.vector(p + n.bv, c.kv_dim(), l.bv)})
        if (!s) return s;
    } else if (b.has(p + n.bq) || b.has(p + n.bk) || b.has(p + n.bv)) {
      // Ignoring a bias would silently compute a different model.
      return {status_code::unsupported, source + ": layer " + std::to_string(i) +
                                            " has Q/K/V biases the config does not declare"};
    }
  }
  out = std::move(w);
  return status::ok();
}

}  // namespace bastion::kernels
