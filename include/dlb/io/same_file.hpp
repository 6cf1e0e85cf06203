#pragma once
/// \file
/// Whether two paths name the same file: what a program checks before it starts, so that an
/// output never replaces one of its inputs (a model saved over the training data) or another
/// output (a history written over the checkpoint), whatever spelling, symbolic link or hard
/// link the paths use.
///
/// POSIX only, like the rest of the library's file handling.

#include <sys/types.h>

#include <string>

#include "dlb/core/linkage.hpp"

namespace dlb {

/// The file a path leads to, as reading or writing it (with AtomicFileWriter) would reach it.
///
/// Represents: when the file exists, the file itself (its device and inode, symbolic links
/// followed), so that "x", "./x", "dir/../x", a symbolic link to x and a hard link to x all
/// have x's identity; when it does not exist yet, the directory it would be created in
/// (device and inode, links followed) and the name it would get there, so that "new.csv"
/// and "./new.csv" agree before either is written. A dangling symbolic link has the
/// identity of the missing file it leads to (AtomicFileWriter creates that file).
/// Names are compared byte for byte: on a case-insensitive file system "A" and "a" are one
/// missing file but two identities (once the file exists, the inode settles it).
struct FileIdentity {
  bool exists = false;
  dev_t device = 0;      ///< of the file, or of the directory a missing file would be in
  ino_t inode = 0;       ///< likewise
  std::string name;      ///< the missing file's name in that directory; empty when it exists

  friend bool operator==(const FileIdentity&, const FileIdentity&) = default;
};

/// The identity of `path` (see FileIdentity). Throws FileError naming `path` when it cannot
/// be looked up: a loop of symbolic links, a directory that cannot be searched, or, for a
/// missing file, a directory that does not exist.
DLB_INLINE FileIdentity IdentifyFile(const std::string& path);

/// Whether `a` and `b` lead to the same file (IdentifyFile of both agree): writing one would
/// replace what the other reads or writes. Throws FileError as IdentifyFile does.
DLB_INLINE bool SameFile(const std::string& a, const std::string& b);

}  // namespace dlb

#if DLB_HEADER_DEFINITIONS
#include "dlb/io/impl/same_file.ipp"
#endif
