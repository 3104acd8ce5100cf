#include "kernels/model/requantize.hpp"

#include "kernels/quant/quantize.hpp"

#include <cmath>
#include <map>
#include <new>
#include <string>
#include <utility>
#include <vector>

namespace bastion::kernels {
namespace {

bool convertible(const weight_view& w) {
  return (w.type == tensor_type::f32 || w.type == tensor_type::f16 ||
          w.type == tensor_type::bf16) &&
         w.data && w.rows > 0 && w.cols > 0 && w.cols % 32 == 0;
}

struct named_view {
  weight_view* view;
  std::string name;
};

}  // namespace

status requantize_to_q8_0(model& m, requantize_report* report) {
  std::vector<named_view> views{{&m.weights.token_embd, "token_embd"},
                                {&m.weights.output, "output"}};
  for (std::size_t l = 0; l < m.weights.layers.size(); ++l) {
    auto& L = m.weights.layers[l];
    const std::string p = "layer " + std::to_string(l) + " ";
    const auto projections = layer_projections(L);
    for (std::size_t i = 0; i < projections.size(); ++i)
      views.push_back({projections[i], p + layer_projection_names[i]});
  }
  // Convert each distinct matrix once (a tied output is the embedding's view), all before any
  // view changes, so a failure leaves the model as it was.
  std::map<const void*, std::pair<weight_view, std::shared_ptr<std::vector<std::uint8_t>>>> done;
  requantize_report r;
  try {
    std::vector<float> row;
    for (const auto& nv : views) {
      const weight_view& w = *nv.view;
      if (!convertible(w) || done.count(w.data)) continue;
      const std::uint64_t in_stride = *row_bytes(w.type, static_cast<std::uint64_t>(w.cols));
      const std::uint64_t out_stride =
          *row_bytes(tensor_type::q8_0, static_cast<std::uint64_t>(w.cols));
      auto bytes = std::make_shared<std::vector<std::uint8_t>>(out_stride *
                                                               static_cast<std::uint64_t>(w.rows));
      row.resize(static_cast<std::size_t>(w.cols));
      for (std::int64_t j = 0; j < w.rows; ++j) {
        dequantize_row(w.type, static_cast<const std::uint8_t*>(w.data) + j * in_stride, row.data(),
                       w.cols);
        for (float v : row)
          if (!std::isfinite(v))
            return {status_code::invalid_argument, "requantize_to_q8_0: " + m.source + ": " +
                                                       nv.name + " row " + std::to_string(j) +
                                                       " has a non-finite value"};
        quantize_row_q8_0(row.data(), bytes->data() + j * out_stride, w.cols);
      }
      ++r.matrices;
      r.bytes_before += in_stride * static_cast<std::uint64_t>(w.rows);
      r.bytes_after += bytes->size();
      done[w.data] = {weight_view{tensor_type::q8_0, bytes->data(), w.rows, w.cols}, bytes};
    }
  } catch (const std::bad_alloc&) {
    return {status_code::out_of_memory,
            "requantize_to_q8_0: " + m.source + ": no memory for the Q8_0 copy"};
  }
  for (auto& [old, converted] : done) m.storage.push_back(converted.second);
  for (const auto& nv : views)
    if (auto it = done.find(nv.view->data); it != done.end() && convertible(*nv.view))
      *nv.view = it->second.first;
  if (report) *report = r;
  return status::ok();
}

}  // namespace bastion::kernels
