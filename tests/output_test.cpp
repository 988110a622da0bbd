// output.hpp: creating the output folder, refusing one that cannot be written, and writing files
// atomically without ever writing outside the folder (hostile names, planted links).
#include <spanprof/detail/collect/output.hpp>

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "support/test_support.hpp"

using spanprof_test::read_file;
using spanprof_test::temp_dir;

namespace {

namespace sd = spanprof::detail;
namespace fs = std::filesystem;

void write_file(const fs::path& file, const std::string& content) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << content;
  REQUIRE(out.good());
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  return names;
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The temporary name write_atomically uses (output.hpp: "<name>.tmp-<pid>").
std::string temp_name_for(const std::string& name) { return name + ".tmp-" + std::to_string(::getpid()); }

}  // namespace

TEST_CASE("make_directories") {
  temp_dir base("spanprof-output");
  SUBCASE("creates every missing level") {
    const std::string nested = base / "a/b/c/d";
    CHECK(sd::make_directories(nested) == 0);
    CHECK(is_directory(base / "a"));
    CHECK(is_directory(base / "a/b"));
    CHECK(is_directory(nested));
    CHECK(sd::make_directories(nested) == 0);  // already there: fine
  }
  SUBCASE("accepts a trailing slash and repeated slashes") {
    CHECK(sd::make_directories(base / "x//y/") == 0);
    CHECK(is_directory(base / "x/y"));
  }
  SUBCASE("fails below a regular file") {
    write_file(base.path() / "file", "not a folder");
    CHECK(sd::make_directories(base / "file/sub") == ENOTDIR);
    CHECK(sd::make_directories(base / "file") == ENOTDIR);
    CHECK_FALSE(fs::exists(base.path() / "file" / "sub"));
  }
  SUBCASE("fails on an empty path") { CHECK(sd::make_directories("") != 0); }
}

TEST_CASE("output_folder::open") {
  temp_dir base("spanprof-output");
  std::string error;
  sd::output_folder folder;

  SUBCASE("creates a missing nested folder") {
    const std::string path = base / "profiles/today/run-1";
    REQUIRE_FALSE(fs::exists(path));
    CHECK(folder.open(path, error));
    INFO(error);
    CHECK(folder.is_open());
    CHECK(folder.path() == path);
    CHECK(is_directory(path));
  }
  SUBCASE("fails below a regular file, naming the path") {
    write_file(base.path() / "plain-file", "x");
    const std::string path = base / "plain-file/profiles";
    CHECK_FALSE(folder.open(path, error));
    CHECK_FALSE(folder.is_open());
    INFO(error);
    CHECK(error.find(path) != std::string::npos);
    CHECK(error.rfind("spanprof: ", 0) == 0);
  }
  SUBCASE("fails on a folder where no file can be created, naming the path") {
    // root ignores 0555, so as root use /proc: a folder that exists, that access(2) calls
    // writable for root, and where creating a file fails. Otherwise a 0555 folder.
    std::string path;
    if (::geteuid() == 0) {
      path = "/proc";
    } else {
      path = base / "read-only";
      REQUIRE(::mkdir(path.c_str(), 0555) == 0);
    }
    INFO("folder ", path, ", euid ", ::geteuid());
    CHECK_FALSE(folder.open(path, error));
    CHECK_FALSE(folder.is_open());
    INFO(error);
    CHECK(error.find(path) != std::string::npos);
    std::string ignored;
    CHECK_FALSE(folder.write_atomically("probe.json", "{}", ignored));
  }
  SUBCASE("opening leaves no file behind") {
    REQUIRE(folder.open(base / "clean", error));
    CHECK(names_in(base / "clean").empty());
  }
}

TEST_CASE("output_folder::write_atomically") {
  temp_dir base("spanprof-output");
  const std::string path = base / "out";
  sd::output_folder folder;
  std::string error;
  REQUIRE(folder.open(path, error));

  SUBCASE("writes exactly the content and leaves no temporary file") {
    std::string content = "{\"a\":1}\n";
    content += std::string("\0binary\xFF\n", 9);
    content += std::string(1 << 20, 'z');
    REQUIRE(folder.write_atomically("t.json", content, error));
    INFO(error);
    CHECK(read_file(fs::path(path) / "t.json") == content);
    CHECK(names_in(path) == std::vector<std::string>{"t.json"});
    REQUIRE(folder.write_atomically("empty.json", "", error));
    CHECK(fs::file_size(fs::path(path) / "empty.json") == 0);
  }
  SUBCASE("replaces an existing file by rename, never in place") {
    REQUIRE(folder.write_atomically("t.json", "old content", error));
    // A reader that opened the old file keeps seeing all of it: the new one is a new inode.
    const int reader = ::open((fs::path(path) / "t.json").c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(reader >= 0);
    REQUIRE(folder.write_atomically("t.json", "new", error));
    char buffer[64] = {};
    const ssize_t n = ::pread(reader, buffer, sizeof buffer, 0);
    ::close(reader);
    CHECK(std::string(buffer, n > 0 ? static_cast<std::size_t>(n) : 0) == "old content");
    CHECK(read_file(fs::path(path) / "t.json") == "new");
    CHECK(names_in(path) == std::vector<std::string>{"t.json"});
  }
  SUBCASE("refuses names that are not plain file names") {
    write_file(base.path() / "victim", "precious");
    for (const std::string& name : {std::string("a/b"), std::string("../victim"), std::string("/tmp/x"),
                                    std::string("."), std::string(".."), std::string(""), std::string("victim/"),
                                    std::string("x\0/../../victim", 15), std::string("t.json\0", 7)}) {
      INFO("name \"", name, "\" (", name.size(), " bytes)");
      std::string refused;
      CHECK_FALSE(folder.write_atomically(name, "payload", refused));
      CHECK_FALSE(refused.empty());
    }
    CHECK(names_in(path).empty());
    CHECK(read_file(base.path() / "victim") == "precious");
  }
  SUBCASE("fails when the folder is not open") {
    sd::output_folder closed;
    std::string refused;
    CHECK_FALSE(closed.write_atomically("t.json", "x", refused));
    CHECK_FALSE(refused.empty());
  }
}

TEST_CASE("planted links never make write_atomically write outside the folder") {
  temp_dir base("spanprof-output");
  const fs::path out = base / "out";
  const fs::path outside = base.path() / "outside.txt";
  sd::output_folder folder;
  std::string error;
  REQUIRE(folder.open(out.string(), error));
  write_file(outside, "precious");

  SUBCASE("a symlink at the final name is replaced, not followed") {
    fs::create_symlink(outside, out / "t.json");
    CHECK(folder.write_atomically("t.json", "new", error));
    INFO(error);
    CHECK(read_file(outside) == "precious");
    CHECK_FALSE(fs::is_symlink(out / "t.json"));
    CHECK(read_file(out / "t.json") == "new");
  }
  SUBCASE("a symlink at the temporary name is not followed") {
    fs::create_symlink(outside, out / temp_name_for("t.json"));
    (void)folder.write_atomically("t.json", "new", error);  // may fail; must not escape
    CHECK(read_file(outside) == "precious");
  }
  SUBCASE("a dangling symlink at the temporary name creates nothing outside") {
    const fs::path target = base.path() / "created-outside";
    fs::create_symlink(target, out / temp_name_for("t.json"));
    (void)folder.write_atomically("t.json", "new", error);
    CHECK_FALSE(fs::exists(target));
  }
  SUBCASE("a hard link at the temporary name is not written through") {
    fs::create_hard_link(outside, out / temp_name_for("t.json"));
    (void)folder.write_atomically("t.json", "new", error);
    CHECK(read_file(outside) == "precious");
  }
  SUBCASE("a symlink to another folder at the final name") {
    const fs::path elsewhere = base.path() / "elsewhere";
    fs::create_directory(elsewhere);
    fs::create_directory_symlink(elsewhere, out / "t.json");
    (void)folder.write_atomically("t.json", "new", error);
    CHECK(names_in(elsewhere).empty());
  }
}
