#include "pickle.hpp"

#include <bit>
#include <cstring>
#include <string_view>

#include "upframe/error.hpp"

namespace upframe::weights {

namespace {

// Bounds that keep a hostile pickle from taking the machine's memory: far above any real
// checkpoint (a large ESRGAN state dict has a few thousand objects).
constexpr size_t kMaxStack = 1 << 20;
constexpr size_t kMaxMemo = 1 << 22;
constexpr size_t kMaxItems = 1 << 24;

struct KnownGlobal {
  std::string_view module;
  std::string_view name;
  bool is_storage;
  Callable callable;
  DType dtype;
};

// The whole whitelist. Storage classes name the element type of the storages that follow;
// the callables build containers and tensors.
constexpr KnownGlobal kKnownGlobals[] = {
    {"collections", "OrderedDict", false, Callable::kOrderedDict, DType::kF32},
    {"torch._utils", "_rebuild_tensor_v2", false, Callable::kRebuildTensorV2, DType::kF32},
    {"torch._utils", "_rebuild_tensor", false, Callable::kRebuildTensor, DType::kF32},
    {"torch._utils", "_rebuild_parameter", false, Callable::kRebuildParameter, DType::kF32},
    {"torch", "FloatStorage", true, Callable::kOrderedDict, DType::kF32},
    {"torch", "HalfStorage", true, Callable::kOrderedDict, DType::kF16},
    {"torch", "BFloat16Storage", true, Callable::kOrderedDict, DType::kBF16},
    {"torch", "DoubleStorage", true, Callable::kOrderedDict, DType::kF64},
    {"torch", "LongStorage", true, Callable::kOrderedDict, DType::kI64},
    {"torch", "IntStorage", true, Callable::kOrderedDict, DType::kI32},
    {"torch", "ByteStorage", true, Callable::kOrderedDict, DType::kU8},
    {"torch", "BoolStorage", true, Callable::kOrderedDict, DType::kBool},
};

class Unpickler {
 public:
  Unpickler(std::span<const uint8_t> bytes, size_t pos, const PersistentLoad& load,
            const std::string& name, PickleArena& arena)
      : bytes_(bytes), pos_(pos), load_(load), name_(name), arena_(arena) {}

  PickleRef run();
  size_t position() const { return pos_; }

 private:
  [[noreturn]] void fail(const std::string& problem) const {
    throw Error(name_, "pickle: " + problem + " (at byte " + std::to_string(op_pos_) + ")");
  }
  void need(size_t n) const {
    if (n > bytes_.size() - pos_) fail("truncated");
  }
  uint8_t u8() {
    need(1);
    return bytes_[pos_++];
  }
  uint64_t little(size_t n) {
    need(n);
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= uint64_t{bytes_[pos_ + i]} << (8 * i);
    pos_ += n;
    return v;
  }
  std::string take(uint64_t n) {
    if (n > bytes_.size() - pos_) fail("truncated");
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  std::string line() {
    size_t end = pos_;
    while (end < bytes_.size() && bytes_[end] != '\n') ++end;
    if (end == bytes_.size()) fail("truncated");
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), end - pos_);
    pos_ = end + 1;
    return s;
  }

  PickleRef make(PickleValue::Kind kind) {
    count_items(1);
    return arena_.make(kind);
  }
  PickleRef make_int(int64_t v) {
    PickleRef value = make(PickleValue::Kind::kInt);
    value->integer = v;
    return value;
  }

  void push(PickleRef v) {
    if (stack_.size() >= kMaxStack) fail("stack too deep");
    stack_.push_back(v);
  }
  PickleRef pop() {
    if (stack_.empty() || stack_.back()->kind == PickleValue::Kind::kMark) fail("stack underflow");
    PickleRef v = stack_.back();
    stack_.pop_back();
    return v;
  }
  PickleRef& top() {
    if (stack_.empty() || stack_.back()->kind == PickleValue::Kind::kMark) fail("stack underflow");
    return stack_.back();
  }
  // Everything above the last MARK, the mark removed.
  std::vector<PickleRef> pop_to_mark() {
    size_t mark = stack_.size();
    while (mark > 0 && stack_[mark - 1]->kind != PickleValue::Kind::kMark) --mark;
    if (mark == 0) fail("no MARK on the stack");
    std::vector<PickleRef> items(stack_.begin() + mark, stack_.end());
    stack_.resize(mark - 1);
    return items;
  }
  void memo_put(uint64_t index) {
    if (index >= kMaxMemo) fail("memo index too large");
    if (memo_.size() <= index) memo_.resize(index + 1);
    memo_[index] = top();
  }
  PickleRef memo_get(uint64_t index) {
    if (index >= memo_.size() || !memo_[index]) fail("memo entry missing");
    return memo_[index];
  }
  void count_items(size_t n) {
    items_ += n;
    if (items_ > kMaxItems) fail("too many objects");
  }

  PickleRef global(const std::string& module, const std::string& name);
  PickleRef call(const PickleValue& callable, const PickleValue& args);
  PickleRef rebuild_tensor(const std::vector<PickleRef>& args);
  void set_items(PickleValue& dict, std::vector<PickleRef> items);
  PickleRef tuple_of(std::vector<PickleRef> items) {
    count_items(items.size());
    PickleRef t = make(PickleValue::Kind::kTuple);
    t->items = std::move(items);
    return t;
  }

  std::span<const uint8_t> bytes_;
  size_t pos_;
  size_t op_pos_ = 0;
  const PersistentLoad& load_;
  const std::string& name_;
  PickleArena& arena_;
  std::vector<PickleRef> stack_;
  std::vector<PickleRef> memo_;
  size_t items_ = 0;
};

PickleRef Unpickler::global(const std::string& module, const std::string& name) {
  for (const KnownGlobal& known : kKnownGlobals) {
    if (known.module != module || known.name != name) continue;
    if (known.is_storage) {
      PickleRef v = make(PickleValue::Kind::kStorageType);
      v->dtype = known.dtype;
      return v;
    }
    PickleRef v = make(PickleValue::Kind::kCallable);
    v->callable = known.callable;
    return v;
  }
  // Cut what is quoted: a hostile file can make the name as long as it likes.
  auto shorten = [](const std::string& s) { return s.size() > 80 ? s.substr(0, 80) + "..." : s; };
  throw Error(name_,
              "refused pickle GLOBAL '" + shorten(module) + "." + shorten(name) +
                  "': only tensors and containers are loaded from PyTorch files",
              ExitCode::kUsage);
}

int64_t as_int(const PickleValue& v, const char* what, const std::string& file) {
  if (v.kind != PickleValue::Kind::kInt && v.kind != PickleValue::Kind::kBool)
    throw Error(file, std::string("pickle: ") + what + " is not an integer");
  return v.integer;
}

std::vector<int64_t> as_ints(const PickleValue& v, const char* what, const std::string& file) {
  if (v.kind != PickleValue::Kind::kTuple && v.kind != PickleValue::Kind::kList)
    throw Error(file, std::string("pickle: ") + what + " is not a tuple");
  std::vector<int64_t> out;
  for (const PickleRef& item : v.items) out.push_back(as_int(*item, what, file));
  return out;
}

PickleRef Unpickler::rebuild_tensor(const std::vector<PickleRef>& args) {
  // _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]);
  // _rebuild_tensor(storage, offset, size, stride).
  if (args.size() < 4) fail("tensor rebuilt from too few arguments");
  if (args[0]->kind != PickleValue::Kind::kStorage) fail("tensor rebuilt from a non-storage");
  PickleRef t = make(PickleValue::Kind::kTensor);
  t->tensor.storage = args[0]->storage;
  t->tensor.offset = as_int(*args[1], "tensor offset", name_);
  t->tensor.shape = as_ints(*args[2], "tensor size", name_);
  t->tensor.stride = as_ints(*args[3], "tensor stride", name_);
  if (t->tensor.shape.size() != t->tensor.stride.size())
    fail("tensor size and stride differ in length");
  return t;
}

PickleRef Unpickler::call(const PickleValue& callable, const PickleValue& args) {
  if (callable.kind != PickleValue::Kind::kCallable) fail("REDUCE on something not callable");
  if (args.kind != PickleValue::Kind::kTuple) fail("REDUCE arguments are not a tuple");
  switch (callable.callable) {
    case Callable::kOrderedDict: {
      PickleRef dict = make(PickleValue::Kind::kDict);
      if (!args.items.empty()) {
        // OrderedDict([(k, v), ...]): the pairs given at construction.
        if (args.items.size() != 1 || args.items[0]->kind != PickleValue::Kind::kList)
          fail("OrderedDict built from unexpected arguments");
        for (const PickleRef& pair : args.items[0]->items) {
          if (pair->kind != PickleValue::Kind::kTuple || pair->items.size() != 2)
            fail("OrderedDict item is not a pair");
          dict->entries.emplace_back(pair->items[0], pair->items[1]);
        }
      }
      return dict;
    }
    case Callable::kRebuildTensorV2:
    case Callable::kRebuildTensor:
      return rebuild_tensor(args.items);
    case Callable::kRebuildParameter:
      // _rebuild_parameter(data, requires_grad, hooks): the tensor itself.
      if (args.items.empty() || args.items[0]->kind != PickleValue::Kind::kTensor)
        fail("parameter rebuilt from a non-tensor");
      return args.items[0];
  }
  fail("unknown callable");
}

void Unpickler::set_items(PickleValue& dict, std::vector<PickleRef> items) {
  if (dict.kind != PickleValue::Kind::kDict) fail("SETITEM on a non-dict");
  if (items.size() % 2 != 0) fail("SETITEMS with an odd count");
  count_items(items.size());
  for (size_t i = 0; i < items.size(); i += 2) {
    // Replace an existing key, as Python would (keys here are strings or ints).
    bool replaced = false;
    for (auto& [key, value] : dict.entries) {
      if (key->kind == items[i]->kind && key->text == items[i]->text &&
          key->integer == items[i]->integer) {
        value = items[i + 1];
        replaced = true;
        break;
      }
    }
    if (!replaced) dict.entries.emplace_back(items[i], items[i + 1]);
  }
}

PickleRef Unpickler::run() {
  using K = PickleValue::Kind;
  for (;;) {
    op_pos_ = pos_;
    const uint8_t op = u8();
    switch (op) {
      case 0x80:  // PROTO
        if (u8() > 5) fail("pickle protocol newer than 5");
        break;
      case 0x95:  // FRAME: a length hint only
        little(8);
        break;
      case '.':  // STOP
        return pop();
      case '(':  // MARK
        push(make(K::kMark));
        break;
      case ')':
        push(make(K::kTuple));
        break;
      case ']':
        push(make(K::kList));
        break;
      case '}':
        push(make(K::kDict));
        break;
      case 'N':
        push(make(K::kNone));
        break;
      case 0x88:
      case 0x89: {  // NEWTRUE, NEWFALSE
        PickleRef v = make(K::kBool);
        v->integer = op == 0x88 ? 1 : 0;
        push(v);
        break;
      }
      case 'J':
        push(make_int(static_cast<int32_t>(little(4))));
        break;
      case 'K':
        push(make_int(u8()));
        break;
      case 'M':
        push(make_int(static_cast<int64_t>(little(2))));
        break;
      case 0x8a:    // LONG1
      case 0x8b: {  // LONG4
        const uint64_t n = op == 0x8a ? u8() : little(4);
        if (n > 8) {
          // Only the legacy format's magic number is that long; keep its low bits.
          std::string raw = take(n);
          int64_t v = 0;
          std::memcpy(&v, raw.data(), 8);
          push(make_int(v));
          break;
        }
        uint64_t v = little(n);
        if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);  // sign
        push(make_int(static_cast<int64_t>(v)));
        break;
      }
      case 'G': {  // BINFLOAT, big-endian
        need(8);
        uint64_t raw = 0;
        for (int i = 0; i < 8; ++i) raw = (raw << 8) | bytes_[pos_ + i];
        pos_ += 8;
        PickleRef v = make(K::kFloat);
        v->real = std::bit_cast<double>(raw);
        push(v);
        break;
      }
      case 'X':     // BINUNICODE
      case 0x8c:    // SHORT_BINUNICODE
      case 0x8d:    // BINUNICODE8
      case 'T':     // BINSTRING
      case 'U':     // SHORT_BINSTRING
      case 'B':     // BINBYTES
      case 'C':     // SHORT_BINBYTES
      case 0x8e: {  // BINBYTES8
        const bool is_short = op == 0x8c || op == 'U' || op == 'C';
        const bool is_long = op == 0x8d || op == 0x8e;
        const uint64_t n = is_short ? u8() : little(is_long ? 8 : 4);
        PickleRef v = make(op == 'B' || op == 'C' || op == 0x8e ? K::kBytes : K::kString);
        v->text = take(n);
        push(v);
        break;
      }
      case 'q':
        memo_put(u8());
        break;
      case 'r':
        memo_put(little(4));
        break;
      case 0x94:  // MEMOIZE
        memo_put(memo_.size());
        break;
      case 'h':
        push(memo_get(u8()));
        break;
      case 'j':
        push(memo_get(little(4)));
        break;
      case 'c': {  // GLOBAL module\nname\n
        std::string module = line();
        std::string name = line();
        push(global(module, name));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        PickleRef name = pop();
        PickleRef module = pop();
        if (name->kind != K::kString || module->kind != K::kString)
          fail("STACK_GLOBAL with non-string names");
        push(global(module->text, name->text));
        break;
      }
      case 'R': {  // REDUCE
        PickleRef args = pop();
        PickleRef callable = pop();
        push(call(*callable, *args));
        break;
      }
      case 0x81: {  // NEWOBJ: cls.__new__(cls, *args); only OrderedDict is a class here
        PickleRef args = pop();
        PickleRef cls = pop();
        push(call(*cls, *args));
        break;
      }
      case 'b': {  // BUILD: set attributes (an OrderedDict's _metadata); not needed
        pop();
        top();
        break;
      }
      case 's': {  // SETITEM
        PickleRef value = pop();
        PickleRef key = pop();
        set_items(*top(), {key, value});
        break;
      }
      case 'u': {  // SETITEMS
        std::vector<PickleRef> items = pop_to_mark();
        set_items(*top(), std::move(items));
        break;
      }
      case 'a': {  // APPEND
        PickleRef value = pop();
        PickleValue& list = *top();
        if (list.kind != K::kList) fail("APPEND to a non-list");
        count_items(1);
        list.items.push_back(value);
        break;
      }
      case 'e': {  // APPENDS
        std::vector<PickleRef> items = pop_to_mark();
        PickleValue& list = *top();
        if (list.kind != K::kList) fail("APPENDS to a non-list");
        count_items(items.size());
        for (PickleRef item : items) list.items.push_back(item);
        break;
      }
      case 'l': {  // LIST
        PickleRef list = make(K::kList);
        list->items = pop_to_mark();
        count_items(list->items.size());
        push(list);
        break;
      }
      case 'd': {  // DICT
        std::vector<PickleRef> items = pop_to_mark();
        PickleRef dict = make(K::kDict);
        set_items(*dict, std::move(items));
        push(dict);
        break;
      }
      case 't':
        push(tuple_of(pop_to_mark()));
        break;
      case 0x85:
      case 0x86:
      case 0x87: {  // TUPLE1..3
        std::vector<PickleRef> items(op - 0x84);
        for (size_t i = items.size(); i-- > 0;) items[i] = pop();
        push(tuple_of(std::move(items)));
        break;
      }
      case 'Q': {  // BINPERSID
        PickleRef id = pop();
        push(load_(*id, arena_));
        break;
      }
      case '0':  // POP
        if (!stack_.empty() && stack_.back()->kind == K::kMark)
          stack_.pop_back();
        else
          pop();
        break;
      case '1':  // POP_MARK
        pop_to_mark();
        break;
      case '2':  // DUP
        push(top());
        break;
      default: {
        static const char* hex = "0123456789abcdef";
        fail(std::string("unsupported opcode 0x") + hex[op >> 4] + hex[op & 15]);
      }
    }
  }
}

}  // namespace

PickleRef PickleArena::make(PickleValue::Kind kind) {
  values_.push_back(std::make_unique<PickleValue>());
  values_.back()->kind = kind;
  return values_.back().get();
}

PickleRef unpickle(std::span<const uint8_t> bytes, size_t* pos, const PersistentLoad& load,
                   const std::string& name, PickleArena& arena) {
  Unpickler unpickler(bytes, *pos, load, name, arena);
  PickleRef result = unpickler.run();
  *pos = unpickler.position();
  return result;
}

}  // namespace upframe::weights
