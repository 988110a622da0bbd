// symbolizer.hpp, the parts together: addresses captured inside functions of this file and of a
// dlopen'ed library (tests/symbolize_lib.cpp, also as objcopy'd copies: --strip-debug,
// --strip-all, and DWARF split off behind a .gnu_debuglink) resolve to exactly the function, file
// and line they were captured at; inlined frames; dlclose; the fallbacks; demangling; build ids
// against readelf; Sentry debug ids; the cache. The module map's rules for changed address space
// are in module_map_test.cpp, name cleanup in names_test.cpp, note parsing in build_id_test.cpp.
//
// Addresses are return addresses captured with __builtin_return_address(0) in a noinline
// callee, so the expected line is the __LINE__ of the call, recorded just before it.
#include <doctest/doctest.h>
#include <dlfcn.h>
#include <spanprof/detail/symbolize/build_id.hpp>
#include <spanprof/detail/symbolize/debug_images.hpp>
#include <spanprof/detail/symbolize/frames.hpp>
#include <spanprof/detail/symbolize/module_map.hpp>
#include <spanprof/detail/symbolize/symbolizer.hpp>
#include <stdio.h>
#include <time.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "support/replace_operator_new.hpp"
#include "support/synthetic_modules.hpp"
#include "support/test_support.hpp"

using namespace spanprof::detail;
using spanprof_test::snapshot;
using spanprof_test::synthetic;
namespace fs = std::filesystem;

namespace symbolize_test {

[[gnu::noinline]] std::uintptr_t return_address_in_caller() {
  return reinterpret_cast<std::uintptr_t>(__builtin_return_address(0));
}

[[gnu::noinline]] std::uintptr_t known_call_site(int* call_line) {
  *call_line = __LINE__ + 1;
  std::uintptr_t address = return_address_in_caller();
  asm volatile("" : "+r"(address));  // code after the call: it cannot become a tail call
  return address;
}

[[gnu::always_inline]] inline std::uintptr_t inlined_helper(int* helper_call_line) {
  *helper_call_line = __LINE__ + 1;
  std::uintptr_t address = return_address_in_caller();
  asm volatile("" : "+r"(address));
  return address;
}

[[gnu::noinline]] std::uintptr_t calls_inlined_helper(int* helper_call_line, int* call_line) {
  *call_line = __LINE__ + 1;
  std::uintptr_t address = inlined_helper(helper_call_line);
  asm volatile("" : "+r"(address));
  return address;
}

[[gnu::noinline]] std::uintptr_t overloaded(int* call_line) {
  *call_line = __LINE__ + 1;
  std::uintptr_t address = return_address_in_caller();
  asm volatile("" : "+r"(address));
  return address;
}

[[gnu::noinline]] std::uintptr_t overloaded(double, int* call_line) {
  *call_line = __LINE__ + 1;
  std::uintptr_t address = return_address_in_caller();
  asm volatile("" : "+r"(address));
  return address;
}

}  // namespace symbolize_test

namespace {

// Internal linkage: GCC writes no DW_AT_linkage_name for it, so only its DWARF name and scopes
// can name it once inlined.
[[gnu::always_inline]] inline std::uintptr_t internal_inlined_helper(int* helper_call_line) {
  *helper_call_line = __LINE__ + 1;
  std::uintptr_t address = symbolize_test::return_address_in_caller();
  asm volatile("" : "+r"(address));
  return address;
}

[[gnu::noinline]] std::uintptr_t internal_caller(int* helper_call_line, int* call_line) {
  *call_line = __LINE__ + 1;
  std::uintptr_t address = internal_inlined_helper(helper_call_line);
  asm volatile("" : "+r"(address));
  return address;
}

// A lambda inlined into an internal function: GCC declares that function inside the anonymous
// namespace and defines it apart (DW_AT_specification), so naming the lambda from DWARF must
// go from the definition to the declaration's scopes.
[[gnu::noinline]] std::uintptr_t calls_inlined_lambda(int* lambda_call_line) {
  const auto lambda = [](int* line) __attribute__((always_inline)) {
    *line = __LINE__ + 1;
    std::uintptr_t address = symbolize_test::return_address_in_caller();
    asm volatile("" : "+r"(address));
    return address;
  };
  std::uintptr_t address = lambda(lambda_call_line);
  asm volatile("" : "+r"(address));
  return address;
}

}  // namespace

namespace {

std::int64_t monotonic_now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::string required_env(const char* name) {
  const char* value = std::getenv(name);
  INFO("environment variable ", name, " (tests/meson.build sets it)");
  REQUIRE((value != nullptr && *value != '\0'));
  return value;
}

fs::path this_source_file() { return fs::path(required_env("SPANPROF_TEST_SOURCE_DIR")) / "tests" / "symbolize_test.cpp"; }
fs::path library_source_file() { return fs::path(required_env("SPANPROF_TEST_SOURCE_DIR")) / "tests" / "symbolize_lib.cpp"; }
// This test binary's own path (readelf must be given the file, not /proc/self/exe, which would be readelf).
std::string this_executable() { return fs::read_symlink("/proc/self/exe").string(); }

bool same_file(std::string_view a, const fs::path& b) {
  std::error_code ec;
  return !a.empty() && fs::equivalent(fs::path(a), b, ec) && !ec;
}

// The "Build ID:" line of `readelf -n file`, an independent reader of the same note.
std::string readelf_build_id(const std::string& file) {
  const std::string command = "'" + required_env("SPANPROF_READELF") + "' -n '" + file + "'";
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string output;
  char buffer[4096];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) output.append(buffer, n);
  REQUIRE(::pclose(pipe) == 0);
  const std::string key = "Build ID: ";
  const auto at = output.find(key);
  REQUIRE(at != std::string::npos);
  const auto end = output.find_first_of("\r\n", at);
  return output.substr(at + key.size(), end - at - key.size());
}

std::vector<std::uint8_t> hex_bytes(std::string_view hex) {
  std::vector<std::uint8_t> bytes;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    bytes.push_back(static_cast<std::uint8_t>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return bytes;
}

std::string frame_text(const symbolized_frame& f) {
  return std::string(f.function) + " at " + std::string(f.file) + ":" + std::to_string(f.line);
}

using library_entry = std::uintptr_t (*)(int*);

// A dlopen'ed library; dlclose at scope exit unless closed earlier.
class loaded_library {
 public:
  explicit loaded_library(const std::string& path) : handle_(::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL)) {
    INFO("dlopen ", path, ": ", handle_ == nullptr ? ::dlerror() : "ok");
    REQUIRE(handle_ != nullptr);
  }
  ~loaded_library() { close(); }
  loaded_library(const loaded_library&) = delete;
  loaded_library& operator=(const loaded_library&) = delete;
  library_entry entry(const char* name) const { return reinterpret_cast<library_entry>(address_of(name)); }
  std::uintptr_t address_of(const char* name) const {
    void* symbol = ::dlsym(handle_, name);
    REQUIRE(symbol != nullptr);
    return reinterpret_cast<std::uintptr_t>(symbol);
  }
  void close() {
    if (handle_ != nullptr) ::dlclose(handle_);
    handle_ = nullptr;
  }

 private:
  void* handle_;
};

}  // namespace

TEST_CASE("symbolize: a noinline function resolves to exactly its name, file and line") {
  symbolizer s;
  s.refresh(monotonic_now_ns());
  int call_line = 0;
  const std::uintptr_t pc = symbolize_test::known_call_site(&call_line);
  const resolved_address r = s.resolve(pc, monotonic_now_ns(), true);
  REQUIRE(r.module != nullptr);
  REQUIRE(r.frames.size() == 1);
  INFO(frame_text(r.frames[0]));
  CHECK(r.frames[0].function == "symbolize_test::known_call_site(int*)");
  CHECK(same_file(r.frames[0].file, this_source_file()));
  CHECK(r.frames[0].line == static_cast<std::uint32_t>(call_line));
  CHECK(r.frames[0].quality == frame_quality::dwarf);
  CHECK_FALSE(r.frames[0].inlined);
  CHECK(r.module->is_main_executable);
  CHECK(r.module->in_app);
  CHECK(r.instruction_addr == pc);
  CHECK(r.relative_addr == pc - r.module->bias);
  CHECK(same_file(r.module->path, "/proc/self/exe"));
}

TEST_CASE("symbolize: an always_inline helper is an inlined frame under its caller, innermost first") {
  symbolizer s;
  s.refresh(monotonic_now_ns());
  int helper_call_line = 0, call_line = 0;
  const std::uintptr_t pc = symbolize_test::calls_inlined_helper(&helper_call_line, &call_line);
  const resolved_address r = s.resolve(pc, monotonic_now_ns(), true);
  REQUIRE(r.frames.size() == 2);
  INFO(frame_text(r.frames[0]), " | ", frame_text(r.frames[1]));
  CHECK(r.frames[0].function == "symbolize_test::inlined_helper(int*)");
  CHECK(r.frames[0].line == static_cast<std::uint32_t>(helper_call_line));
  CHECK(r.frames[0].inlined);
  CHECK(same_file(r.frames[0].file, this_source_file()));
  CHECK(r.frames[1].function == "symbolize_test::calls_inlined_helper(int*, int*)");
  CHECK(r.frames[1].line == static_cast<std::uint32_t>(call_line));  // the call site, from DW_AT_call_line
  CHECK_FALSE(r.frames[1].inlined);
  CHECK(same_file(r.frames[1].file, this_source_file()));
  for (const symbolized_frame& f : r.frames) CHECK(f.quality == frame_quality::dwarf);
}

TEST_CASE("symbolize: internal-linkage functions are named with their namespace, inlined or not") {
  symbolizer s;
  s.refresh(monotonic_now_ns());
  int helper_call_line = 0, call_line = 0;
  const std::uintptr_t pc = internal_caller(&helper_call_line, &call_line);
  const resolved_address r = s.resolve(pc, monotonic_now_ns(), true);
  REQUIRE(r.frames.size() == 2);
  INFO(frame_text(r.frames[0]), " | ", frame_text(r.frames[1]));
  // Parameters only when the compiler wrote a linkage name (clang does, GCC does not).
  CHECK(r.frames[0].function.starts_with("(anonymous namespace)::internal_inlined_helper"));
  CHECK(r.frames[0].line == static_cast<std::uint32_t>(helper_call_line));
  CHECK(r.frames[0].inlined);
  // Not inlined: the ELF symbol starting at its code supplies the full name.
  CHECK(r.frames[1].function == "(anonymous namespace)::internal_caller(int*, int*)");
  CHECK(r.frames[1].line == static_cast<std::uint32_t>(call_line));

  int lambda_line = 0;
  const resolved_address in_lambda = s.resolve(calls_inlined_lambda(&lambda_line), monotonic_now_ns(), true);
  REQUIRE(in_lambda.frames.size() == 2);
  INFO(frame_text(in_lambda.frames[0]));
  const std::string_view lambda_name = in_lambda.frames[0].function;
  CHECK(lambda_name.starts_with("(anonymous namespace)::calls_inlined_lambda"));
  CHECK(lambda_name.find("operator()") != std::string_view::npos);
  CHECK(in_lambda.frames[0].line == static_cast<std::uint32_t>(lambda_line));
  CHECK(in_lambda.frames[1].function == "(anonymous namespace)::calls_inlined_lambda(int*)");
}

TEST_CASE("symbolize: C++ names are demangled, overloads told apart by their parameters") {
  symbolizer s;
  s.refresh(monotonic_now_ns());
  int line_int = 0, line_double = 0;
  const std::uintptr_t pc_int = symbolize_test::overloaded(&line_int);
  const std::uintptr_t pc_double = symbolize_test::overloaded(1.5, &line_double);
  const resolved_address a = s.resolve(pc_int, monotonic_now_ns(), true);
  REQUIRE(a.frames.size() == 1);
  CHECK(a.frames[0].function == "symbolize_test::overloaded(int*)");
  CHECK(a.frames[0].line == static_cast<std::uint32_t>(line_int));
  const resolved_address b = s.resolve(pc_double, monotonic_now_ns(), true);
  REQUIRE(b.frames.size() == 1);
  CHECK(b.frames[0].function == "symbolize_test::overloaded(double, int*)");
  CHECK(b.frames[0].line == static_cast<std::uint32_t>(line_double));
}

TEST_CASE("symbolize: a dlopen'ed library resolves while loaded and after dlclose, even with its file deleted") {
  spanprof_test::temp_dir dir("spanprof-symbolize");
  const std::string copy = dir / "libcopy_of_symbolize_lib.so";
  fs::copy_file(required_env("SPANPROF_SYMBOLIZE_LIB"), copy);
  const std::string expected_build_id = readelf_build_id(copy);
  const std::string expected_path = fs::canonical(copy).string();

  symbolizer_options options;
  options.in_app_modules = {"copy_of_symbolize"};
  symbolizer s(options);
  s.refresh(monotonic_now_ns());
  loaded_library library(copy);
  s.refresh(monotonic_now_ns());  // sees the library loaded (and opens its file)
  int call_line = 0;
  const std::int64_t sampled_ns = monotonic_now_ns();
  const std::uintptr_t pc = library.entry("spanprof_symbolize_lib_exported")(&call_line);
  s.refresh(monotonic_now_ns());
  const std::int64_t after_last_refresh_ns = monotonic_now_ns();

  const auto check = [&](const resolved_address& r) {
    REQUIRE(r.module != nullptr);
    REQUIRE(r.frames.size() == 1);
    INFO(frame_text(r.frames[0]));
    CHECK(r.frames[0].function == "spanprof_symbolize_lib::exported_call_site(int*)");
    CHECK(same_file(r.frames[0].file, library_source_file()));
    CHECK(r.frames[0].line == static_cast<std::uint32_t>(call_line));
    CHECK(r.frames[0].quality == frame_quality::dwarf);
    CHECK(r.module->path == expected_path);
    CHECK(r.module->build_id_hex == expected_build_id);
    CHECK(r.module->in_app);  // configured by substring
    CHECK_FALSE(r.module->is_main_executable);
    CHECK(r.relative_addr == pc - r.module->bias);
  };
  check(s.resolve(pc, sampled_ns, true));

  library.close();
  fs::remove(copy);
  s.refresh(monotonic_now_ns());
  s.clear_cache();  // symbolize again, now from the kept-open file of an unloaded module
  const resolved_address certain = s.resolve(pc, sampled_ns, true);
  REQUIRE(certain.module != nullptr);
  CHECK_FALSE(certain.module->loaded());
  check(certain);
  // Sampled after the last refresh that saw it and before the one that did not: it is the only
  // module that can have been there, and nothing else was loaded meanwhile.
  check(s.resolve(pc, after_last_refresh_ns, true));
}

TEST_CASE("symbolize: copies without debug info or symbols fall back, never to a wrong name or line") {
  symbolizer s;
  s.refresh(monotonic_now_ns());
  int exported_line = 0, hidden_line = 0;

  SUBCASE("--strip-debug: the symbol table names both functions, without file or line") {
    loaded_library library(required_env("SPANPROF_SYMBOLIZE_LIB_NODEBUG"));
    s.refresh(monotonic_now_ns());
    const std::uintptr_t exported = library.entry("spanprof_symbolize_lib_exported")(&exported_line);
    const std::uintptr_t hidden = library.entry("spanprof_symbolize_lib_hidden")(&hidden_line);
    const resolved_address a = s.resolve(exported, monotonic_now_ns(), true);
    REQUIRE(a.frames.size() == 1);
    INFO(frame_text(a.frames[0]));
    CHECK(a.frames[0].quality == frame_quality::symtab);
    CHECK(a.frames[0].function == "spanprof_symbolize_lib::exported_call_site(int*)");
    CHECK(a.frames[0].file.empty());
    CHECK(a.frames[0].line == 0);
    CHECK(a.frames[0].symbol_offset > 0);
    const resolved_address b = s.resolve(hidden, monotonic_now_ns(), true);
    REQUIRE(b.frames.size() == 1);
    INFO(frame_text(b.frames[0]));
    CHECK(b.frames[0].quality == frame_quality::symtab);
    CHECK(b.frames[0].function == "(anonymous namespace)::hidden_call_site(int*)");
    CHECK(b.frames[0].line == 0);
  }
  SUBCASE("--strip-all: .dynsym still names the exported function; the internal one is module+offset") {
    const std::string path = required_env("SPANPROF_SYMBOLIZE_LIB_STRIPPED");
    loaded_library library(path);
    s.refresh(monotonic_now_ns());
    const std::uintptr_t exported = library.entry("spanprof_symbolize_lib_exported")(&exported_line);
    const std::uintptr_t hidden = library.entry("spanprof_symbolize_lib_hidden")(&hidden_line);
    const resolved_address a = s.resolve(exported, monotonic_now_ns(), true);
    REQUIRE(a.frames.size() == 1);
    CHECK(a.frames[0].quality == frame_quality::symtab);
    CHECK(a.frames[0].function == "spanprof_symbolize_lib::exported_call_site(int*)");
    const resolved_address b = s.resolve(hidden, monotonic_now_ns(), true);
    REQUIRE(b.module != nullptr);
    REQUIRE(b.frames.size() == 1);
    INFO(frame_text(b.frames[0]));
    CHECK(b.frames[0].quality == frame_quality::module_offset);
    std::string expected = fs::path(path).filename().string() + "+0x";
    append_hex(expected, hidden - 1 - b.module->bias);  // the looked-up byte, inside the call
    CHECK(b.frames[0].function == expected);
    CHECK(b.frames[0].file.empty());
    CHECK(b.frames[0].line == 0);
    CHECK(b.module->contains(hidden));
    // The nearest exported symbol below it has no size: it must not have named the frame.
    const std::uintptr_t sizeless = library.address_of("spanprof_symbolize_lib_sizeless");
    CHECK(sizeless < hidden);
    CHECK(hidden - sizeless < 256);  // in the same small section, just before hidden_call_site
  }
  SUBCASE("DWARF split off behind .gnu_debuglink is found beside the library") {
    loaded_library library(required_env("SPANPROF_SYMBOLIZE_LIB_DEBUGLINK"));
    s.refresh(monotonic_now_ns());
    const std::uintptr_t hidden = library.entry("spanprof_symbolize_lib_hidden")(&hidden_line);
    const resolved_address r = s.resolve(hidden, monotonic_now_ns(), true);
    REQUIRE(r.frames.size() == 1);
    INFO(frame_text(r.frames[0]));
    CHECK(r.frames[0].quality == frame_quality::dwarf);
    CHECK(r.frames[0].function == "(anonymous namespace)::hidden_call_site(int*)");
    CHECK(r.frames[0].line == static_cast<std::uint32_t>(hidden_line));
    CHECK(same_file(r.frames[0].file, library_source_file()));
  }
}

TEST_CASE("symbolize: a module whose file is missing, not ELF, or another build gives module+offset") {
  const std::string library = required_env("SPANPROF_SYMBOLIZE_LIB");
  // Where a named call site lies in the library, relative to its load address.
  std::uintptr_t call_site = 0;
  {
    symbolizer probe;
    loaded_library loaded(library);
    probe.refresh(monotonic_now_ns());
    int line = 0;
    const resolved_address r = probe.resolve(loaded.entry("spanprof_symbolize_lib_exported")(&line), monotonic_now_ns(), true);
    REQUIRE(r.frames[0].quality == frame_quality::dwarf);
    call_site = r.relative_addr;
  }
  REQUIRE(call_site < 0x100000);
  // The library's file described as loaded at made-up places: with its real build id (the
  // control: names come from the file), and with another one (a rebuilt file: no names).
  observed_module same_build = synthetic(library, 0x700000, 0x800000);
  same_build.build_id = hex_bytes(readelf_build_id(library));
  observed_module other_build = synthetic(library, 0x500000, 0x600000);
  other_build.build_id = {0xde, 0xad, 0xbe, 0xef};
  observed_module missing = synthetic("/nonexistent/libgone.so", 0x100000, 0x200000);
  observed_module not_elf = synthetic(this_source_file().string(), 0x300000, 0x400000);
  symbolizer s;
  s.apply(snapshot(4, 0, {missing, not_elf, other_build, same_build}), 100);
  const resolved_address control = s.resolve(0x700000 + call_site, 100, true);
  REQUIRE(control.frames.size() == 1);
  CHECK(control.frames[0].function == "spanprof_symbolize_lib::exported_call_site(int*)");
  for (const std::uintptr_t base : {std::uintptr_t{0x100000}, std::uintptr_t{0x300000}, std::uintptr_t{0x500000}}) {
    const resolved_address r = s.resolve(base + call_site, 100, true);
    REQUIRE(r.module != nullptr);
    REQUIRE(r.frames.size() == 1);
    INFO(frame_text(r.frames[0]));
    CHECK(r.frames[0].quality == frame_quality::module_offset);
    std::string expected = std::string(r.module->file_name()) + "+0x";
    append_hex(expected, call_site - 1);
    CHECK(r.frames[0].function == expected);
    CHECK(r.frames[0].line == 0);
  }
  const resolved_address nowhere = s.resolve(0x900000, 100, false);
  CHECK(nowhere.module == nullptr);
  REQUIRE(nowhere.frames.size() == 1);
  CHECK(nowhere.frames[0].quality == frame_quality::unknown);
  CHECK(nowhere.frames[0].function == "unknown module");
  CHECK(s.resolve(0, 100, true).frames[0].quality == frame_quality::unknown);
}

TEST_CASE("symbolize: build ids equal readelf's; Sentry debug ids and images") {
  SUBCASE("the test binary's build id read from memory") {
    module_map map;
    map.refresh(monotonic_now_ns());
    REQUIRE_FALSE(map.modules().empty());
    const module_info& main = *map.modules()[0];
    REQUIRE(main.is_main_executable);
    CHECK(main.build_id_hex == readelf_build_id(this_executable()));
    CHECK(main.build_id_hex.size() == 40);  // SHA-1, the linker's default
    CHECK(main.image_addr == main.bias + main.image_vmaddr);
    CHECK(main.image_size > 0);
  }
  SUBCASE("debug_id: first 16 bytes, first three GUID fields byte-swapped, zero-padded") {
    const auto id = [](std::string_view hex) { return debug_id_from_build_id(hex_bytes(hex)); };
    // sentry-native's test fixture (tests/unit/test_modulefinder.c) and Relay's docs example.
    CHECK(id("1c304742f114215453a8a777f6cdb3a2b8505e11") == "4247301c-14f1-5421-53a8-a777f6cdb3a2");
    CHECK(id("68220ae2c65d65c1b6aaa12fa6765a6ec2f5f434") == "e20a2268-5dc6-c165-b6aa-a12fa6765a6e");
    CHECK(id("b0c1d2e3f405a6b7c8d9e0f1a2b3c4d5e6f70819") == "e3d2c1b0-05f4-b7a6-c8d9-e0f1a2b3c4d5");
    CHECK(id("0102030405060708") == "04030201-0605-0807-0000-000000000000");
    CHECK(id("").empty());
  }
  SUBCASE("images_for: each module used, once, with its ids and addresses") {
    symbolizer s;
    s.refresh(monotonic_now_ns());
    int line = 0;
    std::vector<resolved_address> used;
    used.push_back(s.resolve(symbolize_test::known_call_site(&line), monotonic_now_ns(), true));
    used.push_back(s.resolve(symbolize_test::overloaded(&line), monotonic_now_ns(), true));
    // A libdw function: surely another module (a libc function may be a sanitizer interceptor).
    used.push_back(s.resolve(reinterpret_cast<std::uintptr_t>(&::dwfl_version), monotonic_now_ns(), false));
    used.push_back(s.resolve(0x10, monotonic_now_ns(), false));  // no module: no image
    const std::vector<debug_image> images = s.images_for(used);
    REQUIRE(images.size() == 2);
    const module_info& main = *used[0].module;
    CHECK(images[0].type == "elf");
    CHECK(images[0].code_file == main.path);
    CHECK(images[0].code_id == readelf_build_id(this_executable()));
    CHECK(images[0].debug_id == debug_id_from_build_id(main.build_id));
    CHECK(images[0].image_addr == hex_address(main.image_addr));
    CHECK(images[0].image_size == main.image_size);
    CHECK(images[1].code_file == used[2].module->path);
    CHECK(images[1].code_id == readelf_build_id(used[2].module->path));
  }
}

TEST_CASE("symbolize: frames already handed out stay valid while more addresses are resolved") {
  symbolizer s;
  const std::int64_t t = monotonic_now_ns();
  s.refresh(t);
  int line = 0;
  const resolved_address first = s.resolve(symbolize_test::known_call_site(&line), t, true);
  const std::uint64_t generation = s.cache_generation();
  // Enough misses to outgrow any first allocation of the frame storage.
  const module_info& main = *first.module;
  const address_range code = main.executable_ranges.front();
  for (std::uintptr_t pc = code.start + 1; pc < code.end && s.misses() < 6000; pc += 7) (void)s.resolve(pc, t, false);
  REQUIRE(s.cache_generation() == generation);
  REQUIRE(first.frames.size() == 1);
  CHECK(first.frames[0].function == "symbolize_test::known_call_site(int*)");
  CHECK(first.frames[0].line == static_cast<std::uint32_t>(line));
  CHECK(same_file(first.frames[0].file, this_source_file()));
  s.clear_cache();
  CHECK(s.cache_generation() == generation + 1);
}

TEST_CASE("symbolize: each distinct address is symbolized once; a hit allocates nothing; the cache is bounded") {
  int line_a = 0, line_b = 0, line_c = 0;
  const std::uintptr_t a = symbolize_test::known_call_site(&line_a);
  const std::uintptr_t b = symbolize_test::overloaded(&line_b);
  const std::uintptr_t c = symbolize_test::overloaded(2.5, &line_c);
  SUBCASE("hits") {
    symbolizer s;
    s.refresh(monotonic_now_ns());
    const std::int64_t t = monotonic_now_ns();
    s.refresh(t);
    (void)s.resolve(a, t, true);
    (void)s.resolve(b, t, true);
    CHECK(s.misses() == 2);
    // No doctest macro inside the counted loop: only the look-ups are counted.
    bool all_right = true;
    const std::uint64_t before = spanprof_test::thread_allocations();
    for (int i = 0; i < 100; ++i) {
      all_right = all_right && s.resolve(a, t, true).frames[0].line == static_cast<std::uint32_t>(line_a);
      all_right = all_right && s.resolve(b, t, true).frames[0].line == static_cast<std::uint32_t>(line_b);
    }
    const std::uint64_t allocations = spanprof_test::thread_allocations() - before;
    CHECK(all_right);
    if (SPANPROF_TEST_COUNTING_NEW) CHECK(allocations == 0);
    CHECK(s.misses() == 2);
    CHECK(s.cached_addresses() == 2);
  }
  SUBCASE("a full cache is cleared, and what follows is still right") {
    symbolizer_options options;
    options.max_cached_addresses = 2;
    symbolizer s(options);
    const std::int64_t t = monotonic_now_ns();
    s.refresh(t);
    (void)s.resolve(a, t, true);
    (void)s.resolve(b, t, true);
    const resolved_address third = s.resolve(c, t, true);
    CHECK(s.cached_addresses() <= 2);
    REQUIRE(third.frames.size() == 1);
    CHECK(third.frames[0].function == "symbolize_test::overloaded(double, int*)");
    CHECK(s.resolve(a, t, true).frames[0].line == static_cast<std::uint32_t>(line_a));
    CHECK(s.misses() == 4);
  }
}
