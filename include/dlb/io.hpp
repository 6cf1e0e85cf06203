#pragma once
/// \file
/// DLBlocks umbrella header for files of data: the IDX format and Fashion-MNIST (plain or
/// gzip-compressed), reading and writing files safely (posix_file, atomic_file, same_file,
/// compressed_file) and HistoryCsvLogger. Needs zlib: link the CMake target dlb::io.
/// Includes <dlb/dlb.hpp>.

#if !__has_include(<zlib.h>)
#error "<dlb/io.hpp> needs zlib's <zlib.h> (Debian: zlib1g-dev); link the CMake target dlb::io"
#endif

#include "dlb/dlb.hpp"

#include "dlb/data/fashion_mnist.hpp"
#include "dlb/data/idx.hpp"
#include "dlb/io/atomic_file.hpp"
#include "dlb/io/compressed_file.hpp"
#include "dlb/io/posix_file.hpp"
#include "dlb/io/same_file.hpp"
#include "dlb/training/history_csv_logger.hpp"
