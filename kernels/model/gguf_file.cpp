#include "kernels/model/gguf_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

namespace bastion::kernels::gguf {
namespace {

constexpr std::uint32_t gguf_magic = 0x46554747;  // "GGUF" little-endian

// Bounds-checked little-endian cursor over the mapped bytes. Every read checks the remaining
// length first; `fail` records the first problem with the byte offset where it happened.
class cursor {
 public:
  cursor(const std::uint8_t* base, std::uint64_t size) : base_(base), size_(size) {}

  std::uint64_t offset() const noexcept { return pos_; }
  std::uint64_t remaining() const noexcept { return size_ - pos_; }

  bool read_bytes(void* out, std::uint64_t n) {
    if (n > remaining()) return false;
    std::memcpy(out, base_ + pos_, n);
    pos_ += n;
    return true;
  }
  template <class T>
  bool read(T& out) {
    return read_bytes(&out, sizeof(T));  // GGUF is little-endian, as is every host we support
  }
  bool read_string(std::string& out, std::uint64_t max_len, std::string& why) {
    std::uint64_t len = 0;
    if (!read(len)) {
      why = "string length runs past the end of the file";
      return false;
    }
    if (len > max_len) {
      why = "string of " + std::to_string(len) + " bytes exceeds the limit of " +
            std::to_string(max_len);
      return false;
    }
    if (len > remaining()) {
      why = "string of " + std::to_string(len) + " bytes runs past the end of the file";
      return false;
    }
    out.assign(reinterpret_cast<const char*>(base_ + pos_), static_cast<std::size_t>(len));
    pos_ += len;
    return true;
  }

 private:
  const std::uint8_t* base_;
  std::uint64_t size_;
  std::uint64_t pos_ = 0;
};

std::uint64_t scalar_size(value_type t) {
  switch (t) {
    case value_type::u8:
    case value_type::i8:
    case value_type::boolean:
      return 1;
    case value_type::u16:
    case value_type::i16:
      return 2;
    case value_type::u32:
    case value_type::i32:
    case value_type::f32:
      return 4;
    case value_type::u64:
    case value_type::i64:
    case value_type::f64:
      return 8;
    default:
      return 0;
  }
}

bool known_type(std::uint32_t t) { return t <= static_cast<std::uint32_t>(value_type::f64); }

// Reads one scalar of type t into the value's u/i/f fields.
bool read_scalar(cursor& c, value_type t, metadata_value& v) {
  switch (t) {
    case value_type::u8: {
      std::uint8_t x;
      if (!c.read(x)) return false;
      v.u = x;
      v.i = x;
      return true;
    }
    case value_type::i8: {
      std::int8_t x;
      if (!c.read(x)) return false;
      v.i = static_cast<std::int64_t>(
          x);  // NOLINT(bugprone-signed-char-misuse): sign extension intended
      v.u = static_cast<std::uint64_t>(v.i);
      return true;
    }
    case value_type::u16: {
      std::uint16_t x;
      if (!c.read(x)) return false;
      v.u = x;
      v.i = x;
      return true;
    }
    case value_type::i16: {
      std::int16_t x;
      if (!c.read(x)) return false;
      v.i = x;
      v.u = static_cast<std::uint64_t>(x);
      return true;
    }
    case value_type::u32: {
      std::uint32_t x;
      if (!c.read(x)) return false;
      v.u = x;
      v.i = x;
      return true;
    }
    case value_type::i32: {
      std::int32_t x;
      if (!c.read(x)) return false;
      v.i = x;
      v.u = static_cast<std::uint64_t>(x);
      return true;
    }
    case value_type::u64: {
      std::uint64_t x;
      if (!c.read(x)) return false;
      v.u = x;
      v.i = static_cast<std::int64_t>(x);
      return true;
    }
    case value_type::i64: {
      std::int64_t x;
      if (!c.read(x)) return false;
      v.i = x;
      v.u = static_cast<std::uint64_t>(x);
      return true;
    }
    case value_type::f32: {
      float x;
      if (!c.read(x)) return false;
      v.f = static_cast<double>(x);
      return true;
    }
    case value_type::f64: {
      double x;
      if (!c.read(x)) return false;
      v.f = x;
      return true;
    }
    case value_type::boolean: {
      std::uint8_t x;
      if (!c.read(x)) return false;
      v.u = x;
      v.i = x;
      return x <= 1;
    }
    default:
      return false;
  }
}

}  // namespace

file::~file() {
  if (mapping_) ::munmap(mapping_, static_cast<std::size_t>(size_));
}

status file::open(const std::string& path, std::unique_ptr<file>& out, const open_limits& lim) {
  auto fail = [&](const std::string& why) {
    return status{status_code::invalid_argument, path + ": " + why};
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(std::string{"cannot open: "} + errno_message(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return fail(std::string{"cannot stat: "} + errno_message(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return fail("not a regular file");
  }
  std::unique_ptr<file> f{new file()};
  f->path_ = path;
  f->size_ = static_cast<std::uint64_t>(st.st_size);
  if (f->size_ < 24) {
    ::close(fd);
    return fail("file of " + std::to_string(f->size_) + " bytes is too short for a GGUF header");
  }
  f->mapping_ = ::mmap(nullptr, static_cast<std::size_t>(f->size_), PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (f->mapping_ == MAP_FAILED) {
    f->mapping_ = nullptr;
    return fail(std::string{"cannot map: "} + errno_message(errno));
  }
  const auto* base = static_cast<const std::uint8_t*>(f->mapping_);
  cursor c{base, f->size_};
  auto at = [&](const std::string& why) {
    return fail(why + " (at byte " + std::to_string(c.offset()) + ")");
  };

  std::uint32_t magic = 0;
  (void)c.read(magic);
  if (magic != gguf_magic) return fail("not a GGUF file (bad magic)");
  (void)c.read(f->version_);
  if (f->version_ != 2 && f->version_ != 3)
    return fail("GGUF version " + std::to_string(f->version_) + " is not supported (2 and 3 are)");
  std::uint64_t n_tensors = 0, n_kv = 0;
  (void)c.read(n_tensors);
  (void)c.read(n_kv);
  if (n_kv > lim.metadata_kv_max)
    return fail("declares " + std::to_string(n_kv) + " metadata entries, limit " +
                std::to_string(lim.metadata_kv_max));
  if (n_tensors > lim.tensor_count_max)
    return fail("declares " + std::to_string(n_tensors) + " tensors, limit " +
                std::to_string(lim.tensor_count_max));

  for (std::uint64_t k = 0; k < n_kv; ++k) {
    std::string key, why;
    if (!c.read_string(key, lim.string_bytes_max, why))
      return at("metadata entry " + std::to_string(k) + ": key: " + why);
    std::uint32_t raw_type = 0;
    if (!c.read(raw_type)) return at("metadata '" + key + "': type runs past the end");
    if (!known_type(raw_type))
      return at("metadata '" + key + "': unknown value type " + std::to_string(raw_type));
    metadata_value v;
    v.type = static_cast<value_type>(raw_type);
    if (v.type == value_type::string) {
      if (!c.read_string(v.s, lim.string_bytes_max, why))
        return at("metadata '" + key + "': " + why);
    } else if (v.type == value_type::array) {
      std::uint32_t raw_elem = 0;
      std::uint64_t count = 0;
      if (!c.read(raw_elem) || !c.read(count))
        return at("metadata '" + key + "': array header runs past the end");
      if (!known_type(raw_elem) || raw_elem == static_cast<std::uint32_t>(value_type::array))
        return at("metadata '" + key + "': unsupported array element type " +
                  std::to_string(raw_elem));
      v.array_type = static_cast<value_type>(raw_elem);
      // Each element takes at least one byte (strings at least 8): a count the rest of the
      // file cannot hold is refused before anything is allocated for it.
      const std::uint64_t min_elem =
          v.array_type == value_type::string ? 8 : scalar_size(v.array_type);
      if (count > lim.array_elems_max || count > c.remaining() / min_elem)
        return at("metadata '" + key + "': array of " + std::to_string(count) +
                  " elements exceeds the limit or the file");
      if (v.array_type == value_type::string) {
        v.strings.resize(static_cast<std::size_t>(count));
        for (auto& s : v.strings)
          if (!c.read_string(s, lim.string_bytes_max, why))
            return at("metadata '" + key + "': " + why);
      } else {
        const bool is_float = v.array_type == value_type::f32 || v.array_type == value_type::f64;
        (is_float ? v.floats.reserve(count) : v.ints.reserve(count));
        for (std::uint64_t e = 0; e < count; ++e) {
          metadata_value elem;
          if (!read_scalar(c, v.array_type, elem))
            return at("metadata '" + key + "': bad array element " + std::to_string(e));
          if (is_float)
            v.floats.push_back(elem.f);
          else
            v.ints.push_back(elem.i);
        }
      }
    } else if (!read_scalar(c, v.type, v)) {
      return at("metadata '" + key + "': value runs past the end or is invalid");
    }
    if (!f->metadata_.emplace(key, std::move(v)).second)
      return at("metadata key '" + key + "' appears twice");
  }

  if (const auto* a = f->find("general.alignment")) {
    if (a->type != value_type::u32 || a->u == 0 || (a->u & (a->u - 1)) != 0 || a->u > 65536)
      return fail("general.alignment must be a power of two u32 up to 65536");
    f->alignment_ = a->u;
  }

  f->tensors_.reserve(
      static_cast<std::size_t>(std::min<std::uint64_t>(n_tensors, c.remaining() / 24)));
  for (std::uint64_t t = 0; t < n_tensors; ++t) {
    tensor_info info;
    std::string why;
    if (!c.read_string(info.name, lim.string_bytes_max, why))
      return at("tensor " + std::to_string(t) + ": name: " + why);
    const std::string tname = "tensor '" + info.name + "'";
    std::uint32_t n_dims = 0;
    if (!c.read(n_dims)) return at(tname + ": header runs past the end");
    if (n_dims == 0 || n_dims > lim.dims_max)
      return at(tname + ": " + std::to_string(n_dims) + " dimensions (1 to " +
                std::to_string(lim.dims_max) + " allowed)");
    std::uint64_t n = 1;
    for (std::uint32_t d = 0; d < n_dims; ++d) {
      std::uint64_t dim = 0;
      if (!c.read(dim)) return at(tname + ": dimensions run past the end");
      if (dim == 0 || dim > (std::uint64_t{1} << 40) ||
          n > std::numeric_limits<std::uint64_t>::max() / dim)
        return at(tname + ": dimension " + std::to_string(d) + " = " + std::to_string(dim) +
                  " is zero, absurd or overflows");
      n *= dim;
      info.dims.push_back(static_cast<std::int64_t>(dim));
    }
    std::uint32_t raw_type = 0;
    if (!c.read(raw_type) || !c.read(info.offset)) return at(tname + ": header runs past the end");
    if (!traits_of(raw_type))
      return at(tname + ": tensor type " + std::string{ggml_type_name(raw_type)} + " (" +
                std::to_string(raw_type) + ") is not supported");
    info.type = static_cast<tensor_type>(raw_type);
    info.n_elements = n;
    const auto bytes = row_bytes(info.type, n);
    if (!bytes || info.dims[0] % traits_of(raw_type)->block_elems != 0)
      return at(tname + ": " + std::to_string(n) + " elements of " +
                std::string{ggml_type_name(raw_type)} +
                " do not form whole blocks along the first dimension");
    info.n_bytes = *bytes;
    if (info.offset % f->alignment_ != 0)
      return at(tname + ": data offset " + std::to_string(info.offset) + " is not aligned to " +
                std::to_string(f->alignment_));
    if (f->tensor_index_.count(info.name)) return at(tname + " appears twice");
    f->tensor_index_.emplace(info.name, f->tensors_.size());
    f->tensors_.push_back(std::move(info));
  }

  const std::uint64_t data_start = (c.offset() + f->alignment_ - 1) / f->alignment_ * f->alignment_;
  if (data_start > f->size_) return fail("tensor data section starts past the end of the file");
  const std::uint64_t data_size = f->size_ - data_start;
  for (const auto& t : f->tensors_) {
    if (t.offset > data_size || t.n_bytes > data_size - t.offset)
      return fail("tensor '" + t.name + "': data [" + std::to_string(t.offset) + ", " +
                  std::to_string(t.offset + t.n_bytes) + ") lies outside the data section of " +
                  std::to_string(data_size) + " bytes (file truncated?)");
  }
  f->data_ = base + data_start;
  out = std::move(f);
  return status::ok();
}

const metadata_value* file::find(std::string_view key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

const tensor_info* file::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

status missing(const std::string& path, std::string_view key, const char* want) {
  return {status_code::invalid_argument,
          path + ": metadata '" + std::string{key} + "' is missing or not " + want};
}

bool is_integer(value_type t) {
  return t == value_type::u8 || t == value_type::i8 || t == value_type::u16 ||
         t == value_type::i16 || t == value_type::u32 || t == value_type::i32 ||
         t == value_type::u64 || t == value_type::i64;
}

bool is_signed(value_type t) {
  return t == value_type::i8 || t == value_type::i16 || t == value_type::i32 ||
         t == value_type::i64;
}

}  // namespace

status file::get_uint(std::string_view key, std::uint64_t& out) const {
  const auto* v = find(key);
  if (!v || !is_integer(v->type) || (is_signed(v->type) && v->i < 0))
    return missing(path_, key, "a non-negative integer");
  out = v->u;
  return status::ok();
}

status file::get_float(std::string_view key, double& out) const {
  const auto* v = find(key);
  if (!v) return missing(path_, key, "a number");
  if (v->type == value_type::f32 || v->type == value_type::f64)
    out = v->f;
  else if (is_integer(v->type))
    out = static_cast<double>(v->i);
  else
    return missing(path_, key, "a number");
  return status::ok();
}

status file::get_string(std::string_view key, std::string& out) const {
  const auto* v = find(key);
  if (!v || v->type != value_type::string) return missing(path_, key, "a string");
  out = v->s;
  return status::ok();
}

status file::get_bool(std::string_view key, bool& out) const {
  const auto* v = find(key);
  if (!v || v->type != value_type::boolean) return missing(path_, key, "a bool");
  out = v->u != 0;
  return status::ok();
}

status file::get_strings(std::string_view key, const std::vector<std::string>*& out) const {
  const auto* v = find(key);
  if (!v || v->type != value_type::array || v->array_type != value_type::string)
    return missing(path_, key, "an array of strings");
  out = &v->strings;
  return status::ok();
}

status file::get_ints(std::string_view key, const std::vector<std::int64_t>*& out) const {
  const auto* v = find(key);
  if (!v || v->type != value_type::array || !is_integer(v->array_type))
    return missing(path_, key, "an array of integers");
  out = &v->ints;
  return status::ok();
}

}  // namespace bastion::kernels::gguf
