// PyTorch (zip and legacy) and safetensors files into a StateDict. Layouts:
// - zip (torch >= 1.6): `PREFIX/data.pkl` (the object, storages as persistent ids
//   ('storage', type, key, location, numel)) and `PREFIX/data/KEY` (each storage's raw bytes).
// - legacy (torch.save(..., _use_new_zipfile_serialization=False), 2019-2021 models): five
//   pickles and raw data in one stream: magic number, protocol version, system info, the object
//   (ids ('storage', type, key, location, numel, view)), the list of storage keys, then per key
//   an int64 element count and the bytes.
// - safetensors: u64 header length, a JSON header (dtype, shape, data_offsets per tensor), data.
#include "upframe/weights/state_dict.hpp"

#include <zip.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <fstream>
#include <functional>
#include <set>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

#include "upframe/weights/float16.hpp"
#include "pickle.hpp"
#include "upframe/error.hpp"

namespace upframe::weights {

namespace {

// Far above any upscaling model (the largest ESRGANs hold ~17 M parameters), low enough that a
// damaged size field cannot ask for the machine's memory.
constexpr int64_t kMaxTensorElements = int64_t{1} << 30;
constexpr uint64_t kMaxHeaderBytes = 100u << 20;

size_t element_size(DType dtype) {
  switch (dtype) {
    case DType::kF64:
    case DType::kI64:
      return 8;
    case DType::kF32:
    case DType::kI32:
      return 4;
    case DType::kF16:
    case DType::kBF16:
      return 2;
    case DType::kU8:
    case DType::kBool:
      return 1;
  }
  return 1;
}

float element_as_float(const uint8_t* p, DType dtype) {
  switch (dtype) {
    case DType::kF32: {
      float v;
      std::memcpy(&v, p, 4);
      return v;
    }
    case DType::kF16: {
      uint16_t v;
      std::memcpy(&v, p, 2);
      return half_to_float(v);
    }
    case DType::kBF16: {
      uint16_t v;
      std::memcpy(&v, p, 2);
      return bf16_to_float(v);
    }
    case DType::kF64: {
      double v;
      std::memcpy(&v, p, 8);
      return static_cast<float>(v);
    }
    case DType::kI64: {
      int64_t v;
      std::memcpy(&v, p, 8);
      return static_cast<float>(v);
    }
    case DType::kI32: {
      int32_t v;
      std::memcpy(&v, p, 4);
      return static_cast<float>(v);
    }
    case DType::kU8:
    case DType::kBool:
      return *p;
  }
  return 0;
}

int64_t checked_numel(const std::vector<int64_t>& shape, const std::string& name,
                      const std::string& tensor) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw Error(name, "tensor '" + tensor + "' has a negative dimension");
    if (d != 0 && n > kMaxTensorElements / d)
      throw Error(name, "tensor '" + tensor + "' is too large");
    n *= d;
  }
  return n;
}

// Copies a strided view of a storage into a contiguous float tensor, every index checked
// against the storage first.
Tensor materialize(const TensorView& view, std::span<const uint8_t> storage,
                   const std::string& name, const std::string& tensor_name) {
  const DType dtype = view.storage.dtype;
  const size_t esize = element_size(dtype);
  const int64_t storage_numel = static_cast<int64_t>(storage.size() / esize);
  Tensor out;
  out.shape = view.shape;
  out.stored = dtype;
  const int64_t numel = checked_numel(view.shape, name, tensor_name);
  if (numel == 0) return out;
  // Lowest and highest element the view reaches.
  int64_t low = view.offset, high = view.offset;
  for (size_t d = 0; d < view.shape.size(); ++d) {
    const int64_t stride = view.stride[d];
    if (stride > kMaxTensorElements || stride < -kMaxTensorElements)
      throw Error(name, "tensor '" + tensor_name + "' has an impossible stride");
    (stride < 0 ? low : high) += (view.shape[d] - 1) * stride;
  }
  if (view.offset < 0 || low < 0 || high >= storage_numel)
    throw Error(name, "tensor '" + tensor_name + "' reaches outside its storage");
  out.values.resize(static_cast<size_t>(numel));
  std::vector<int64_t> index(view.shape.size(), 0);
  int64_t offset = view.offset;
  for (int64_t i = 0; i < numel; ++i) {
    out.values[static_cast<size_t>(i)] =
        element_as_float(storage.data() + static_cast<size_t>(offset) * esize, dtype);
    // Advance the row-major index, keeping the storage offset in step.
    for (size_t d = view.shape.size(); d-- > 0;) {
      offset += view.stride[d];
      if (++index[d] < view.shape[d]) break;
      offset -= view.stride[d] * view.shape[d];
      index[d] = 0;
    }
  }
  return out;
}

// Wrappers training frameworks put around the state dict, in the order they are preferred
// (Real-ESRGAN's own inference takes params_ema before params).
constexpr std::string_view kWrapperKeys[] = {"params_ema", "params", "state_dict",
                                             "model",      "net_g",  "generator"};

bool is_string_key(const PickleValue& key, std::string_view text) {
  return key.kind == PickleValue::Kind::kString && key.text == text;
}

bool holds_tensors(const PickleValue& dict) {
  return std::any_of(dict.entries.begin(), dict.entries.end(), [](const auto& entry) {
    return entry.second->kind == PickleValue::Kind::kTensor;
  });
}

// Finds the dict of tensors in a checkpoint's object and materialises its tensors.
template <typename StorageBytes>
StateDict collect(const PickleValue& root, const std::string& name, std::string format,
                  const StorageBytes& storage_bytes) {
  if (root.kind != PickleValue::Kind::kDict)
    throw Error(name, "the checkpoint holds no dict of tensors");
  StateDict dict;
  dict.format = std::move(format);
  const PickleValue* tensors = &root;
  for (std::string_view wrapper : kWrapperKeys) {
    auto it = std::find_if(root.entries.begin(), root.entries.end(), [&](const auto& entry) {
      return is_string_key(*entry.first, wrapper) &&
             entry.second->kind == PickleValue::Kind::kDict && holds_tensors(*entry.second);
    });
    if (it != root.entries.end()) {
      tensors = it->second;
      dict.wrapper = wrapper;
      break;
    }
  }
  for (const auto& [key, value] : tensors->entries) {
    if (key->kind != PickleValue::Kind::kString || value->kind != PickleValue::Kind::kTensor)
      continue;  // epoch counters, optimizer state, metadata
    const TensorView& view = value->tensor;
    dict.tensors.emplace_back(key->text,
                              materialize(view, storage_bytes(view.storage), name, key->text));
  }
  if (dict.tensors.empty()) throw Error(name, "the checkpoint holds no tensors");
  // DataParallel checkpoints prefix every key with "module.".
  const bool all_module = std::all_of(dict.tensors.begin(), dict.tensors.end(), [](const auto& t) {
    return t.first.rfind("module.", 0) == 0;
  });
  if (all_module)
    for (auto& t : dict.tensors) t.first.erase(0, 7);
  return dict;
}

// A persistent id ('storage', StorageType, key, location, numel[, view]) as a storage.
PickleRef load_storage(const PickleValue& id, PickleArena& arena, const std::string& name,
                       bool legacy) {
  using K = PickleValue::Kind;
  if (id.kind != K::kTuple || id.items.size() < 5 || !is_string_key(*id.items[0], "storage"))
    throw Error(name, "pickle: unexpected persistent id (not a storage)");
  if (id.items[1]->kind != K::kStorageType)
    throw Error(name, "pickle: storage of an unknown type");
  PickleRef storage = arena.make(K::kStorage);
  storage->storage.dtype = id.items[1]->dtype;
  const PickleValue& key = *id.items[2];
  if (key.kind == K::kString)
    storage->storage.key = key.text;
  else if (key.kind == K::kInt)
    storage->storage.key = std::to_string(key.integer);
  else
    throw Error(name, "pickle: storage key is not a string");
  if (id.items[4]->kind == K::kInt) storage->storage.numel = id.items[4]->integer;
  if (legacy && id.items.size() > 5 && id.items[5]->kind != K::kNone)
    throw Error(name, "legacy storage views are not supported");
  return storage;
}

std::vector<uint8_t> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string(), "cannot open the model file");
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) throw Error(path.string(), "cannot read the model file");
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  in.seekg(0);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), size))
    throw Error(path.string(), "cannot read the model file");
  return bytes;
}

class ZipArchive {
 public:
  ZipArchive(std::span<const uint8_t> bytes, const std::string& name) : name_(name) {
    zip_error_t error;
    zip_error_init(&error);
    zip_source_t* source = zip_source_buffer_create(bytes.data(), bytes.size(), 0, &error);
    if (source) archive_ = zip_open_from_source(source, ZIP_RDONLY | ZIP_CHECKCONS, &error);
    if (!archive_) {
      const std::string why = zip_error_strerror(&error);
      if (source) zip_source_free(source);
      zip_error_fini(&error);
      throw Error(name, "not a readable zip archive (" + why + ")");
    }
    zip_error_fini(&error);
  }
  ~ZipArchive() {
    if (archive_) zip_discard(archive_);
  }
  ZipArchive(const ZipArchive&) = delete;
  ZipArchive& operator=(const ZipArchive&) = delete;

  std::vector<std::string> names() const {
    std::vector<std::string> out;
    const zip_int64_t n = zip_get_num_entries(archive_, 0);
    for (zip_int64_t i = 0; i < n; ++i)
      if (const char* entry = zip_get_name(archive_, static_cast<zip_uint64_t>(i), 0))
        out.emplace_back(entry);
    return out;
  }

  // Empty optional-like: `found` false when there is no such entry.
  std::vector<uint8_t> read(const std::string& entry, bool* found) const {
    zip_stat_t stat;
    zip_stat_init(&stat);
    *found = zip_stat(archive_, entry.c_str(), 0, &stat) == 0;
    if (!*found) return {};
    if (!(stat.valid & ZIP_STAT_SIZE) || stat.size > (uint64_t{1} << 33))
      throw Error(name_, "zip entry '" + entry + "' has no usable size");
    zip_file_t* file = zip_fopen(archive_, entry.c_str(), 0);
    if (!file) throw Error(name_, "cannot open zip entry '" + entry + "'");
    // Read in chunks, not into a buffer of the declared size: a damaged or hostile header can
    // declare gigabytes the entry does not hold (found by fuzz_weights).
    constexpr uint64_t kChunk = uint64_t{16} << 20;
    std::vector<uint8_t> bytes;
    bool damaged = false;
    while (bytes.size() < stat.size) {
      const uint64_t want = std::min<uint64_t>(kChunk, stat.size - bytes.size());
      const size_t at = bytes.size();
      bytes.resize(at + want);
      const zip_int64_t got = zip_fread(file, bytes.data() + at, want);
      if (got < 0 || static_cast<uint64_t>(got) != want) {
        damaged = true;
        break;
      }
    }
    zip_fclose(file);
    if (damaged) throw Error(name_, "zip entry '" + entry + "' is damaged");
    return bytes;
  }

 private:
  std::string name_;
  zip_t* archive_ = nullptr;
};

}  // namespace

std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "fp32";
    case DType::kF16: return "fp16";
    case DType::kBF16: return "bf16";
    case DType::kF64: return "fp64";
    case DType::kI64: return "int64";
    case DType::kI32: return "int32";
    case DType::kU8: return "uint8";
    case DType::kBool: return "bool";
  }
  return "?";
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

const Tensor* StateDict::find(std::string_view name) const {
  for (const auto& [key, tensor] : tensors)
    if (key == name) return &tensor;
  return nullptr;
}

int64_t StateDict::parameter_count() const {
  int64_t n = 0;
  for (const auto& [key, tensor] : tensors) n += tensor.numel();
  return n;
}

StateDict parse_torch_zip(std::span<const uint8_t> bytes, const std::string& name) {
  ZipArchive zip(bytes, name);
  std::string prefix;
  bool found_pickle = false;
  for (const std::string& entry : zip.names()) {
    const size_t slash = entry.find('/');
    if (slash != std::string::npos && entry.compare(slash + 1, std::string::npos, "data.pkl") == 0) {
      prefix = entry.substr(0, slash + 1);
      found_pickle = true;
      break;
    }
  }
  if (!found_pickle) throw Error(name, "zip archive without data.pkl: not a PyTorch file");
  bool found = false;
  const std::vector<uint8_t> pickle = zip.read(prefix + "data.pkl", &found);
  PickleArena arena;
  size_t pos = 0;
  const PickleRef root = unpickle(
      pickle, &pos,
      [&](const PickleValue& id, PickleArena& a) { return load_storage(id, a, name, false); },
      name, arena);
  std::map<std::string, std::vector<uint8_t>> storages;
  auto storage_bytes = [&](const StorageRef& ref) -> std::span<const uint8_t> {
    auto it = storages.find(ref.key);
    if (it == storages.end()) {
      bool present = false;
      std::vector<uint8_t> data = zip.read(prefix + "data/" + ref.key, &present);
      if (!present) throw Error(name, "storage '" + ref.key + "' is missing from the archive");
      it = storages.emplace(ref.key, std::move(data)).first;
    }
    return it->second;
  };
  return collect(*root, name, "pytorch-zip", storage_bytes);
}

StateDict parse_torch_legacy(std::span<const uint8_t> bytes, const std::string& name) {
  using K = PickleValue::Kind;
  PickleArena arena;
  size_t pos = 0;
  const PersistentLoad no_ids = [&](const PickleValue&, PickleArena&) -> PickleRef {
    throw Error(name, "pickle: unexpected persistent id in the file header");
  };
  // The magic number 0x1950a86a20f9469cfc6c, of which the unpickler keeps the low 64 bits.
  const PickleRef magic = unpickle(bytes, &pos, no_ids, name, arena);
  if (magic->kind != K::kInt || static_cast<uint64_t>(magic->integer) != 0xa86a20f9469cfc6cull)
    throw Error(name, "not a PyTorch file (no magic number)");
  const PickleRef version = unpickle(bytes, &pos, no_ids, name, arena);
  if (version->kind != K::kInt || version->integer != 1001)
    throw Error(name, "unsupported PyTorch legacy format version");
  unpickle(bytes, &pos, no_ids, name, arena);  // system info (endianness, type sizes)
  const PickleRef root = unpickle(
      bytes, &pos,
      [&](const PickleValue& id, PickleArena& a) { return load_storage(id, a, name, true); },
      name, arena);
  const PickleRef keys = unpickle(bytes, &pos, no_ids, name, arena);
  if (keys->kind != K::kList) throw Error(name, "legacy storage key list is missing");
  // The storages follow in the key list's order: int64 element count, then the elements. The
  // element size comes from the storage's type, known from the object pickle.
  std::map<std::string, DType> types;
  std::vector<std::pair<std::string, std::span<const uint8_t>>> found;
  // Each value once (a pickle's memo can share values and make cycles), and not too deep.
  std::set<const PickleValue*> seen;
  std::function<void(const PickleValue&, int)> note_types = [&](const PickleValue& v, int depth) {
    if (depth > 64 || !seen.insert(&v).second) return;
    if (v.kind == K::kTensor) types[v.tensor.storage.key] = v.tensor.storage.dtype;
    for (PickleRef item : v.items) note_types(*item, depth + 1);
    for (const auto& [k, value] : v.entries) note_types(*value, depth + 1);
  };
  note_types(*root, 0);
  std::map<std::string, std::span<const uint8_t>> storages;
  for (PickleRef key : keys->items) {
    if (key->kind != K::kString) throw Error(name, "legacy storage key is not a string");
    if (bytes.size() - pos < 8) throw Error(name, "truncated: storage '" + key->text + "'");
    uint64_t count = 0;
    std::memcpy(&count, bytes.data() + pos, 8);
    pos += 8;
    auto type = types.find(key->text);
    const size_t esize = element_size(type == types.end() ? DType::kF32 : type->second);
    if (count > static_cast<uint64_t>(kMaxTensorElements) || count * esize > bytes.size() - pos)
      throw Error(name, "truncated: storage '" + key->text + "'");
    storages[key->text] = bytes.subspan(pos, count * esize);
    pos += count * esize;
  }
  auto storage_bytes = [&](const StorageRef& ref) -> std::span<const uint8_t> {
    auto it = storages.find(ref.key);
    if (it == storages.end()) throw Error(name, "storage '" + ref.key + "' is missing");
    return it->second;
  };
  return collect(*root, name, "pytorch-legacy", storage_bytes);
}

StateDict parse_safetensors(std::span<const uint8_t> bytes, const std::string& name) {
  if (bytes.size() < 8) throw Error(name, "truncated safetensors header");
  uint64_t header_size = 0;
  std::memcpy(&header_size, bytes.data(), 8);
  if (header_size > kMaxHeaderBytes || header_size > bytes.size() - 8)
    throw Error(name, "safetensors header length out of bounds");
  const auto header_text = std::string_view(reinterpret_cast<const char*>(bytes.data() + 8),
                                            static_cast<size_t>(header_size));
  const std::span<const uint8_t> data = bytes.subspan(8 + static_cast<size_t>(header_size));
  nlohmann::ordered_json header;
  try {
    header = nlohmann::ordered_json::parse(header_text);
  } catch (const nlohmann::json::exception&) {
    throw Error(name, "safetensors header is not valid JSON");
  }
  if (!header.is_object()) throw Error(name, "safetensors header is not a JSON object");
  static const std::map<std::string, DType, std::less<>> kTypes = {
      {"F32", DType::kF32}, {"F16", DType::kF16}, {"BF16", DType::kBF16},
      {"F64", DType::kF64}, {"I64", DType::kI64}, {"I32", DType::kI32},
      {"U8", DType::kU8},   {"BOOL", DType::kBool}};
  StateDict dict;
  dict.format = "safetensors";
  for (const auto& item : header.items()) {
    const std::string& key = item.key();  // a plain name: clang 14 cannot capture a binding
    const auto& entry = item.value();
    if (key == "__metadata__") continue;
    auto bad = [&](const std::string& what) {
      return Error(name, "safetensors tensor '" + key.substr(0, 80) + "': " + what);
    };
    if (!entry.is_object()) throw bad("entry is not an object");
    const auto dtype_it = entry.find("dtype");
    const auto shape_it = entry.find("shape");
    const auto offsets_it = entry.find("data_offsets");
    if (dtype_it == entry.end() || !dtype_it->is_string()) throw bad("no dtype");
    const auto type = kTypes.find(dtype_it->get<std::string>());
    if (type == kTypes.end()) throw bad("unsupported dtype " + dtype_it->get<std::string>());
    if (shape_it == entry.end() || !shape_it->is_array()) throw bad("no shape");
    if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2)
      throw bad("no data_offsets");
    TensorView view;
    view.storage.dtype = type->second;
    for (const auto& d : *shape_it) {
      if (!d.is_number_unsigned()) throw bad("shape is not a list of sizes");
      if (d.get<uint64_t>() > static_cast<uint64_t>(kMaxTensorElements)) throw bad("too large");
      view.shape.push_back(d.get<int64_t>());
    }
    const auto& offsets = *offsets_it;
    if (!offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned())
      throw bad("data_offsets are not sizes");
    const uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
    if (begin > end || end > data.size()) throw bad("data_offsets outside the file");
    const int64_t numel = checked_numel(view.shape, name, key);
    if (end - begin != static_cast<uint64_t>(numel) * element_size(view.storage.dtype))
      throw bad("data size does not match its shape and dtype");
    // Contiguous, row-major.
    view.stride.assign(view.shape.size(), 1);
    for (size_t d = view.shape.size(); d-- > 1;)
      view.stride[d - 1] = view.stride[d] * view.shape[d];
    dict.tensors.emplace_back(key, materialize(view, data.subspan(begin, end - begin), name, key));
  }
  if (dict.tensors.empty()) throw Error(name, "the safetensors file holds no tensors");
  return dict;
}

namespace {

// A safetensors header: its length (u64, below the limit) then '{'. Tested before the pickle's
// 0x80: a header length whose low byte is 0x80 (2688 bytes, say) also starts with it.
bool looks_like_safetensors(std::span<const uint8_t> head) {
  if (head.size() < 9) return false;
  uint64_t header_size = 0;
  std::memcpy(&header_size, head.data(), 8);
  return header_size < kMaxHeaderBytes && head[8] == '{';
}

}  // namespace

bool looks_like_weight_file(std::span<const uint8_t> head) {
  if (head.size() >= 4 && std::memcmp(head.data(), "PK\x03\x04", 4) == 0) return true;
  if (looks_like_safetensors(head)) return true;
  return head.size() >= 2 && head[0] == 0x80 && head[1] <= 5;  // a pickle
}

StateDict read_state_dict(const std::filesystem::path& path) {
  const std::vector<uint8_t> bytes = read_file(path);
  const std::string name = path.string();
  if (bytes.size() >= 4 && std::memcmp(bytes.data(), "PK\x03\x04", 4) == 0)
    return parse_torch_zip(bytes, name);
  if (looks_like_safetensors(bytes)) return parse_safetensors(bytes, name);
  if (bytes.size() >= 2 && bytes[0] == 0x80) return parse_torch_legacy(bytes, name);
  throw Error(name, "not a PyTorch (.pth) or safetensors file");
}

}  // namespace upframe::weights
