#pragma once
// The definitions of dlb/core/state.hpp: included by that header where it holds them
// (header-only), compiled once into dlb::compiled otherwise (see dlb/core/linkage.hpp). The
// state dictionary's ordered map (a vector of named tensors and a hash index) is instantiated
// here, not in every program that includes the library.

#include <algorithm>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dlb/core/state.hpp"

namespace dlb {

DLB_INLINE const char* DTypeName(DType dtype) {
  switch (dtype) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::I64: return "I64";
    case DType::U64: return "U64";
  }
  return "?";
}

DLB_INLINE std::string ShapeText(const std::vector<std::int64_t>& shape) {
  std::string text = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    text += (i ? ", " : "") + std::to_string(shape[i]);
  }
  return text + "]";
}

DLB_INLINE void StateDict::Insert(std::string name, Tensor tensor) {
  if (index_.count(name) != 0) {
    throw StateError("StateDict: the name " + QuoteForTerminal(name) + " is already present");
  }
  index_.emplace(name, entries_.size());
  entries_.emplace_back(std::move(name), std::move(tensor));
}

DLB_INLINE void StateDict::InsertOrAssign(std::string name, Tensor tensor) {
  if (Tensor* existing = Find(name)) {
    *existing = std::move(tensor);
  } else {
    Insert(std::move(name), std::move(tensor));
  }
}

DLB_INLINE const Tensor* StateDict::Find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}
DLB_INLINE Tensor* StateDict::Find(const std::string& name) {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}

DLB_INLINE const Tensor& StateDict::At(const std::string& name) const {
  if (const Tensor* tensor = Find(name)) return *tensor;
  throw StateError("StateDict: no tensor named " + QuoteForTerminal(name));
}

DLB_INLINE void StateDict::Reserve(std::size_t count) {
  entries_.reserve(count);
  index_.reserve(count);
}

DLB_INLINE bool StateDict::Contains(const std::string& name) const { return index_.count(name) != 0; }

DLB_INLINE void StateDict::Merge(const StateDict& other, const std::string& prefix) {
  for (const auto& [name, tensor] : other.entries_) Insert(prefix + name, tensor);
}

DLB_INLINE StateDict StateDict::WithPrefix(const std::string& prefix) const {
  StateDict part;
  for (const auto& [name, tensor] : entries_) {
    if (name.compare(0, prefix.size(), prefix) == 0) part.Insert(name.substr(prefix.size()), tensor);
  }
  return part;
}

DLB_INLINE StateDict StateDict::Without(const std::vector<std::string>& prefixes) const {
  StateDict rest;
  for (const auto& entry : entries_) {
    // Not a structured binding: clang before 16 cannot capture one in the lambda.
    const std::string& name = entry.first;
    const bool excluded = std::any_of(prefixes.begin(), prefixes.end(), [&](const auto& p) {
      return name.compare(0, p.size(), p) == 0;
    });
    if (!excluded) rest.Insert(name, entry.second);
  }
  return rest;
}

namespace internal {

DLB_INLINE std::vector<std::uint64_t> GeneratorWords(const Generator& gen) {
  const auto words = gen.Words();
  return {words.begin(), words.end()};
}

DLB_INLINE void RequireGeneratorWords(const std::vector<std::uint64_t>& words, const std::string& name) {
  if (const char* problem = Generator::WordsProblem(words)) {
    throw StateError("state '" + name + "': not a random generator's state: " + problem);
  }
}

DLB_INLINE void SetGeneratorWords(Generator& gen, const std::vector<std::uint64_t>& words,
                                  const std::string& name) {
  RequireGeneratorWords(words, name);
  gen = *Generator::FromWords(words);
}

}  // namespace internal
}  // namespace dlb
