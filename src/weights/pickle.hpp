// A restricted unpickler for PyTorch checkpoints: builds None, bools, ints, floats, strings,
// bytes, lists, tuples, dicts (OrderedDict included), storages and tensors, nothing else.
//
// Python's pickle runs whatever a GLOBAL names (`os.system` included). This machine only knows
// the few callables a state dict needs (collections.OrderedDict, torch._utils._rebuild_tensor_v2,
// _rebuild_parameter, the typed storage classes) and refuses any other GLOBAL as it reads the
// opcode, so nothing named by a hostile file is ever looked up, let alone called.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "upframe/weights/state_dict.hpp"

namespace upframe::weights {

struct PickleValue;
// Values are owned by a PickleArena (a pickle can make cycles through its memo, which shared
// ownership would leak); a PickleRef is valid while its arena lives.
using PickleRef = PickleValue*;

// The callables the unpickler knows; every other GLOBAL is refused.
enum class Callable { kOrderedDict, kRebuildTensorV2, kRebuildTensor, kRebuildParameter };

// A storage named by a persistent id: where its bytes are (a key into the file's data) and
// their element type.
struct StorageRef {
  std::string key;
  DType dtype = DType::kF32;
  int64_t numel = -1;  // -1 where the id does not say
};

// A tensor as the pickle describes it: a view of a storage.
struct TensorView {
  StorageRef storage;
  int64_t offset = 0;
  std::vector<int64_t> shape;
  std::vector<int64_t> stride;
};

struct PickleValue {
  enum class Kind {
    kNone, kBool, kInt, kFloat, kString, kBytes, kList, kTuple, kDict,
    kCallable, kStorageType, kStorage, kTensor, kMark
  };
  Kind kind = Kind::kNone;
  int64_t integer = 0;  // kBool, kInt
  double real = 0;      // kFloat
  std::string text;     // kString, kBytes
  std::vector<PickleRef> items;                         // kList, kTuple
  std::vector<std::pair<PickleRef, PickleRef>> entries;  // kDict, in insertion order
  Callable callable = Callable::kOrderedDict;           // kCallable
  DType dtype = DType::kF32;                            // kStorageType
  StorageRef storage;                                   // kStorage
  TensorView tensor;                                    // kTensor
};

class PickleArena {
 public:
  PickleRef make(PickleValue::Kind kind);

 private:
  std::vector<std::unique_ptr<PickleValue>> values_;
};

// Turns a persistent id (BINPERSID's tuple) into a storage; throws to refuse it.
using PersistentLoad = std::function<PickleRef(const PickleValue& id, PickleArena& arena)>;

// Unpickles one pickle from `bytes` starting at `*pos` (advanced past its STOP). `name`
// names the file in messages. Throws upframe::Error: a refused GLOBAL with ExitCode::kUsage,
// anything malformed with kProcessingFailed.
PickleRef unpickle(std::span<const uint8_t> bytes, size_t* pos, const PersistentLoad& load,
                   const std::string& name, PickleArena& arena);

}  // namespace upframe::weights
