// dlb::SameFile and dlb::IdentifyFile (include/dlb/io/same_file.hpp): the paths that lead to
// one file, existing or not yet written, whatever their spelling or links, and those that
// do not.

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include "dlb/io/same_file.hpp"
#include "support/helpers.hpp"
#include "support/temp_dir.hpp"

namespace {

using dlb_test::MessageContains;
namespace fs = std::filesystem;

struct TempDir : dlb_test::TempDir {
  TempDir() : dlb_test::TempDir("dlb_test_same_file_") {}
};

void Touch(const std::string& path) { std::ofstream(path) << "x"; }

/// Makes `directory` the working directory until the end of the scope.
class WorkingDirectory {
 public:
  explicit WorkingDirectory(const fs::path& directory) : before_(fs::current_path()) {
    fs::current_path(directory);
  }
  ~WorkingDirectory() { fs::current_path(before_); }
  WorkingDirectory(const WorkingDirectory&) = delete;
  WorkingDirectory& operator=(const WorkingDirectory&) = delete;

 private:
  fs::path before_;
};

}  // namespace

TEST_CASE("SameFile: spellings of one path, existing or not", "[same file]") {
  TempDir dir;
  fs::create_directory(dir.path / "sub");
  const WorkingDirectory here(dir.path);
  for (const bool exists : {false, true}) {
    INFO((exists ? "the file exists" : "the file does not exist yet"));
    if (exists) Touch("x");
    CHECK(dlb::SameFile("x", "./x"));
    CHECK(dlb::SameFile("x", dir / "x"));
    CHECK(dlb::SameFile("sub/../x", "x"));
    CHECK(dlb::SameFile(".//x", "sub/./.././x"));
    CHECK_FALSE(dlb::SameFile("x", "y"));
    CHECK_FALSE(dlb::SameFile("x", "sub/x"));
    CHECK(dlb::IdentifyFile("x").exists == exists);
  }
  // An existing file and a missing one are never the same.
  CHECK_FALSE(dlb::SameFile("x", "x.csv"));
}

TEST_CASE("SameFile: symbolic links, hard links and linked directories", "[same file]") {
  TempDir dir;
  Touch(dir / "data");
  fs::create_symlink("data", dir.path / "link");
  fs::create_hard_link(dir.path / "data", dir.path / "hard");
  CHECK(dlb::SameFile(dir / "data", dir / "link"));
  CHECK(dlb::SameFile(dir / "data", dir / "hard"));
  CHECK(dlb::SameFile(dir / "link", dir / "hard"));

  // A dangling link leads to the file a write through it would create.
  fs::create_symlink("missing.csv", dir.path / "dangling");
  CHECK(dlb::SameFile(dir / "dangling", dir / "missing.csv"));
  CHECK_FALSE(dlb::IdentifyFile(dir / "dangling").exists);
  CHECK_FALSE(dlb::SameFile(dir / "dangling", dir / "data"));

  // A directory reached through a link: existing and missing files in it.
  fs::create_directory(dir.path / "real");
  fs::create_directory_symlink("real", dir.path / "alias");
  Touch(dir / "real/model");
  CHECK(dlb::SameFile(dir / "alias/model", dir / "real/model"));
  CHECK(dlb::SameFile(dir / "alias/new", dir / "real/new"));
  CHECK_FALSE(dlb::SameFile(dir / "alias/new", dir / "new"));
}

TEST_CASE("IdentifyFile: paths that cannot be looked up are a FileError naming them",
          "[same file][bad input]") {
  TempDir dir;
  fs::create_symlink("loop", dir.path / "loop");
  REQUIRE_THROWS_MATCHES(dlb::IdentifyFile(dir / "loop"), dlb::FileError,
                         MessageContains({dir / "loop", "Too many levels of symbolic links"}));
  REQUIRE_THROWS_MATCHES(dlb::IdentifyFile(dir / "no-such-dir/x"), dlb::FileError,
                         MessageContains({dir / "no-such-dir/x", "the directory", "does not exist"}));
}
