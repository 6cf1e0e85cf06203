// Safetensors reader/writer: round trips of every element type, the byte layout the format
// prescribes, atomic writes, and every malformed file the reader must turn into a FileError
// that names the file and says what is wrong.

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <new>
#include <string>
#include <vector>

#include "dlb/io/safetensors.hpp"
#include "support/address_limit.hpp"
#include "support/helpers.hpp"
#include "support/temp_dir.hpp"

namespace {

using dlb_test::MessageContains;

struct TempDir : dlb_test::TempDir {
  TempDir() : dlb_test::TempDir("dlb_test_safetensors_") {}
};

std::string LittleEndian64(std::uint64_t value) {
  std::string bytes;
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
  return bytes;
}

void WriteText(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// A file with the given header text (its length written in front) and `data` after it.
void WriteFile(const std::string& path, const std::string& header, const std::string& data = "") {
  WriteText(path, LittleEndian64(header.size()) + header + data);
}

/// `count` F32 values 1, 2, 3 ... as little-endian bytes.
std::string Floats(int count) {
  std::string bytes;
  for (int i = 1; i <= count; ++i) {
    const float value = static_cast<float>(i);
    bytes.append(reinterpret_cast<const char*>(&value), sizeof value);
  }
  return bytes;
}

dlb::StateDict SampleTensors() {
  dlb::StateDict tensors;
  tensors.Insert("0.weight", dlb::Tensor::FromValues(dlb::DType::F32, {2, 3},
                                                     std::vector<float>{1.5f, -2, 3, 4, 5, -0.0f}));
  tensors.Insert("0.bias", dlb::Tensor::FromValues(dlb::DType::F64, {2}, std::vector<double>{0.1, 1e300}));
  tensors.Insert("step", dlb::Tensor::FromValues(dlb::DType::I64, {}, std::vector<std::int64_t>{-7}));
  tensors.Insert("generator", dlb::Tensor::FromValues(dlb::DType::U64, {3},
                                                      std::vector<std::uint64_t>{1, 0xFFFFFFFFFFFFFFFFull, 3}));
  tensors.Insert("empty", dlb::Tensor::FromValues(dlb::DType::F32, {0, 4}, std::vector<float>{}));
  return tensors;
}

void RequireSameTensors(const dlb::StateDict& a, const dlb::StateDict& b) {
  REQUIRE(a.Size() == b.Size());
  for (std::size_t i = 0; i < a.Size(); ++i) {
    const auto& [name_a, tensor_a] = a.Entries()[i];
    const auto& [name_b, tensor_b] = b.Entries()[i];
    INFO("tensor " << name_a);
    CHECK(name_a == name_b);
    CHECK(tensor_a.dtype == tensor_b.dtype);
    CHECK(tensor_a.shape == tensor_b.shape);
    CHECK(tensor_a.data == tensor_b.data);
  }
}

/// The FileError of reading `path` must name it and contain every fragment.
void RequireRejected(const std::string& path, std::initializer_list<std::string> fragments) {
  std::vector<std::string> all(fragments);
  all.push_back(path);
  try {
    dlb::ReadSafetensors(path);
    FAIL("the file was accepted");
  } catch (const dlb::FileError& error) {
    INFO(error.what());
    CHECK(error.Path() == path);
    for (const std::string& fragment : all) CHECK_THAT(error.what(), Catch::Contains(fragment));
  }
}

}  // namespace

TEST_CASE("safetensors: every element type, scalars and empty tensors round-trip with metadata",
          "[safetensors]") {
  TempDir dir;
  const std::string path = dir / "state.safetensors";
  const dlb::StateDict tensors = SampleTensors();
  const dlb::Metadata metadata = {{"format", "pt"}, {"note", "ünïcode \"quoted\"\n"}};
  dlb::WriteSafetensors(path, tensors, metadata);

  const dlb::Safetensors read = dlb::ReadSafetensors(path);
  RequireSameTensors(read.tensors, tensors);
  CHECK(read.metadata == metadata);
}

TEST_CASE("safetensors: the bytes are the format's: LE length, padded JSON header, data in order",
          "[safetensors]") {
  TempDir dir;
  const std::string path = dir / "layout.safetensors";
  dlb::StateDict tensors;
  tensors.Insert("b", dlb::Tensor::FromValues(dlb::DType::F32, {2}, std::vector<float>{1, 2}));
  tensors.Insert("a", dlb::Tensor::FromValues(dlb::DType::F32, {1}, std::vector<float>{3}));
  dlb::WriteSafetensors(path, tensors, {{"k", "v"}});

  const std::string bytes = ReadText(path);
  std::uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | static_cast<unsigned char>(bytes[i]);
  CHECK((8 + length) % 8 == 0);
  REQUIRE(bytes.size() == 8 + length + 12);
  const std::string header = bytes.substr(8, length);
  const std::string json = header.substr(0, header.find_last_not_of(' ') + 1);
  CHECK(json ==
        R"({"__metadata__":{"k":"v"},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
        R"("a":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})");
  CHECK(bytes.substr(8 + length) == Floats(3));
}

TEST_CASE("safetensors: a file written by another library (sorted names, spaces) is read in data order",
          "[safetensors]") {
  TempDir dir;
  const std::string path = dir / "foreign.safetensors";
  WriteFile(path,
            R"({ "z": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]},)"
            R"( "__metadata__": {"format": "pt"},)"
            R"( "y": {"shape": [2], "data_offsets": [0, 8], "dtype": "F32"} }      )",
            Floats(3));
  const dlb::Safetensors read = dlb::ReadSafetensors(path);
  REQUIRE(read.tensors.Size() == 2);
  CHECK(read.tensors.Entries()[0].first == "y");
  CHECK(read.tensors.At("y").Values<float>() == std::vector<float>{1, 2});
  CHECK(read.tensors.At("z").Values<float>() == std::vector<float>{3});
  CHECK(read.metadata.at("format") == "pt");
}

TEST_CASE("safetensors: the writer is atomic and leaves no temporary file", "[safetensors]") {
  TempDir dir;
  const std::string path = dir / "model.safetensors";
  dlb::WriteSafetensors(path, SampleTensors());
  const std::string before = ReadText(path);

  // A write that fails before the commit (a tensor whose bytes do not match its shape)
  // leaves the previous file untouched.
  dlb::StateDict bad;
  bad.Insert("w", dlb::Tensor{dlb::DType::F32, {3}, std::vector<std::uint8_t>(5)});
  REQUIRE_THROWS_MATCHES(dlb::WriteSafetensors(path, bad), dlb::ArgumentError,
                         MessageContains({"tensor 'w'", "5 bytes", "F32 [3]"}));
  CHECK(ReadText(path) == before);

  // A directory that does not exist: a FileError naming the path, nothing created.
  const std::string nowhere = dir / "missing/model.safetensors";
  REQUIRE_THROWS_MATCHES(dlb::WriteSafetensors(nowhere, SampleTensors()), dlb::FileError,
                         MessageContains({nowhere}));
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir.path)) ++files;
  CHECK(files == 1);
}

TEST_CASE("safetensors: the writer rejects a tensor called __metadata__", "[safetensors]") {
  TempDir dir;
  dlb::StateDict tensors;
  tensors.Insert("__metadata__", dlb::Tensor::FromValues(dlb::DType::F32, {1}, std::vector<float>{1}));
  REQUIRE_THROWS_MATCHES(dlb::WriteSafetensors(dir / "x", tensors), dlb::ArgumentError,
                         MessageContains({"__metadata__"}));
}

TEST_CASE("safetensors: missing, directory and truncated files", "[safetensors][bad input]") {
  TempDir dir;
  RequireRejected(dir / "absent.safetensors", {"no such file"});
  RequireRejected(dir.path.string(), {"directory"});
  const std::string fifo = dir / "fifo.safetensors";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  RequireRejected(fifo, {"not a regular file but a FIFO"});  // and no wait for a writer

  const std::string empty = dir / "empty.safetensors";
  WriteText(empty, "");
  RequireRejected(empty, {"truncated file", "0 byte(s)", "8-byte header length"});
  const std::string short_file = dir / "short.safetensors";
  WriteText(short_file, std::string("\x10\x00\x00", 3));
  RequireRejected(short_file, {"truncated file", "3 byte(s)"});

  // A complete file cut short: the last tensor's bytes are gone.
  const std::string cut = dir / "cut.safetensors";
  dlb::WriteSafetensors(cut, SampleTensors());
  const std::string bytes = ReadText(cut);
  WriteText(cut, bytes.substr(0, bytes.size() - 4));
  RequireRejected(cut, {"data_offsets", "lie outside the 68 data bytes"});
  // Cut inside the header.
  WriteText(cut, bytes.substr(0, 40));
  RequireRejected(cut, {"the header length is", "but only 32 follow"});
}

TEST_CASE("safetensors: header lengths beyond the file or absurd (2^63, 2^64-1)",
          "[safetensors][bad input]") {
  TempDir dir;
  const std::string path = dir / "length.safetensors";
  WriteText(path, LittleEndian64(1000) + "{}");
  RequireRejected(path, {"at byte 0", "header length is 1000 bytes", "only 2 follow"});
  WriteText(path, LittleEndian64(std::uint64_t{1} << 63) + "{}");
  RequireRejected(path, {"9223372036854775808"});
  WriteText(path, LittleEndian64(std::numeric_limits<std::uint64_t>::max()) + "{}");
  RequireRejected(path, {"18446744073709551615"});

  // A header over the 100 MB limit in a (sparse) file large enough to hold it.
  WriteText(path, LittleEndian64(dlb::kMaxSafetensorsHeaderBytes + 1) + "{");
  std::filesystem::resize_file(path, 8 + dlb::kMaxSafetensorsHeaderBytes + 8);
  RequireRejected(path, {"100000001 bytes", "limit"});
}

TEST_CASE("safetensors: headers that are not a JSON object", "[safetensors][bad input]") {
  TempDir dir;
  const std::string path = dir / "json.safetensors";
  WriteFile(path, "");
  RequireRejected(path, {"not a JSON object", "starts with nothing"});
  WriteFile(path, "[1, 2]");
  RequireRejected(path, {"at byte 8", "not a JSON object", "starts with '['"});
  WriteFile(path, "{\"a\": ");
  RequireRejected(path, {"not valid JSON"});
  WriteFile(path, "{} trailing");
  RequireRejected(path, {"not valid JSON", "expected end of input"});
  WriteFile(path, "{\"a\": \"\xff\"}");
  RequireRejected(path, {"not valid JSON"});
  WriteFile(path, R"({"__metadata__": {"a": "1", "a": "2"}})");
  RequireRejected(path, {"repeats the key 'a'"});
  WriteFile(path, R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},)"
                  R"( "w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
            Floats(2));
  RequireRejected(path, {"repeats the key 'w'"});
}

TEST_CASE("safetensors: bad metadata", "[safetensors][bad input]") {
  TempDir dir;
  const std::string path = dir / "metadata.safetensors";
  WriteFile(path, R"({"__metadata__": ["a"]})");
  RequireRejected(path, {"__metadata__ is an array", "mapping names to strings"});
  WriteFile(path, R"({"__metadata__": {"epoch": 3}})");
  RequireRejected(path, {"__metadata__ entry 'epoch' is the integer 3", "expected a string"});
}

TEST_CASE("safetensors: bad tensor entries: keys, dtypes and shapes", "[safetensors][bad input]") {
  TempDir dir;
  const std::string path = dir / "entry.safetensors";
  const auto entry = [&](const std::string& body, const std::string& data = Floats(1)) {
    WriteFile(path, "{\"w\": " + body + "}", data);
  };
  entry("[1]");
  RequireRejected(path, {"tensor 'w'", "is an array", "expected an object"});
  entry(R"({"shape": [1], "data_offsets": [0, 4]})");
  RequireRejected(path, {"tensor 'w'", "no dtype"});
  entry(R"({"dtype": "F32", "data_offsets": [0, 4]})");
  RequireRejected(path, {"tensor 'w'", "no shape"});
  entry(R"({"dtype": "F32", "shape": [1]})");
  RequireRejected(path, {"tensor 'w'", "no data_offsets"});
  entry(R"({"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "offsets": [0, 4]})");
  RequireRejected(path, {"tensor 'w'", "unexpected key 'offsets'"});
  entry(R"({"dtype": "F16", "shape": [2], "data_offsets": [0, 4]})");
  RequireRejected(path, {"tensor 'w'", "unsupported dtype 'F16'", "F32, F64, I64 and U64"});
  entry(R"({"dtype": 32, "shape": [1], "data_offsets": [0, 4]})");
  RequireRejected(path, {"tensor 'w'", "dtype is the integer 32"});
  entry(R"({"dtype": "F32", "shape": 1, "data_offsets": [0, 4]})");
  RequireRejected(path, {"tensor 'w'", "shape is the integer 1"});
  entry(R"({"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]})");
  RequireRejected(path, {"tensor 'w'", "shape holds the integer -1"});
  entry(R"({"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]})");
  RequireRejected(path, {"tensor 'w'", "shape holds the number 1.0"});
  entry(R"({"dtype": "F32", "shape": [4611686018427387904, 4611686018427387904], "data_offsets": [0, 4]})");
  RequireRejected(path, {"tensor 'w'", "needs more than 2^64 bytes"});
  entry(R"({"dtype": "F32", "shape": [2], "data_offsets": [0, 4]})");
  RequireRejected(path, {"tensor 'w'", "F32 [2] needs 8 bytes", "data_offsets [0, 4] give 4"});
}

TEST_CASE("safetensors: offsets out of range, reversed, overlapping, leaving gaps or trailing bytes",
          "[safetensors][bad input]") {
  TempDir dir;
  const std::string path = dir / "offsets.safetensors";
  const std::string a = R"("a": {"dtype": "F32", "shape": [1], "data_offsets": )";
  const std::string b = R"("b": {"dtype": "F32", "shape": [1], "data_offsets": )";

  WriteFile(path, "{" + a + "[0, 4]}}", "");
  RequireRejected(path, {"tensor 'a'", "[0, 4] lie outside the 0 data bytes"});
  WriteFile(path, "{" + a + "[18446744073709551612, 18446744073709551616]}}", Floats(1));
  RequireRejected(path, {"tensor 'a'", "data_offsets must be [begin, end]"});
  WriteFile(path, "{" + a + "[4, 0]}}", Floats(1));
  RequireRejected(path, {"tensor 'a'", "[4, 0] end before they begin"});
  WriteFile(path, "{" + a + "[0, 4, 8]}}", Floats(2));
  RequireRejected(path, {"tensor 'a'", "data_offsets must be [begin, end]"});
  WriteFile(path, "{" + a + "[-4, 0]}}", Floats(1));
  RequireRejected(path, {"tensor 'a'", "data_offsets must be [begin, end]"});

  WriteFile(path, "{" + a + "[0, 4]}, " + b + "[0, 4]}}", Floats(1));
  RequireRejected(path, {"overlaps tensor", "data bytes 0..4"});
  WriteFile(path, "{" + a + "[0, 4]}, " + b + "[8, 12]}}", Floats(3));
  RequireRejected(path, {"data bytes 4..8 belong to no tensor", "gap before 'b'"});
  WriteFile(path, "{" + a + "[4, 8]}}", Floats(2));
  RequireRejected(path, {"data bytes 0..4 belong to no tensor"});
  WriteFile(path, "{" + a + "[0, 4]}}", Floats(2));
  RequireRejected(path, {"4 trailing byte(s)"});
  WriteFile(path, "{}", Floats(1));
  RequireRejected(path, {"4 trailing byte(s)"});
}

TEST_CASE("safetensors: an empty file body and zero-size tensors are valid", "[safetensors]") {
  TempDir dir;
  const std::string path = dir / "zero.safetensors";
  WriteFile(path, R"({"e": {"dtype": "F64", "shape": [3, 0], "data_offsets": [4, 4]},)"
                  R"( "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})",
            Floats(1));
  const dlb::Safetensors read = dlb::ReadSafetensors(path);
  CHECK(read.tensors.At("e").shape == std::vector<std::int64_t>{3, 0});
  CHECK(read.tensors.At("e").data.empty());
  WriteFile(path, "{}");
  CHECK(dlb::ReadSafetensors(path).tensors.Empty());
}

namespace {

/// A header of `count` empty F32 tensors "t0", "t1" ..., all at data offsets [0, 0].
std::string ManyEmptyTensors(int count) {
  std::string header = "{";
  for (int i = 0; i < count; ++i) {
    header += (i ? ",\"t" : "\"t") + std::to_string(i) +
              R"(":{"dtype":"F32","shape":[0],"data_offsets":[0,0]})";
  }
  return header + "}";
}

/// Whether every byte of `text` is printable ASCII (no control character, no byte >= 0x80).
bool PrintableAscii(const std::string& text) {
  for (const char c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7F) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("safetensors: a header of 100,000 tensors is read in linear time and bounded memory",
          "[safetensors][hostile]") {
  TempDir dir;
  const std::string path = dir / "many.safetensors";
  constexpr int kCount = 100'000;
  const std::string header = ManyEmptyTensors(kCount);  // 5.8 MB
  WriteFile(path, header);
  // nlohmann's DOM parser with a callback, which the reader once used, rescans the whole
  // header object after each tensor's entry: 100,000 tensors took 340 s at -O1. The reader
  // now takes 5 to 12 times as long as nlohmann's bare syntax check of the header (3 to 5 under
  // AddressSanitizer): ~0.5 s at -O1 on a quiet 2-core machine, 4 s when 10 compilers
  // share it. The bound is 40 times the syntax check measured here, which follows the
  // machine's load, or 2 s (15 s under AddressSanitizer) when that is more.
  const auto timed = [](const auto& work) {
    const auto start = std::chrono::steady_clock::now();
    work();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  const double syntax_seconds = timed([&] { CHECK(nlohmann::json::accept(header)); });
  dlb::Safetensors read;
  const double seconds = timed([&] { read = dlb::ReadSafetensors(path); });
  CHECK(read.tensors.Size() == static_cast<std::size_t>(kCount));
  CHECK(read.tensors.At("t99999").shape == std::vector<std::int64_t>{0});
  INFO("ReadSafetensors " << seconds << " s; nlohmann::json::accept " << syntax_seconds << " s");
  const double bound = std::max(dlb_test::kAddressSanitizer ? 15.0 : 2.0, 40 * syntax_seconds);
  CHECK(seconds < bound);
  // Writing them back (nlohmann::ordered_json's operator[] searched its keys one by one).
  std::string written;
  const double write_seconds = timed([&] { written = dlb::SafetensorsHeader(read.tensors); });
  INFO("SafetensorsHeader " << write_seconds << " s");
  CHECK(write_seconds < bound);
  CHECK(written.substr(0, 8) == LittleEndian64(written.size() - 8));
  CHECK(written.compare(8, 3, "{\"t") == 0);

  if (dlb_test::kAddressSanitizer) {
    WARN("[skipped] the memory bound: AddressSanitizer needs the address space (support/address_limit.hpp)");
    return;
  }
  // Reading it needs a few times the header's size (36 MB of address space for this 5.8 MB
  // header), not a nlohmann::json node per value (the tree needed twice as much).
  const int code = dlb_test::RunUnderAddressLimit(std::uint64_t{64} << 20, [&](std::uint64_t) {
    try {
      return dlb::ReadSafetensors(path).tensors.Size() == kCount ? 0 : 1;
    } catch (const std::bad_alloc&) {
      return 2;
    } catch (...) {
      return 3;
    }
  });
  CHECK(code == 0);
}

TEST_CASE("safetensors: deep nesting is refused at the byte that goes too deep",
          "[safetensors][hostile]") {
  TempDir dir;
  const std::string path = dir / "deep.safetensors";
  // A million '[' in a tensor entry, in a shape and in the metadata, and a million nested
  // objects: each refused where the nesting passes the limit, before anything is built.
  const std::string brackets(1'000'000, '[');
  const std::string prefix = "{\"w\": ";
  WriteFile(path, prefix + brackets);
  const std::size_t depth = dlb::kMaxSafetensorsHeaderDepth;
  static_assert(dlb::kMaxSafetensorsHeaderDepth == 64, "the messages below say 64");
  // Byte 8 + prefix: the first '[', at depth 2; the one at depth `depth` + 1 is refused.
  const std::string offset = "at byte " + std::to_string(8 + prefix.size() + depth - 1);
  RequireRejected(path, {offset, "nests arrays and objects more than 64 deep", "a safetensors header needs 3"});
  WriteFile(path, R"({"w": {"dtype": "F32", "shape": )" + brackets + "0" + std::string(1'000'000, ']') + "}}");
  RequireRejected(path, {"nests arrays and objects more than 64 deep"});
  WriteFile(path, R"({"__metadata__": {"a": )" + brackets);
  RequireRejected(path, {"nests arrays and objects more than 64 deep"});
  std::string objects;
  for (int i = 0; i < 1'000'000; ++i) objects += "{\"a\":";
  WriteFile(path, objects);
  RequireRejected(path, {"at byte " + std::to_string(8 + 5 * depth), "more than 64 deep"});
  // Nesting within the limit gets the message that says what is wrong.
  WriteFile(path, R"({"w": {"dtype": "F32", "shape": [[1]], "data_offsets": [0, 4]}})", Floats(1));
  RequireRejected(path, {"tensor 'w'", "shape holds an array"});

  if (dlb_test::kAddressSanitizer) {
    WARN("[skipped] the memory bound: AddressSanitizer needs the address space (support/address_limit.hpp)");
    return;
  }
  // 50 MB of '[' (half the header limit) costs no memory beyond the header itself: a DOM of
  // fifty million nested arrays would need gigabytes.
  WriteFile(path, prefix + std::string(50'000'000, '['));
  const int code = dlb_test::RunUnderAddressLimit(std::uint64_t{128} << 20, [&](std::uint64_t) {
    try {
      dlb::ReadSafetensors(path);
      return 1;
    } catch (const dlb::FileError& error) {
      return std::string(error.what()).find("more than 64 deep") != std::string::npos ? 0 : 2;
    } catch (const std::bad_alloc&) {
      return 3;
    } catch (...) {
      return 4;
    }
  });
  CHECK(code == 0);
}

TEST_CASE("safetensors: duplicate keys are refused at every depth", "[safetensors][hostile]") {
  TempDir dir;
  const std::string path = dir / "duplicates.safetensors";
  WriteFile(path, R"({"w": {"dtype": "F32", "dtype": "F64", "shape": [0], "data_offsets": [0, 0]}})");
  RequireRejected(path, {"at byte 8", "repeats the key 'dtype'"});
  // Inside a value nothing else looks at, and after another problem: still found.
  WriteFile(path, R"({"w": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0],)"
                  R"( "x": [{"k": 1, "k": 2}]}})");
  RequireRejected(path, {"repeats the key 'k'"});
  WriteFile(path, R"({"__metadata__": {"a": "1"}, "__metadata__": {"b": "2"}})");
  RequireRejected(path, {"repeats the key '__metadata__'"});
  // The same key in sibling objects is no duplicate.
  WriteFile(path, R"({"a": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]},)"
                  R"( "b": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}})");
  CHECK(dlb::ReadSafetensors(path).tensors.Size() == 2);
}

TEST_CASE("safetensors: names, keys and text from the file are escaped in messages",
          "[safetensors][hostile]") {
  TempDir dir;
  const std::string path = dir / "escape.safetensors";
  // JSON escapes let a key hold any control character: a newline, a forged line of output,
  // ESC [2J (clear the screen), a C1 CSI (U+009B) and a bidirectional override (U+202E).
  const std::string evil = R"(w\n\u001b[2JAccuracy: 0.9999\u009b2J\u202e)";
  const std::string shown = R"('w\n\x1b[2JAccuracy: 0.9999\u{9b}2J\u{202e}')";
  const auto rejected = [&](const std::string& header, const std::string& fragment,
                            const std::string& data = "") {
    WriteFile(path, header, data);
    RequireRejected(path, {fragment});
    try {
      dlb::ReadSafetensors(path);
    } catch (const dlb::FileError& error) {
      INFO(error.what());
      CHECK(PrintableAscii(error.what()));
    }
  };
  const std::string entry = R"({"dtype": "F32", "shape": [1], "data_offsets": [0, 4]})";
  rejected("{\"" + evil + "\": 1}", "tensor " + shown + ": is the integer 1");
  rejected("{\"" + evil + "\": " + entry + ", \"" + evil + "\": " + entry + "}",
           "repeats the key " + shown, Floats(2));
  rejected("{\"w\": {\"" + evil + "\": 1}}", "unexpected key " + shown);
  rejected("{\"w\": {\"dtype\": \"" + evil + "\", \"shape\": [1], \"data_offsets\": [0, 4]}}",
           "unsupported dtype " + shown, Floats(1));
  rejected("{\"__metadata__\": {\"" + evil + "\": 1}}", "__metadata__ entry " + shown);
  rejected("{\"a\": " + entry + ", \"" + evil + "\": " + entry + "}", "tensor " + shown, Floats(1));
  rejected("{\"" + evil + "\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
           "gap before " + shown, Floats(2));
  // Raw bytes: a header that starts with ESC, one with a byte that is not UTF-8.
  rejected("\x1b[2J", "starts with '\\x1b'");
  rejected("\xff", "starts with '\\xff'");
  rejected("{\"a\": \x7f\x1b[2J}", "not valid JSON");
}
