// spanprof: function names as frames show them — demangled, without the suffixes of GCC's
// copies of a function — and name_store, which owns every string a frame points into (interned
// once, kept until the symbolizer's cache is cleared).
//
// NOT ASYNC-SIGNAL-SAFE: allocates, and __cxa_demangle mallocs. Collector thread only.
#pragma once

#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace spanprof::detail {

// A function's name without the suffixes GCC gives the copies it makes of it (".constprop.0",
// ".isra.0", ".part.0", ".cold"; demangled: " [clone .constprop.0]"), whose samples belong
// with the function's, and without a symbol version ("memcpy@@GLIBC_2.14", as glibc's .symtab
// spells some). Other dots are kept ("_GLOBAL__sub_I_file.cpp").
inline std::string_view without_compiler_suffixes(std::string_view name) noexcept {
  if (const auto at = name.find(" [clone ."); at != std::string_view::npos) name = name.substr(0, at);
  std::size_t cut = std::min(name.size(), name.find('@'));
  for (const std::string_view suffix : {".constprop.", ".isra.", ".part.", ".cold", ".localalias", ".lto_priv."}) {
    const auto at = name.find(suffix);
    if (at != std::string_view::npos && at > 0 && at < cut) cut = at;
  }
  return name.substr(0, cut);
}

// The strings frames point into, each stored once. Views stay valid until clear().
class name_store {
 public:
  std::string_view intern(std::string_view text) {
    if (const auto it = interned_.find(text); it != interned_.end()) return *it;
    return *interned_.insert(std::string_view(strings_.emplace_back(text))).first;
  }

  // The demangled name, without compiler suffixes; the symbol itself when it does not demangle.
  // Keyed by the name's address: libdw's strings stay put while the module's session lives.
  std::string_view demangle(const char* symbol) {
    if (const auto it = demangled_.find(symbol); it != demangled_.end()) return it->second;
    int status = -1;
    std::unique_ptr<char, decltype(&std::free)> plain(abi::__cxa_demangle(symbol, nullptr, nullptr, &status), &std::free);
    const std::string_view name = intern(without_compiler_suffixes(status == 0 && plain != nullptr ? plain.get() : symbol));
    demangled_.emplace(symbol, name);
    return name;
  }

  // The qualified DWARF name already worked out for a declaration DIE (by its address), or null.
  [[nodiscard]] const std::string_view* known_qualified_name(const void* declaration) const {
    const auto known = qualified_names_.find(declaration);
    return known != qualified_names_.end() ? &known->second : nullptr;
  }
  std::string_view remember_qualified_name(const void* declaration, std::string_view name) {
    return qualified_names_.emplace(declaration, intern(name)).first->second;
  }

  void clear() noexcept {
    strings_.clear();
    interned_.clear();
    demangled_.clear();
    qualified_names_.clear();
  }

 private:
  std::deque<std::string> strings_;       // never moves its elements: views into them stay valid
  std::unordered_set<std::string_view> interned_;
  std::unordered_map<const char*, std::string_view> demangled_;
  std::unordered_map<const void*, std::string_view> qualified_names_;  // by the declaration DIE's address
};

}  // namespace spanprof::detail
