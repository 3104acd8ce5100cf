#include "kernels/model/gguf_writer.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace bastion::kernels::gguf {
namespace {

class byte_sink {
 public:
  template <class T>
  void put(T v) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(&v);
    bytes.insert(bytes.end(), p, p + sizeof(T));
  }
  void put_string(const std::string& s) {
    put<std::uint64_t>(s.size());
    bytes.insert(bytes.end(), s.begin(), s.end());
  }
  void pad_to(std::uint64_t alignment) {
    while (bytes.size() % alignment) bytes.push_back(0);
  }
  std::vector<std::uint8_t> bytes;
};

void put_scalar(byte_sink& out, value_type t, std::uint64_t u, std::int64_t i, double f) {
  switch (t) {
    case value_type::u8:
      out.put(static_cast<std::uint8_t>(u));
      break;
    case value_type::i8:
      out.put(static_cast<std::int8_t>(i));
      break;
    case value_type::u16:
      out.put(static_cast<std::uint16_t>(u));
      break;
    case value_type::i16:
      out.put(static_cast<std::int16_t>(i));
      break;
    case value_type::u32:
      out.put(static_cast<std::uint32_t>(u));
      break;
    case value_type::i32:
      out.put(static_cast<std::int32_t>(i));
      break;
    case value_type::u64:
      out.put(u);
      break;
    case value_type::i64:
      out.put(i);
      break;
    case value_type::f32:
      out.put(static_cast<float>(f));
      break;
    case value_type::f64:
      out.put(f);
      break;
    case value_type::boolean:
      out.put(static_cast<std::uint8_t>(u != 0));
      break;
    default:
      break;
  }
}

}  // namespace

void writer::set(const std::string& key, metadata_value v) {
  for (auto& kv : metadata_)
    if (kv.first == key) {
      kv.second = std::move(v);
      return;
    }
  metadata_.emplace_back(key, std::move(v));
}

void writer::set_u32(const std::string& key, std::uint32_t v) {
  metadata_value m;
  m.type = value_type::u32;
  m.u = v;
  m.i = v;
  set(key, std::move(m));
}

void writer::set_u64(const std::string& key, std::uint64_t v) {
  metadata_value m;
  m.type = value_type::u64;
  m.u = v;
  m.i = static_cast<std::int64_t>(v);
  set(key, std::move(m));
}

void writer::set_i32(const std::string& key, std::int32_t v) {
  metadata_value m;
  m.type = value_type::i32;
  m.i = v;
  m.u = static_cast<std::uint64_t>(v);
  set(key, std::move(m));
}

void writer::set_f32(const std::string& key, float v) {
  metadata_value m;
  m.type = value_type::f32;
  m.f = static_cast<double>(v);
  set(key, std::move(m));
}

void writer::set_bool(const std::string& key, bool v) {
  metadata_value m;
  m.type = value_type::boolean;
  m.u = v ? 1 : 0;
  set(key, std::move(m));
}

void writer::set_string(const std::string& key, std::string v) {
  metadata_value m;
  m.type = value_type::string;
  m.s = std::move(v);
  set(key, std::move(m));
}

void writer::set_strings(const std::string& key, std::vector<std::string> v) {
  metadata_value m;
  m.type = value_type::array;
  m.array_type = value_type::string;
  m.strings = std::move(v);
  set(key, std::move(m));
}

void writer::set_i32s(const std::string& key, const std::vector<std::int32_t>& v) {
  metadata_value m;
  m.type = value_type::array;
  m.array_type = value_type::i32;
  m.ints.assign(v.begin(), v.end());
  set(key, std::move(m));
}

void writer::set_f32s(const std::string& key, const std::vector<float>& v) {
  metadata_value m;
  m.type = value_type::array;
  m.array_type = value_type::f32;
  for (float x : v) m.floats.push_back(static_cast<double>(x));
  set(key, std::move(m));
}

void writer::copy_value(const std::string& key, const metadata_value& v) { set(key, v); }

status writer::add_tensor(const std::string& name, tensor_type type, std::vector<std::int64_t> dims,
                          std::vector<std::uint8_t> bytes) {
  std::uint64_t n = 1;
  for (auto d : dims) {
    if (d <= 0) return {status_code::invalid_argument, "tensor '" + name + "': bad dimension"};
    n *= static_cast<std::uint64_t>(d);
  }
  auto want = row_bytes(type, n);
  if (!want || *want != bytes.size())
    return {
        status_code::invalid_argument,
        "tensor '" + name + "': " + std::to_string(bytes.size()) + " bytes do not match its shape"};
  tensors_.push_back({name, type, std::move(dims), std::move(bytes)});
  return status::ok();
}

status writer::write(const std::string& path) const {
  std::uint64_t alignment = 32;
  for (const auto& [k, v] : metadata_)
    if (k == "general.alignment") alignment = v.u;

  byte_sink out;
  out.put<std::uint32_t>(0x46554747);
  out.put<std::uint32_t>(3);
  out.put<std::uint64_t>(tensors_.size());
  out.put<std::uint64_t>(metadata_.size());
  for (const auto& [key, v] : metadata_) {
    out.put_string(key);
    out.put(static_cast<std::uint32_t>(v.type));
    if (v.type == value_type::string) {
      out.put_string(v.s);
    } else if (v.type == value_type::array) {
      out.put(static_cast<std::uint32_t>(v.array_type));
      if (v.array_type == value_type::string) {
        out.put<std::uint64_t>(v.strings.size());
        for (const auto& s : v.strings) out.put_string(s);
      } else if (v.array_type == value_type::f32 || v.array_type == value_type::f64) {
        out.put<std::uint64_t>(v.floats.size());
        for (double f : v.floats) put_scalar(out, v.array_type, 0, 0, f);
      } else {
        out.put<std::uint64_t>(v.ints.size());
        for (auto i : v.ints) put_scalar(out, v.array_type, static_cast<std::uint64_t>(i), i, 0.0);
      }
    } else {
      put_scalar(out, v.type, v.u, v.i, v.f);
    }
  }
  std::uint64_t offset = 0;
  for (const auto& t : tensors_) {
    out.put_string(t.name);
    out.put(static_cast<std::uint32_t>(t.dims.size()));
    for (auto d : t.dims) out.put(static_cast<std::uint64_t>(d));
    out.put(static_cast<std::uint32_t>(t.type));
    out.put(offset);
    offset += (t.bytes.size() + alignment - 1) / alignment * alignment;
  }
  out.pad_to(alignment);
  for (const auto& t : tensors_) {
    out.bytes.insert(out.bytes.end(), t.bytes.begin(), t.bytes.end());
    out.pad_to(alignment);
  }

  const std::string tmp = path + ".tmp";
  std::FILE* fp = std::fopen(tmp.c_str(), "wb");
  if (!fp) return {status_code::invalid_argument, tmp + ": cannot create: " + errno_message(errno)};
  const bool ok = std::fwrite(out.bytes.data(), 1, out.bytes.size(), fp) == out.bytes.size();
  const bool closed = std::fclose(fp) == 0;
  if (!ok || !closed || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return {status_code::invalid_argument, path + ": write failed: " + errno_message(errno)};
  }
  return status::ok();
}

}  // namespace bastion::kernels::gguf
