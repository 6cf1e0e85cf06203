#pragma once
/// \file
/// Writing an output file safely: all or nothing, regular files only, nobody's file lost.
///
/// Every file the library and its programs write (IDX files, CSV histories, model files) goes
/// through AtomicFileWriter, which guarantees:
///  * all or nothing: the bytes go to a temporary file in the target's directory, which is
///    flushed to disk (fsync) and renamed over the target only by Commit(); an error or a
///    crash leaves the old file or the complete new one, never a half-written one;
///  * the temporary file has a fresh name (".NAME.<16 random hex digits>.tmp") created with
///    O_EXCL, so no existing file is ever overwritten or deleted by it (not even NAME.tmp);
///  * regular files only: a target that is a FIFO, a device (/dev/null, /dev/full), a socket
///    or a directory is refused with a FileError, never replaced by a regular file;
///  * a symbolic link is written through: the file at the end of its chain of links is
///    replaced and the link stays a link (the target of a dangling link is created);
///  * an existing file keeps its permission bits (0600 stays 0600) and, where the process may
///    set them, its owner and group; a new file gets 0666 minus the umask;
///  * an existing file the process may not write (mode 0444 for a user other than root) is
///    refused, as the shell's `>` refuses it, and so is another user's file in a sticky
///    directory such as /tmp (the final rename would fail there).
/// A file with several hard links is replaced under the written name only; its other names
/// keep the old content (as with any writer that renames).
///
/// CheckOutputPath runs the same checks without writing (it creates and removes a temporary
/// file), so a program can refuse a bad output path before hours of work instead of after.
///
/// POSIX only, like the rest of the library's file handling.

#include <sys/stat.h>

#include <optional>
#include <string>
#include <string_view>

#include "dlb/core/error.hpp"
#include "dlb/core/linkage.hpp"
#include "dlb/io/posix_file.hpp"

namespace dlb {

namespace internal {

/// Where a write to a path really goes.
struct OutputTarget {
  std::string path;                   ///< the file replaced: the path, links resolved
  std::optional<struct stat> status;  ///< that file's status, when it exists
};

/// The directory holding `path` ("." for a bare file name).
DLB_INLINE std::string ParentDirectory(const std::string& path);

/// " (the symbolic link leads to TARGET)" when `target` differs from `path`, else "".
DLB_INLINE std::string ViaLink(const std::string& path, const std::string& target);

/// Follows `path` through its symbolic links (relative ones from the link's directory) to the
/// file a write replaces. Throws FileError on a loop of links ("Too many levels of symbolic
/// links") or a path that cannot be looked up (a component that is not a directory, no
/// permission to search a directory ...). A missing file is not an error here.
DLB_INLINE OutputTarget ResolveOutputTarget(const std::string& path);

}  // namespace internal

/// Writes one file all or nothing, with the guarantees listed at the top of this header.
///
/// Usage: construct (checks the path and creates the temporary file), Write() any number of
/// times, then Commit() (flush, fsync, rename). Destroying the writer without a successful
/// Commit() removes the temporary file and leaves the target as it was.
/// Every failure throws FileError naming the path the caller gave.
class AtomicFileWriter {
 public:
  DLB_INLINE explicit AtomicFileWriter(std::string path);

  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  DLB_INLINE ~AtomicFileWriter();

  /// The path given to the constructor.
  const std::string& Path() const noexcept { return path_; }
  /// The file Commit() replaces: Path() with its symbolic links resolved.
  const std::string& TargetPath() const noexcept { return target_; }

  /// Appends n bytes. Throws FileError when the disk is full or another write error occurs,
  /// and after Commit().
  DLB_INLINE void Write(const void* bytes, std::size_t n);
  void Write(std::string_view text) { Write(text.data(), text.size()); }

  /// Flushes the bytes to disk and renames the temporary file over the target. Throws
  /// FileError (and leaves the target untouched) when any step fails, or when the target has
  /// meanwhile become something other than a regular file.
  DLB_INLINE void Commit();

 private:
  std::string path_;
  std::string target_;
  std::string temp_;
  internal::FilePtr file_;
  bool committed_ = false;
};

/// Writes `content` to `path` with an AtomicFileWriter (all or nothing, regular files only).
DLB_INLINE void WriteFileAtomically(const std::string& path, std::string_view content);

/// Checks, without writing it, that an AtomicFileWriter could write `path` now: its links
/// resolve, an existing file there is a regular file we may write, and its directory exists
/// and lets us create a file (tried by creating and removing a temporary file).
/// Throws FileError saying why not.
DLB_INLINE void CheckOutputPath(const std::string& path);

}  // namespace dlb

#if DLB_HEADER_DEFINITIONS
#include "dlb/io/impl/atomic_file.ipp"
#endif
