#include "kernels/engine/resident_weights.hpp"

#include <map>
#include <utility>

namespace bastion::kernels {
namespace {

std::uint64_t view_bytes(const weight_view& w) {
  const auto row = row_bytes(w.type, static_cast<std::uint64_t>(w.cols));
  return row ? *row * static_cast<std::uint64_t>(w.rows) : 0;
}

std::uint64_t aligned(std::uint64_t n) {
  return (n + backend::memory_alignment - 1) / backend::memory_alignment *
         backend::memory_alignment;
}

// Two passes over the same list of tensors: the first sizes the arena, the second uploads.
// Each source pointer is placed once, so a tied output shares the embedding's bytes.
class placer {
 public:
  void add(const void* src, std::uint64_t bytes) {
    if (!src || bytes == 0 || offsets_.count(src)) return;
    offsets_.emplace(src, std::make_pair(total_, bytes));
    total_ += aligned(bytes);
  }
  std::uint64_t total() const { return total_; }
  status upload(backend& be, void* arena) const {
    for (const auto& [src, where] : offsets_)
      if (auto s = be.upload(static_cast<std::uint8_t*>(arena) + where.first, src, where.second);
          !s)
        return s;
    return status::ok();
  }
  template <class T>
  T* moved(const T* src, void* arena) const {
    if (!src) return nullptr;
    return reinterpret_cast<T*>(static_cast<std::uint8_t*>(arena) + offsets_.at(src).first);
  }

 private:
  std::uint64_t total_ = 0;
  std::map<const void*, std::pair<std::uint64_t, std::uint64_t>> offsets_;
};

const float* data_or_null(const std::vector<float>& v) { return v.empty() ? nullptr : v.data(); }

// A host backend's faster copies of the projection matrices (backend::repack_weight), in one
// arena; the embedding table stays as it is (a tied output gets its own copy). Each matrix is
// asked its copy's size once; those with none stay as they are.
status repack(backend& be, resident_weights& r) {
  struct copy {
    weight_view* view;
    std::uint64_t bytes;
  };
  std::vector<copy> copies;
  std::uint64_t total = 0;
  auto consider = [&](weight_view* v) {
    if (const std::uint64_t bytes = be.repacked_bytes(*v); bytes > 0) {
      copies.push_back({v, bytes});
      total += aligned(bytes);
    }
  };
  consider(&r.output);
  for (auto& d : r.layers)
    for (auto* v : layer_projections(d)) consider(v);
  if (copies.empty()) return status::ok();
  if (auto s = backend_buffer::make(&be, total, r.arena); !s) return s;
  auto* at = static_cast<std::uint8_t*>(r.arena.data());
  for (const auto& c : copies) {
    if (auto s = be.repack_weight(*c.view, at, *c.view); !s) return s;
    at += aligned(c.bytes);
  }
  return status::ok();
}

}  // namespace

status resident_weights::make(const model& m, backend& be, resident_weights& out) {
  const auto& w = m.weights;
  resident_weights r;
  r.token_embd = w.token_embd;
  r.output_norm = data_or_null(w.output_norm);
  r.output = w.output;
  for (const auto& L : w.layers) {
    resident_layer d;
    d.attn_norm = data_or_null(L.attn_norm);
    d.wq = L.wq;
    d.wk = L.wk;
    d.wv = L.wv;
    d.bq = data_or_null(L.bq);
    d.bk = data_or_null(L.bk);
    d.bv = data_or_null(L.bv);
    d.wo = L.wo;
    d.ffn_norm = data_or_null(L.ffn_norm);
    d.w_gate = L.w_gate;
    d.w_up = L.w_up;
    d.w_down = L.w_down;
    r.layers.push_back(d);
    for (const auto* v : layer_projections(d)) r.matrix_bytes_per_token += view_bytes(*v);
  }
  r.matrix_bytes_per_token += view_bytes(w.output);
  if (be.uses_host_memory()) {
    if (auto s = repack(be, r); !s) return s;
    out = std::move(r);
    return status::ok();
  }

  placer p;
  auto add_view = [&](const weight_view& v) { p.add(v.data, view_bytes(v)); };
  auto add_vec = [&](const std::vector<float>& v) { p.add(data_or_null(v), v.size() * 4); };
  add_view(w.token_embd);
  add_view(w.output);
  add_vec(w.output_norm);
  for (const auto& L : w.layers) {
    for (const auto* v : layer_projections(L)) add_view(*v);
    for (const auto* v : {&L.attn_norm, &L.ffn_norm, &L.bq, &L.bk, &L.bv}) add_vec(*v);
  }
  if (auto s = backend_buffer::make(&be, p.total(), r.arena); !s) return s;
  if (auto s = p.upload(be, r.arena.data()); !s) return s;
  void* a = r.arena.data();
  auto move_view = [&](weight_view& v) { v.data = p.moved(v.data, a); };
  move_view(r.token_embd);
  move_view(r.output);
  r.output_norm = p.moved(r.output_norm, a);
  for (auto& d : r.layers) {
    for (auto* v : layer_projections(d)) move_view(*v);
    for (auto** f : {&d.attn_norm, &d.ffn_norm, &d.bq, &d.bk, &d.bv}) *f = p.moved(*f, a);
  }
  out = std::move(r);
  return status::ok();
}

}  // namespace bastion::kernels
