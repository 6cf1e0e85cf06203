#pragma once
// The definitions of dlb/io/compressed_file.hpp: included by that header where it holds them
// (header-only), compiled once into dlb::compiled otherwise (see dlb/core/linkage.hpp).

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include "dlb/core/error.hpp"
#include "dlb/io/compressed_file.hpp"

namespace dlb::internal {

DLB_INLINE FileContentReader::FileContentReader(const std::string& path)
    : path_(path), file_(OpenInputFile(path)) {
  // Sniff the gzip magic; the sniffed bytes are handed back by the first reads.
  sniff_size_ = FreadAll(sniff_.data(), sniff_.size());
  if (sniff_size_ == 2 && sniff_[0] == 0x1F && sniff_[1] == 0x8B) {
    gzip_ = true;
    input_.resize(kInputChunk);
    // 16 + MAX_WBITS: accept only the gzip wrapper, never zlib or raw deflate.
    if (inflateInit2(&stream_, 16 + MAX_WBITS) != Z_OK) {
      throw FileError(path, std::nullopt, "cannot start gzip decompression: out of memory");
    }
    inflating_ = true;  // nothing below may throw, or inflateEnd would be skipped
  } else {
    struct stat status {};
    if (::fstat(::fileno(file_.get()), &status) == 0) {
      size_ = static_cast<std::uint64_t>(status.st_size);
    }
  }
}

DLB_INLINE FileContentReader::~FileContentReader() {
  if (inflating_) inflateEnd(&stream_);
}

DLB_INLINE std::size_t FileContentReader::Read(std::uint8_t* out, std::size_t n) {
  const std::size_t done = gzip_ ? Inflate(out, n) : ReadRaw(out, n);
  offset_ += done;
  return done;
}

DLB_INLINE std::size_t FileContentReader::FreadAll(std::uint8_t* out, std::size_t n) {
  std::size_t done = 0;
  while (done < n) {
    const std::size_t got = std::fread(out + done, 1, n - done, file_.get());
    file_bytes_ += got;
    done += got;
    if (got == 0) {
      if (std::ferror(file_.get())) {
        throw FileError(path_, offset_ + done, "read error: " + ErrnoText(errno));
      }
      break;
    }
  }
  return done;
}

DLB_INLINE std::size_t FileContentReader::ReadRaw(std::uint8_t* out, std::size_t n) {
  std::size_t done = 0;
  while (sniff_used_ < sniff_size_ && done < n) out[done++] = sniff_[sniff_used_++];
  return done + FreadAll(out + done, n - done);
}

DLB_INLINE bool FileContentReader::Refill() {
  if (sniff_used_ < sniff_size_) {
    const std::size_t count = sniff_size_ - sniff_used_;
    std::memcpy(input_.data(), sniff_.data() + sniff_used_, count);
    sniff_used_ = sniff_size_;
    stream_.next_in = input_.data();
    stream_.avail_in = static_cast<uInt>(count);
    return true;
  }
  const std::size_t got = FreadAll(input_.data(), input_.size());
  stream_.next_in = input_.data();
  stream_.avail_in = static_cast<uInt>(got);
  return got > 0;
}

DLB_INLINE std::string FileContentReader::Where() const {
  return "at compressed byte " + std::to_string(CompressedOffset()) + ", after " +
         std::to_string(offset_ + produced_) + " decompressed bytes";
}

DLB_INLINE std::size_t FileContentReader::Inflate(std::uint8_t* out, std::size_t n) {
  std::size_t done = 0;
  produced_ = 0;
  while (done < n && !finished_) {
    if (stream_.avail_in == 0 && !Refill()) {
      if (member_ > 0 && member_output_ == 0) {
        if (!member_started_) {
          finished_ = true;  // the file ends cleanly after a complete gzip member
          break;
        }
        throw FileError(path_, offset_ + done,
                        "unexpected bytes after the end of the gzip stream " + Where() +
                            ": expected another complete gzip member or the end of the file");
      }
      throw FileError(path_, offset_ + done,
                      "truncated gzip stream: the file ends " + Where() +
                          ", before the end of the gzip stream");
    }
    const std::size_t room = std::min<std::size_t>(n - done, std::numeric_limits<uInt>::max());
    stream_.next_out = out + done;
    stream_.avail_out = static_cast<uInt>(room);
    const uInt before_in = stream_.avail_in;
    const int status = inflate(&stream_, Z_NO_FLUSH);
    const std::size_t made = room - stream_.avail_out;
    done += made;
    produced_ = done;
    member_output_ += made;
    if (stream_.avail_in != before_in) member_started_ = true;
    if (status == Z_STREAM_END) {
      // Like gzip -d, accept further concatenated members; anything else is garbage.
      ++member_;
      member_started_ = false;
      member_output_ = 0;
      inflateReset(&stream_);
    } else if (status == Z_DATA_ERROR || status == Z_NEED_DICT || status == Z_STREAM_ERROR) {
      const std::string reason = stream_.msg ? stream_.msg : "invalid data";
      if (member_ > 0 && member_output_ == 0) {
        throw FileError(path_, offset_ + done,
                        "unexpected bytes after the end of the gzip stream " + Where() +
                            ": expected another gzip member or the end of the file (" + reason +
                            ")");
      }
      throw FileError(path_, offset_ + done, "corrupt gzip stream " + Where() + ": " + reason);
    } else if (status == Z_MEM_ERROR) {
      throw FileError(path_, offset_ + done, "gzip decompression ran out of memory");
    }
    // Z_OK, and Z_BUF_ERROR (no progress until more input arrives), just go on.
  }
  return done;
}

DLB_INLINE FileContentWriter::FileContentWriter(const std::string& path, bool gzip)
    : path_(path), file_(path), gzip_(gzip) {
  if (gzip_) {
    std::memset(&stream_, 0, sizeof stream_);
    if (deflateInit2(&stream_, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
      throw FileError(path, std::nullopt, "cannot start gzip compression: out of memory");
    }
    deflating_ = true;
    buffer_.resize(std::size_t{1} << 16);
  }
}

DLB_INLINE FileContentWriter::~FileContentWriter() {
  if (deflating_) deflateEnd(&stream_);
}

DLB_INLINE void FileContentWriter::Write(const std::uint8_t* bytes, std::size_t n) {
  if (!gzip_) return file_.Write(bytes, n);
  while (n > 0) {
    const std::size_t step = std::min<std::size_t>(n, std::size_t{1} << 30);
    stream_.next_in = const_cast<Bytef*>(bytes);
    stream_.avail_in = static_cast<uInt>(step);
    Deflate(Z_NO_FLUSH);
    bytes += step;
    n -= step;
  }
}

DLB_INLINE void FileContentWriter::Commit() {
  if (gzip_) Deflate(Z_FINISH);
  file_.Commit();
}

DLB_INLINE void FileContentWriter::Deflate(int flush) {
  int status;
  do {
    stream_.next_out = buffer_.data();
    stream_.avail_out = static_cast<uInt>(buffer_.size());
    status = deflate(&stream_, flush);
    if (status == Z_STREAM_ERROR) {
      throw FileError(path_, std::nullopt, "gzip compression failed");
    }
    file_.Write(buffer_.data(), buffer_.size() - stream_.avail_out);
  } while (stream_.avail_out == 0 || (flush == Z_FINISH && status != Z_STREAM_END));
}

}  // namespace dlb::internal
