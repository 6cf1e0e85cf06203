// Safe file handling (issue 12): AtomicFileWriter and CheckOutputPath never destroy what is not
// theirs (special files, a user's NAME.tmp, a symbolic link, a file's mode), and the readers
// refuse special files at once instead of blocking on them.

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "dlb/data/fashion_mnist.hpp"
#include "dlb/data/idx.hpp"
#include "dlb/io/atomic_file.hpp"
#include "dlb/io/posix_file.hpp"
#include "support/helpers.hpp"
#include "support/temp_dir.hpp"

namespace {

using dlb_test::MessageContains;
namespace fs = std::filesystem;

/// This program's scratch directories: dlb_test_files_<random digits>.
struct TempDir : dlb_test::TempDir {
  TempDir() : dlb_test::TempDir("dlb_test_files_") {}
};

/// Fails the test (by SIGALRM) instead of hanging forever should a call block on a FIFO.
struct HangGuard {
  HangGuard() { ::alarm(20); }
  ~HangGuard() { ::alarm(0); }
  HangGuard(const HangGuard&) = delete;
  HangGuard& operator=(const HangGuard&) = delete;
};

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  REQUIRE(out.good());
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

struct stat LinkStatus(const std::string& path) {
  struct stat status {};
  REQUIRE(::lstat(path.c_str(), &status) == 0);
  return status;
}

mode_t Permissions(const std::string& path) { return LinkStatus(path).st_mode & 07777; }

/// The names in a directory.
std::set<std::string> Listing(const TempDir& dir) {
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir.path)) {
    names.insert(entry.path().filename().string());
  }
  return names;
}

void MakeFifo(const std::string& path) { REQUIRE(::mkfifo(path.c_str(), 0600) == 0); }

/// The writers under test: the plain one and the IDX one, both on the same AtomicFileWriter.
void WriteWithEachWriter(const std::string& path, const std::function<void()>& check) {
  SECTION("WriteFileAtomically") {
    dlb::WriteFileAtomically(path, "new content\n");
    check();
  }
  SECTION("WriteIdxLabels") {
    dlb::WriteIdxLabels(path, {1, 2, 3});
    check();
  }
}

}  // namespace

TEST_CASE("AtomicFileWriter writes a new file and leaves nothing else behind", "[io]") {
  TempDir dir;
  const mode_t mask = ::umask(022);
  dlb::WriteFileAtomically(dir / "out.csv", "a,b\n1,2\n");
  ::umask(mask);
  CHECK(ReadText(dir / "out.csv") == "a,b\n1,2\n");
  CHECK(Permissions(dir / "out.csv") == 0644);  // 0666 minus the umask
  CHECK(Listing(dir) == std::set<std::string>{"out.csv"});
  dlb::WriteFileAtomically(dir / "out.csv", "replaced\n");
  CHECK(ReadText(dir / "out.csv") == "replaced\n");
  CHECK(Listing(dir) == std::set<std::string>{"out.csv"});
}

TEST_CASE("AtomicFileWriter without Commit leaves the old file and no temporary file", "[io]") {
  TempDir dir;
  WriteText(dir / "model.bin", "old");
  {
    dlb::AtomicFileWriter writer(dir / "model.bin");
    writer.Write("partial");
    CHECK(Listing(dir).size() == 2);  // the target and the temporary file
  }
  CHECK(ReadText(dir / "model.bin") == "old");
  CHECK(Listing(dir) == std::set<std::string>{"model.bin"});
}

TEST_CASE("AtomicFileWriter never touches a user's NAME.tmp", "[io]") {
  TempDir dir;
  WriteText(dir / "out.csv.tmp", "the user's own file");
  WriteText(dir / "out.csv", "old");
  WriteWithEachWriter(dir / "out.csv", [&] {
    CHECK(ReadText(dir / "out.csv.tmp") == "the user's own file");
    CHECK(Listing(dir) == std::set<std::string>{"out.csv", "out.csv.tmp"});
  });
}

TEST_CASE("AtomicFileWriter keeps an existing file's mode", "[io]") {
  TempDir dir;
  WriteText(dir / "secret", "old");
  REQUIRE(::chmod((dir / "secret").c_str(), 0600) == 0);
  WriteWithEachWriter(dir / "secret", [&] {
    CHECK(ReadText(dir / "secret") != "old");
    CHECK(Permissions(dir / "secret") == 0600);
  });
  WriteText(dir / "script", "old");
  REQUIRE(::chmod((dir / "script").c_str(), 0751) == 0);
  dlb::WriteFileAtomically(dir / "script", "new");
  CHECK(Permissions(dir / "script") == 0751);
}

TEST_CASE("AtomicFileWriter writes through a symbolic link, which stays a link", "[io]") {
  TempDir dir;
  fs::create_directory(dir.path / "real");
  WriteText(dir / "real/target", "old");
  REQUIRE(::chmod((dir / "real/target").c_str(), 0600) == 0);
  // A chain: link -> hop (absolute) -> real/target (relative to hop's directory).
  fs::create_symlink(dir.path / "real/target", dir.path / "hop");
  fs::create_symlink("hop", dir.path / "link");
  WriteWithEachWriter(dir / "link", [&] {
    CHECK(S_ISLNK(LinkStatus(dir / "link").st_mode));
    CHECK(S_ISLNK(LinkStatus(dir / "hop").st_mode));
    CHECK(fs::read_symlink(dir.path / "link") == "hop");
    CHECK(ReadText(dir / "real/target") != "old");
    CHECK(Permissions(dir / "real/target") == 0600);
    // The temporary file was made next to the target, and is gone.
    CHECK(Listing(dir) == std::set<std::string>{"hop", "link", "real"});
    CHECK(std::distance(fs::directory_iterator(dir.path / "real"), fs::directory_iterator()) == 1);
  });
}

TEST_CASE("AtomicFileWriter creates the target of a dangling link", "[io]") {
  TempDir dir;
  fs::create_symlink("later.csv", dir.path / "link.csv");
  dlb::WriteFileAtomically(dir / "link.csv", "x\n");
  CHECK(S_ISLNK(LinkStatus(dir / "link.csv").st_mode));
  CHECK(ReadText(dir / "later.csv") == "x\n");
}

TEST_CASE("AtomicFileWriter refuses special files and leaves them as they are", "[io]") {
  TempDir dir;
  HangGuard guard;
  MakeFifo(dir / "fifo");
  fs::create_symlink(dir.path / "fifo", dir.path / "link-to-fifo");
  for (const std::string& path : {dir / "fifo", dir / "link-to-fifo"}) {
    INFO(path);
    REQUIRE_THROWS_MATCHES(dlb::WriteFileAtomically(path, "x"), dlb::FileError,
                           MessageContains({path, "cannot write: not a regular file but a FIFO",
                                            "regular files only"}));
    REQUIRE_THROWS_MATCHES(dlb::WriteIdxLabels(path, {1}), dlb::FileError,
                           MessageContains({"not a regular file but a FIFO"}));
    REQUIRE_THROWS_MATCHES(dlb::CheckOutputPath(path), dlb::FileError,
                           MessageContains({"not a regular file but a FIFO"}));
  }
  CHECK(S_ISFIFO(LinkStatus(dir / "fifo").st_mode));
  REQUIRE_THROWS_MATCHES(dlb::WriteFileAtomically(dir / "link-to-fifo", "x"), dlb::FileError,
                         MessageContains({"the symbolic link leads to " + dir / "fifo"}));
  CHECK(Listing(dir) == std::set<std::string>{"fifo", "link-to-fifo"});

  // Device files: as root, a rename over them would have replaced /dev/null by a regular file.
  for (const std::string device : {"/dev/null", "/dev/full"}) {
    INFO(device);
    if (!fs::exists(device)) continue;
    REQUIRE_THROWS_MATCHES(dlb::WriteFileAtomically(device, "x"), dlb::FileError,
                           MessageContains({device, "not a regular file but a character device"}));
    REQUIRE_THROWS_MATCHES(dlb::CheckOutputPath(device), dlb::FileError,
                           MessageContains({"character device"}));
    CHECK(S_ISCHR(LinkStatus(device).st_mode));
  }
  REQUIRE_THROWS_MATCHES(dlb::WriteFileAtomically(dir.path.string(), "x"), dlb::FileError,
                         MessageContains({"expected a file, found a directory"}));
}

TEST_CASE("AtomicFileWriter reports a loop of symbolic links and a missing directory", "[io]") {
  TempDir dir;
  fs::create_symlink("b", dir.path / "a");
  fs::create_symlink("a", dir.path / "b");
  REQUIRE_THROWS_MATCHES(dlb::WriteFileAtomically(dir / "a", "x"), dlb::FileError,
                         MessageContains({dir / "a", "Too many levels of symbolic links"}));
  REQUIRE_THROWS_MATCHES(dlb::CheckOutputPath(dir / "a"), dlb::FileError,
                         MessageContains({"Too many levels of symbolic links"}));
  REQUIRE_THROWS_MATCHES(dlb::WriteFileAtomically(dir / "missing/out.csv", "x"), dlb::FileError,
                         MessageContains({"the directory " + dir / "missing" + " does not exist"}));
  WriteText(dir / "file", "");
  REQUIRE_THROWS_MATCHES(dlb::CheckOutputPath(dir / "file/out.csv"), dlb::FileError,
                         MessageContains({"Not a directory"}));
  REQUIRE_THROWS_MATCHES(dlb::CheckOutputPath(""), dlb::FileError,
                         MessageContains({"the path is empty"}));
}

TEST_CASE("AtomicFileWriter respects permissions the way the shell does", "[io]") {
  TempDir dir;
  WriteText(dir / "read-only", "old");
  REQUIRE(::chmod((dir / "read-only").c_str(), 0444) == 0);
  fs::create_directory(dir.path / "locked");
  REQUIRE(::chmod((dir / "locked").c_str(), 0555) == 0);
  if (::geteuid() == 0) {
    // root may write anything; the mode is still kept.
    dlb::WriteFileAtomically(dir / "read-only", "new");
    CHECK(ReadText(dir / "read-only") == "new");
    CHECK(Permissions(dir / "read-only") == 0444);
    CHECK_NOTHROW(dlb::CheckOutputPath(dir / "locked/out.csv"));
  } else {
    REQUIRE_THROWS_MATCHES(dlb::WriteFileAtomically(dir / "read-only", "new"), dlb::FileError,
                           MessageContains({"Permission denied"}));
    CHECK(ReadText(dir / "read-only") == "old");
    REQUIRE_THROWS_MATCHES(dlb::CheckOutputPath(dir / "locked/out.csv"), dlb::FileError,
                           MessageContains({"cannot create a temporary file", "Permission denied"}));
  }
  REQUIRE(::chmod((dir / "locked").c_str(), 0755) == 0);
}

TEST_CASE("CheckOutputPath accepts a writable path and writes nothing", "[io]") {
  TempDir dir;
  CHECK_NOTHROW(dlb::CheckOutputPath(dir / "new.csv"));
  WriteText(dir / "old.csv", "keep");
  CHECK_NOTHROW(dlb::CheckOutputPath(dir / "old.csv"));
  fs::create_symlink("old.csv", dir.path / "link.csv");
  CHECK_NOTHROW(dlb::CheckOutputPath(dir / "link.csv"));
  CHECK(ReadText(dir / "old.csv") == "keep");
  CHECK(Listing(dir) == std::set<std::string>{"link.csv", "old.csv"});
}

TEST_CASE("OpenInputFile refuses special files without blocking", "[io]") {
  TempDir dir;
  HangGuard guard;
  MakeFifo(dir / "fifo");
  REQUIRE_THROWS_MATCHES(dlb::OpenInputFile(dir / "fifo"), dlb::FileError,
                         MessageContains({dir / "fifo", "cannot open: not a regular file but a "
                                                        "FIFO (named pipe)"}));
  REQUIRE_THROWS_MATCHES(dlb::ReadIdxImages(dir / "fifo"), dlb::FileError,
                         MessageContains({"FIFO"}));
  REQUIRE_THROWS_MATCHES(dlb::ReadIdxLabels("/dev/zero"), dlb::FileError,
                         MessageContains({"not a regular file but a character device"}));
  fs::create_symlink("loop", dir.path / "loop");
  REQUIRE_THROWS_MATCHES(dlb::ReadIdxImages(dir / "loop"), dlb::FileError,
                         MessageContains({"Too many levels of symbolic links"}));
  WriteText(dir / "real", "data");
  fs::create_symlink("real", dir.path / "link");
  CHECK(dlb::OpenInputFile(dir / "link") != nullptr);
}

TEST_CASE("LoadFashionMnist says 'symbolic link loop' or 'FIFO', not 'not found'", "[io]") {
  TempDir dir;
  HangGuard guard;
  fs::create_symlink("train-images-idx3-ubyte", dir.path / "train-images-idx3-ubyte");
  REQUIRE_THROWS_MATCHES(dlb::LoadFashionMnist<float>(dir.path.string()), dlb::FileError,
                         MessageContains({"train-images-idx3-ubyte: cannot open: Too many levels "
                                          "of symbolic links"}));
  fs::remove(dir.path / "train-images-idx3-ubyte");
  MakeFifo(dir / "train-images-idx3-ubyte");
  MakeFifo(dir / "train-labels-idx1-ubyte");
  REQUIRE_THROWS_MATCHES(dlb::LoadFashionMnist<float>(dir.path.string()), dlb::FileError,
                         MessageContains({"train-images-idx3-ubyte: cannot open: not a regular "
                                          "file but a FIFO"}));
}
