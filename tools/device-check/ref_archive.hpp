// The device-check kit's reference files: named arrays (float32, float64, uint8, uint16, int64)
// with their dimensions, one after another in one file. Written here by upframe_device_refs
// (the CPU executor, FFmpeg's decoders, the CPU detector), read on the GPU machine by
// upframe_device_check, which has neither. Plain C++ with no dependency; little-endian hosts
// (both ends are x86-64).
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace upframe::device_check {

enum class RefType : uint8_t { kF32 = 1, kF64 = 2, kU8 = 3, kU16 = 4, kI64 = 5 };

inline size_t ref_type_size(RefType t) {
  switch (t) {
    case RefType::kF32:
      return 4;
    case RefType::kF64:
    case RefType::kI64:
      return 8;
    case RefType::kU8:
      return 1;
    case RefType::kU16:
      return 2;
  }
  return 0;
}

template <class T>
constexpr RefType ref_type_of();
template <>
constexpr RefType ref_type_of<float>() {
  return RefType::kF32;
}
template <>
constexpr RefType ref_type_of<double>() {
  return RefType::kF64;
}
template <>
constexpr RefType ref_type_of<uint8_t>() {
  return RefType::kU8;
}
template <>
constexpr RefType ref_type_of<uint16_t>() {
  return RefType::kU16;
}
template <>
constexpr RefType ref_type_of<int64_t>() {
  return RefType::kI64;
}

struct RefArray {
  RefType type = RefType::kF32;
  std::vector<int64_t> dims;
  std::vector<uint8_t> bytes;

  size_t count() const { return bytes.size() / ref_type_size(type); }
  template <class T>
  std::vector<T> values() const {
    if (type != ref_type_of<T>()) throw std::runtime_error("reference array of another type");
    std::vector<T> out(count());
    if (!out.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
    return out;
  }
};

// Arrays by name, in name order (the file is written in that order, so two archives with the
// same contents are the same bytes).
class RefArchive {
 public:
  template <class T>
  void put(const std::string& name, const std::vector<T>& values, std::vector<int64_t> dims = {}) {
    RefArray a;
    a.type = ref_type_of<T>();
    a.dims = dims.empty() ? std::vector<int64_t>{int64_t(values.size())} : std::move(dims);
    a.bytes.resize(values.size() * sizeof(T));
    if (!values.empty()) std::memcpy(a.bytes.data(), values.data(), a.bytes.size());
    arrays_[name] = std::move(a);
  }

  bool has(const std::string& name) const { return arrays_.count(name) != 0; }
  const RefArray& at(const std::string& name) const {
    auto it = arrays_.find(name);
    if (it == arrays_.end()) throw std::runtime_error(path_ + ": no array '" + name + "'");
    return it->second;
  }
  template <class T>
  std::vector<T> get(const std::string& name) const {
    return at(name).values<T>();
  }
  const std::map<std::string, RefArray>& arrays() const { return arrays_; }

  void save(const std::string& path) const {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(kMagic, sizeof kMagic);
    for (const auto& [name, a] : arrays_) {
      write_u64(out, name.size());
      out.write(name.data(), std::streamsize(name.size()));
      out.put(char(a.type));
      write_u64(out, a.dims.size());
      for (int64_t d : a.dims) write_u64(out, uint64_t(d));
      write_u64(out, a.bytes.size());
      out.write(reinterpret_cast<const char*>(a.bytes.data()), std::streamsize(a.bytes.size()));
    }
    if (!out) throw std::runtime_error(path + ": cannot write");
  }

  static RefArchive load(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error(path + ": cannot open");
    char magic[sizeof kMagic];
    in.read(magic, sizeof magic);
    if (!in || std::memcmp(magic, kMagic, sizeof kMagic) != 0)
      throw std::runtime_error(path + ": not a device-check reference file");
    RefArchive archive;
    archive.path_ = path;
    while (in.peek() != EOF) {
      const uint64_t name_size = read_u64(in, path);
      if (name_size > 4096) throw std::runtime_error(path + ": corrupt (name size)");
      std::string name(name_size, '\0');
      in.read(name.data(), std::streamsize(name_size));
      RefArray a;
      a.type = RefType(in.get());
      if (ref_type_size(a.type) == 0) throw std::runtime_error(path + ": corrupt (type)");
      const uint64_t ndims = read_u64(in, path);
      if (ndims > 8) throw std::runtime_error(path + ": corrupt (dims)");
      for (uint64_t i = 0; i < ndims; ++i) a.dims.push_back(int64_t(read_u64(in, path)));
      const uint64_t size = read_u64(in, path);
      if (size > (uint64_t(1) << 32)) throw std::runtime_error(path + ": corrupt (size)");
      a.bytes.resize(size);
      in.read(reinterpret_cast<char*>(a.bytes.data()), std::streamsize(size));
      if (!in) throw std::runtime_error(path + ": truncated at '" + name + "'");
      archive.arrays_[name] = std::move(a);
    }
    return archive;
  }

 private:
  static constexpr char kMagic[8] = {'U', 'P', 'F', 'R', 'E', 'F', '1', '\n'};
  static void write_u64(std::ofstream& out, uint64_t v) {
    out.write(reinterpret_cast<const char*>(&v), sizeof v);
  }
  static uint64_t read_u64(std::ifstream& in, const std::string& path) {
    uint64_t v = 0;
    in.read(reinterpret_cast<char*>(&v), sizeof v);
    if (!in) throw std::runtime_error(path + ": truncated");
    return v;
  }
  std::map<std::string, RefArray> arrays_;
  std::string path_;
};

}  // namespace upframe::device_check
