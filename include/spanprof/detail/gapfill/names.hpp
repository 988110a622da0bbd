// spanprof gapfill: reading demangled names and file paths — display names, call-site
// matching, spanprof's own frames, blocking calls (gapfill.md §2.3, §2.6).
#pragma once

#include <array>
#include <cstddef>
#include <string_view>
#include <utility>

namespace spanprof::detail::gapfill {

// ---- names ----------------------------------------------------------------------------------

namespace names {

inline constexpr std::size_t npos = std::string_view::npos;

inline std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

// Index of the bracket that opens the group closed at s[close]; npos if unbalanced. Brackets
// inside operator names (operator<, operator->) can fool it; the callers then keep the text.
inline std::size_t matching_open(std::string_view s, std::size_t close) noexcept {
  int depth = 0;
  for (std::size_t i = close + 1; i-- > 0;) {
    const char c = s[i];
    if (c == ')' || c == ']' || c == '>' || c == '}') {
      ++depth;
    } else if (c == '(' || c == '[' || c == '<' || c == '{') {
      if (--depth == 0) return i;
    }
  }
  return npos;
}

inline bool ends_with_word(std::string_view s, std::string_view word) noexcept {
  if (!s.ends_with(word)) return false;
  if (s.size() == word.size()) return true;
  const char before = s[s.size() - word.size() - 1];
  return before == ' ' || before == '*' || before == '&' || before == ')';
}

// Trailing qualifiers of a member function: " const", " volatile", " noexcept", "&", "&&" — only
// after the parameter list or another qualifier, so "operator&" keeps its name.
inline bool strip_one_qualifier(std::string_view& s) noexcept {
  auto follows_parameters = [](std::string_view rest) {
    rest = trim(rest);
    return rest.ends_with(')') || ends_with_word(rest, "const") || ends_with_word(rest, "volatile") ||
           rest.ends_with('&');
  };
  for (std::string_view q : {std::string_view("&&"), std::string_view("&"), std::string_view("const"),
                             std::string_view("volatile"), std::string_view("noexcept")}) {
    const bool word = q[0] != '&';
    if (!s.ends_with(q) || s.size() == q.size()) continue;
    if (word && s[s.size() - q.size() - 1] != ' ') continue;
    const std::string_view rest = s.substr(0, s.size() - q.size());
    if (!follows_parameters(rest)) continue;
    s = trim(rest);
    return true;
  }
  return false;
}

// A trailing "[with T = int]" (__PRETTY_FUNCTION__) or "[abi:cxx11]" tag.
inline bool strip_one_bracket_clause(std::string_view& s) noexcept {
  if (!s.ends_with(']')) return false;
  const std::size_t open = matching_open(s, s.size() - 1);
  if (open == npos || open == 0) return false;
  if (s[open - 1] != ' ' && !s.substr(open).starts_with("[abi:")) return false;
  s = trim(s.substr(0, open));
  return true;
}

// The function's name as a user reads it: no return type, no parameter list, no trailing
// qualifiers or `[with T = …]` clause (__PRETTY_FUNCTION__), no `[abi:…]` tag. Template
// arguments stay ("std::sort<int*>"). Returns a view into `s`.
inline std::string_view display_name(std::string_view s) noexcept {
  s = trim(s);
  if (const std::size_t at = s.find('@'); at != npos && at > 0) s = trim(s.substr(0, at));  // symbol versions
  while (strip_one_bracket_clause(s) || strip_one_qualifier(s)) {
  }
  if (s.ends_with(')') && !s.ends_with("operator()")) {
    const std::size_t open = matching_open(s, s.size() - 1);
    if (open != npos && open > 0) s = trim(s.substr(0, open));
  }
  while (strip_one_bracket_clause(s)) {
  }
  // Return type: everything up to the last space outside brackets, unless that space belongs
  // to an operator name ("operator new", "operator delete[]").
  int depth = 0;
  std::size_t cut = npos;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '(' || c == '<' || c == '[' || c == '{') ++depth;
    else if (c == ')' || c == '>' || c == ']' || c == '}') depth = depth > 0 ? depth - 1 : 0;
    else if (c == ' ' && depth == 0 && !ends_with_word(s.substr(0, i), "operator")) cut = i;
  }
  if (cut != npos) s = s.substr(cut + 1);
  while (!s.empty() && (s.front() == '*' || s.front() == '&')) s.remove_prefix(1);
  return s;
}

// What two spellings of one function share: display_name without trailing template arguments
// (__PRETTY_FUNCTION__ writes them as a [with …] clause, the demangler inline).
inline std::string_view match_name(std::string_view display) noexcept {
  if (display.ends_with('>') && !display.ends_with("operator>") && !display.ends_with("operator->") &&
      !display.ends_with("operator>>")) {
    const std::size_t open = matching_open(display, display.size() - 1);
    if (open != npos && open > 0) display = display.substr(0, open);
  }
  return display;
}

inline std::string_view last_component(std::string_view name) noexcept {
  const std::size_t at = name.rfind("::");
  return at == npos ? name : name.substr(at + 2);
}

// GCC's __PRETTY_FUNCTION__ spells an anonymous namespace "{anonymous}", the demangler
// "(anonymous namespace)": a component either way, skipped when comparing.
inline bool skip_anonymous_component(std::string_view s, std::size_t& i) noexcept {
  for (const std::string_view token : {std::string_view("{anonymous}::"), std::string_view("(anonymous namespace)::")}) {
    if (s.substr(i).starts_with(token)) {
      i += token.size();
      return true;
    }
  }
  return false;
}

inline bool equal_ignoring_anonymous(std::string_view a, std::string_view b) noexcept {
  std::size_t i = 0, j = 0;
  for (;;) {
    if (i == 0 || (i >= 2 && a[i - 1] == ':' && a[i - 2] == ':')) {
      while (skip_anonymous_component(a, i)) {
      }
    }
    if (j == 0 || (j >= 2 && b[j - 1] == ':' && b[j - 2] == ':')) {
      while (skip_anonymous_component(b, j)) {
      }
    }
    if (i == a.size() || j == b.size()) return i == a.size() && j == b.size();
    if (a[i] != b[j]) return false;
    ++i;
    ++j;
  }
}

// "handle_orders" matches "app::handle_orders": __PRETTY_FUNCTION__ and the demangler may
// qualify differently (anonymous namespaces, inline namespaces): equal, or one equal to a
// trailing run of the other's components.
inline bool names_match(std::string_view a, std::string_view b) noexcept {
  if (a.empty() || b.empty()) return false;
  if (equal_ignoring_anonymous(a, b)) return true;
  for (const auto& [longer, shorter] : {std::pair{a, b}, std::pair{b, a}}) {
    for (std::size_t at = longer.find("::"); at != npos; at = longer.find("::", at + 2)) {
      if (equal_ignoring_anonymous(longer.substr(at + 2), shorter)) return true;
    }
  }
  return false;
}

inline std::string_view strip_relative_prefix(std::string_view path) noexcept {
  for (;;) {
    if (path.starts_with("./")) path.remove_prefix(2);
    else if (path.starts_with("../")) path.remove_prefix(3);
    else return path;
  }
}

// __builtin_FILE() is the path the compiler was given ("../src/orders.cpp"), DWARF may give
// another spelling of it ("/work/app/src/orders.cpp"): equal once the relative prefix is gone,
// or one a suffix of the other at a '/'. A frame without a file matches on its name alone.
inline bool files_match(std::string_view callsite_file, std::string_view frame_file) noexcept {
  if (callsite_file.empty() || frame_file.empty()) return true;
  const std::string_view a = strip_relative_prefix(callsite_file);
  const std::string_view b = strip_relative_prefix(frame_file);
  if (a == b) return true;
  const std::string_view& longer = a.size() > b.size() ? a : b;
  const std::string_view& shorter = a.size() > b.size() ? b : a;
  return !shorter.empty() && longer.ends_with(shorter) && longer[longer.size() - shorter.size() - 1] == '/';
}

inline std::string_view basename(std::string_view path) noexcept {
  const std::size_t slash = path.rfind('/');
  return slash == npos ? path : path.substr(slash + 1);
}

inline bool is_signal_trampoline(std::string_view display) noexcept {
  return display == "__restore_rt" || display == "__kernel_rt_sigreturn" || display == "_sigtramp" ||
         display == "__kernel_sigreturn" || display == "__GI___restore_rt";
}

// spanprof's own frames (the handler, the RAII types) and the unwinder's, should any leak in.
inline bool is_spanprof_frame(std::string_view display) noexcept {
  return display.starts_with("spanprof::") || display.starts_with("_ULx86_64_") ||
         display.starts_with("_Ux86_64_") || display == "unw_backtrace";
}

// The C library's objects, where a leaf named `read` is the system call's wrapper and not an
// application function of that name. Unknown (empty) modules are given the benefit of the doubt.
inline bool is_system_library(std::string_view module) noexcept {
  const std::string_view name = basename(module);
  return name.empty() || name.starts_with("libc.") || name.starts_with("libc-") || name.starts_with("libpthread") ||
         name.starts_with("librt") || name.starts_with("ld-linux") || name.starts_with("linux-vdso") ||
         name.starts_with("libc.musl");
}

// The blocking libc entry a wall-mode sample's leaf is in, as a short name ("recv", "futex"),
// or empty. glibc's internal aliases (__GI___poll, __libc_recv, __futex_abstimed_wait_common64,
// read_nocancel) map to the public name.
inline std::string_view blocking_call(std::string_view display) noexcept {
  std::string_view s = display;
  for (bool changed = true; changed;) {
    changed = false;
    while (s.starts_with('_')) { s.remove_prefix(1); changed = true; }
    for (std::string_view prefix : {std::string_view("GI_"), std::string_view("libc_"), std::string_view("new_")}) {
      if (s.starts_with(prefix)) { s.remove_prefix(prefix.size()); changed = true; }
    }
  }
  if (s.ends_with("_nocancel")) s.remove_suffix(9);
  if (s.starts_with("futex") || s.starts_with("lll_lock_wait")) return "futex";
  static constexpr std::array<std::string_view, 48> calls{
      "read", "readv", "pread", "pread64", "preadv", "recv", "recvfrom", "recvmsg", "recvmmsg",
      "write", "writev", "pwrite", "pwrite64", "send", "sendto", "sendmsg", "poll", "ppoll",
      "select", "pselect", "pselect6", "epoll_wait", "epoll_pwait", "epoll_pwait2", "nanosleep",
      "clock_nanosleep", "sleep", "usleep", "pthread_cond_wait", "pthread_cond_timedwait",
      "pthread_cond_clockwait", "pthread_join", "sem_wait", "sem_timedwait", "sem_clockwait",
      "accept", "accept4", "connect", "wait", "waitpid", "wait4", "waitid", "sigwait",
      "sigtimedwait", "sigwaitinfo", "pause", "fsync", "fdatasync"};
  for (std::string_view call : calls) {
    if (s == call) return call;
  }
  if (s == "syscall" || s == "msgrcv" || s == "mq_receive" || s == "mq_timedreceive" || s == "flock") return s;
  return {};
}

}  // namespace names

}  // namespace spanprof::detail::gapfill
