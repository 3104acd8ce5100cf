#include "kernels/model/hf/safetensors_file.hpp"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <set>

namespace bastion::kernels::safetensors {
namespace {

using json = nlohmann::json;

constexpr std::uint64_t dim_max = std::uint64_t{1} << 40;  // no real tensor comes near

// Reads one header entry into `t`; a non-empty return is the reason it is invalid.
std::string parse_entry(const json& v, const open_limits& lim, tensor_entry& t) {
  if (!v.is_object()) return "entry is not a JSON object";
  for (const auto& item : v.items())
    if (item.key() != "dtype" && item.key() != "shape" && item.key() != "data_offsets")
      return "unexpected field '" + item.key() + "'";
  const auto dtype = v.find("dtype");
  const auto shape = v.find("shape");
  const auto offsets = v.find("data_offsets");
  if (dtype == v.end() || !dtype->is_string()) return "'dtype' is missing or not a string";
  if (shape == v.end() || !shape->is_array()) return "'shape' is missing or not an array";
  if (offsets == v.end() || !offsets->is_array() || offsets->size() != 2)
    return "'data_offsets' is missing or not two numbers";
  t.dtype = dtype->get<std::string>();
  const auto elem = dtype_size(t.dtype);
  if (!elem) return "unknown dtype '" + t.dtype + "'";
  if (t.dtype == "F32") t.type = tensor_type::f32;
  if (t.dtype == "F16") t.type = tensor_type::f16;
  if (t.dtype == "BF16") t.type = tensor_type::bf16;
  if (shape->size() > lim.dims_max)
    return std::to_string(shape->size()) + " dimensions exceed the limit of " +
           std::to_string(lim.dims_max);
  std::uint64_t bytes = *elem;
  for (const auto& d : *shape) {
    if (!d.is_number_unsigned() || d.get<std::uint64_t>() > dim_max)
      return "shape has a dimension that is not a non-negative integer below 2^40";
    const std::uint64_t n = d.get<std::uint64_t>();
    t.shape.push_back(static_cast<std::int64_t>(n));
    if (n != 0 && bytes > std::numeric_limits<std::uint64_t>::max() / n)
      return "shape is absurdly large (its byte size overflows 64 bits)";
    bytes *= n;
  }
  for (const auto& o : *offsets)
    if (!o.is_number_unsigned()) return "'data_offsets' are not non-negative integers";
  t.begin = (*offsets)[0].get<std::uint64_t>();
  t.end = (*offsets)[1].get<std::uint64_t>();
  if (t.end < t.begin) return "data_offsets end before they begin";
  if (t.end - t.begin != static_cast<std::uint64_t>(bytes))
    return "data_offsets span " + std::to_string(t.end - t.begin) + " bytes but dtype " + t.dtype +
           " and the shape need " + std::to_string(bytes);
  return {};
}

}  // namespace

std::optional<std::uint32_t> dtype_size(std::string_view d) noexcept {
  if (d == "BOOL" || d == "U8" || d == "I8" || d == "F8_E5M2" || d == "F8_E4M3") return 1;
  if (d == "I16" || d == "U16" || d == "F16" || d == "BF16") return 2;
  if (d == "I32" || d == "U32" || d == "F32") return 4;
  if (d == "I64" || d == "U64" || d == "F64") return 8;
  return std::nullopt;
}

file::~file() {
  if (mapping_) ::munmap(mapping_, static_cast<std::size_t>(size_));
}

const tensor_entry* file::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

status file::open(const std::string& path, std::unique_ptr<file>& out, const open_limits& lim) {
  auto fail = [&](const std::string& why) {
    return status{status_code::invalid_argument, path + ": " + why};
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(std::string{"cannot open: "} + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return fail("not a readable regular file");
  }
  std::unique_ptr<file> f{new file()};
  f->path_ = path;
  f->size_ = static_cast<std::uint64_t>(st.st_size);
  if (f->size_ < 8) {
    ::close(fd);
    return fail("file of " + std::to_string(f->size_) +
                " bytes is too short for the 8-byte header length");
  }
  f->mapping_ = ::mmap(nullptr, static_cast<std::size_t>(f->size_), PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (f->mapping_ == MAP_FAILED) {
    f->mapping_ = nullptr;
    return fail(std::string{"cannot map: "} + std::strerror(errno));
  }
  const auto* bytes = static_cast<const std::uint8_t*>(f->mapping_);
  std::uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];  // little-endian
  if (header_len > lim.header_bytes_max)
    return fail("header length " + std::to_string(header_len) + " exceeds the limit of " +
                std::to_string(lim.header_bytes_max) + " bytes");
  if (header_len > f->size_ - 8)
    return fail("header length " + std::to_string(header_len) + " runs past the end of the " +
                std::to_string(f->size_) + "-byte file (truncated?)");
  if (header_len < 2 || bytes[8] != '{') return fail("header does not start with '{'");
  f->buffer_ = bytes + 8 + header_len;
  const std::uint64_t buffer_size = f->size_ - 8 - header_len;

  // Duplicate top-level keys: JSON parsers keep the last silently, which would let two
  // readers see different tensors; refuse them while parsing.
  std::set<std::string> keys;
  bool duplicate = false;
  std::string duplicate_key;
  const json::parser_callback_t cb = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 && !duplicate &&
        !keys.insert(parsed.get<std::string>()).second) {
      duplicate = true;
      duplicate_key = parsed.get<std::string>();
    }
    return true;
  };
  const char* text = reinterpret_cast<const char*>(bytes + 8);
  const json header = json::parse(text, text + header_len, cb, /*allow_exceptions=*/false);
  if (header.is_discarded()) return fail("header is not valid JSON");
  if (duplicate) return fail("tensor '" + duplicate_key + "' appears twice in the header");
  if (!header.is_object()) return fail("header is not a JSON object");
  if (header.size() > lim.tensor_count_max + 1)
    return fail(std::to_string(header.size()) + " header entries exceed the limit");

  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) return fail("__metadata__ is not an object");
      for (const auto& [k, v] : value.items()) {
        if (!v.is_string()) return fail("__metadata__ '" + k + "' is not a string");
        f->metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    tensor_entry t;
    t.name = name;
    if (auto why = parse_entry(value, lim, t); !why.empty())
      return fail("tensor '" + name + "': " + why);
    f->tensors_.push_back(std::move(t));
  }
  // The ranges must tile the buffer: sorted by start, each begins where the previous ended,
  // the last ends at the end of the file. This refuses overlap (aliasing), holes (hidden data)
  // and ranges outside the file.
  std::vector<std::size_t> order(f->tensors_.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    const auto& ta = f->tensors_[a];
    const auto& tb = f->tensors_[b];
    return ta.begin < tb.begin || (ta.begin == tb.begin && ta.end < tb.end);
  });
  std::uint64_t expect = 0;
  for (auto i : order) {
    const auto& t = f->tensors_[i];
    if (t.end > buffer_size)
      return fail("tensor '" + t.name + "': data_offsets [" + std::to_string(t.begin) + ", " +
                  std::to_string(t.end) + ") run past the end of the " +
                  std::to_string(buffer_size) + "-byte data buffer (truncated?)");
    if (t.begin != expect)
      return fail("tensor '" + t.name + "': data_offsets begin at " + std::to_string(t.begin) +
                  " but the previous tensor ends at " + std::to_string(expect) +
                  (t.begin < expect ? " (overlap)" : " (hole)"));
    expect = t.end;
  }
  if (expect != buffer_size)
    return fail("the data buffer has " + std::to_string(buffer_size - expect) +
                " bytes no tensor covers");
  for (std::size_t i = 0; i < f->tensors_.size(); ++i) f->index_[f->tensors_[i].name] = i;
  out = std::move(f);
  return status::ok();
}

}  // namespace bastion::kernels::safetensors
