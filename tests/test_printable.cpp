// EscapeForTerminal and QuoteForTerminal (dlb/core/printable.hpp): what a file holds must
// print as one line of visible characters; printable text, UTF-8 included, stays as it is.

#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <string>

#include "dlb/core/error.hpp"
#include "dlb/core/printable.hpp"
#include "dlb/core/state.hpp"

namespace {

using dlb::EscapeForTerminal;
using dlb::QuoteForTerminal;

/// Whether `text` is well-formed UTF-8 made of printable characters only: no C0 control, no
/// DEL, no C1 control, no line separator or bidirectional control.
bool Printable(const std::string& text) {
  for (std::size_t at = 0; at < text.size();) {
    const auto c = static_cast<unsigned char>(text[at]);
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7F) return false;
      ++at;
      continue;
    }
    std::uint32_t code = 0;
    const std::size_t length = dlb::internal::DecodeUtf8(text, at, code);
    if (length == 0 || dlb::internal::IsInvisibleControl(code)) return false;
    at += length;
  }
  return true;
}

}  // namespace

TEST_CASE("EscapeForTerminal keeps printable text, UTF-8 included", "[printable]") {
  CHECK(EscapeForTerminal("") == "");
  CHECK(EscapeForTerminal("0.weight ~!@#$%^&*()[]{}'\"\\") == "0.weight ~!@#$%^&*()[]{}'\"\\");
  CHECK(EscapeForTerminal("Größe, 中文, \xF0\x9F\x98\x80, U+FFFD \xEF\xBF\xBD") ==
        "Größe, 中文, \xF0\x9F\x98\x80, U+FFFD \xEF\xBF\xBD");
}

TEST_CASE("EscapeForTerminal escapes controls, DEL, C1, bidi controls and bytes that are not UTF-8",
          "[printable]") {
  // The forged report of issue 15: a new line, clear the screen, a fake accuracy.
  CHECK(EscapeForTerminal("0.1.0\n\x1b[2JAccuracy: 0.9999\r\t") ==
        "0.1.0\\n\\x1b[2JAccuracy: 0.9999\\r\\t");
  CHECK(EscapeForTerminal(std::string("a\0b", 3)) == "a\\x00b");
  CHECK(EscapeForTerminal("\x07\x08\x7f") == "\\x07\\x08\\x7f");
  CHECK(EscapeForTerminal("\xC2\x9B" "2J \xC2\x85 \xC2\x80 \xC2\x9F \xC2\xA0") ==
        "\\u{9b}2J \\u{85} \\u{80} \\u{9f} \xC2\xA0");  // C1 (CSI, NEL ...); NBSP is printable
  CHECK(EscapeForTerminal("a\xE2\x80\xAE" "cba \xE2\x81\xA6 \xE2\x80\xA8 \xD8\x9C") ==
        "a\\u{202e}cba \\u{2066} \\u{2028} \\u{61c}");
  // Not UTF-8: each offending byte, and the text after it is read again.
  CHECK(EscapeForTerminal("\xff" "a") == "\\xffa");
  CHECK(EscapeForTerminal("\x80" "a") == "\\x80a");                       // stray continuation
  CHECK(EscapeForTerminal("\xC0\x80") == "\\xc0\\x80");                   // overlong NUL
  CHECK(EscapeForTerminal("\xE0\x80\x9B") == "\\xe0\\x80\\x9b");          // overlong CSI
  CHECK(EscapeForTerminal("\xED\xA0\x80") == "\\xed\\xa0\\x80");          // a surrogate
  CHECK(EscapeForTerminal("\xF4\x90\x80\x80") == "\\xf4\\x90\\x80\\x80");  // beyond U+10FFFF
  CHECK(EscapeForTerminal("\xE4\xB8") == "\\xe4\\xb8");                   // cut short
  CHECK(EscapeForTerminal("\xE4\xB8" "a\xE4\xB8\xAD") == "\\xe4\\xb8a\xE4\xB8\xAD");
}

TEST_CASE("EscapeForTerminal changes nothing a second time and can cut long text", "[printable]") {
  const std::string once = EscapeForTerminal("x\n\x1b\xC2\x9B\xff\\n");
  CHECK(once == "x\\n\\x1b\\u{9b}\\xff\\n");
  CHECK(EscapeForTerminal(once) == once);
  CHECK(EscapeForTerminal(std::string(1000, 'a'), 10) == "aaaaaaaaaa... (1000 bytes)");
  CHECK(EscapeForTerminal("0123456789", 10) == "0123456789");
}

TEST_CASE("QuoteForTerminal quotes, escapes '\\' and quotes, and cuts long names", "[printable]") {
  CHECK(QuoteForTerminal("w") == "'w'");
  CHECK(QuoteForTerminal("") == "''");
  CHECK(QuoteForTerminal("it's a\\b\n") == "'it\\'s a\\\\b\\n'");
  // A text and its escaped form stay apart.
  CHECK(QuoteForTerminal("\x1b") != QuoteForTerminal("\\x1b"));
  CHECK(QuoteForTerminal(std::string(1000, 'a')) ==
        "'" + std::string(dlb::kMaxQuotedBytes, 'a') + "'... (1000 bytes)");
  // Never in the middle of a character: 150 two-byte characters cut after 100 of them.
  std::string umlauts;
  for (int i = 0; i < 150; ++i) umlauts += "\xC3\xA4";
  CHECK(QuoteForTerminal(umlauts, 201) == "'" + umlauts.substr(0, 200) + "'... (300 bytes)");
}

TEST_CASE("Escaped text is printable whatever the bytes", "[printable]") {
  std::mt19937 gen(15);
  std::uniform_int_distribution<int> byte(0, 255), length(0, 40);
  for (int i = 0; i < 20000; ++i) {
    std::string text(static_cast<std::size_t>(length(gen)), '\0');
    for (char& c : text) c = static_cast<char>(byte(gen));
    // UTF-8 lead bytes more often, so that well-formed and broken sequences both occur.
    if (i % 2 == 0 && !text.empty()) text[0] = static_cast<char>(0xC2 + byte(gen) % 0x33);
    INFO(QuoteForTerminal(text));
    REQUIRE(Printable(EscapeForTerminal(text)));
    REQUIRE(Printable(QuoteForTerminal(text)));
    REQUIRE(EscapeForTerminal(EscapeForTerminal(text)) == EscapeForTerminal(text));
  }
}

TEST_CASE("Messages built from names escape them: FileError paths, StateDict names",
          "[printable]") {
  const dlb::FileError error("model\n\x1b[2J.safetensors", 8, "bad");
  CHECK(std::string(error.what()) == "model\\n\\x1b[2J.safetensors: at byte 8: bad");
  CHECK(error.Path() == "model\n\x1b[2J.safetensors");  // the path itself, to open files with

  dlb::StateDict state;
  state.Insert("w\x1b[2J", dlb::Tensor::FromValues(dlb::DType::F32, {1}, std::vector<float>{1}));
  REQUIRE_THROWS_WITH(state.Insert("w\x1b[2J", dlb::Tensor{}),
                      "StateDict: the name 'w\\x1b[2J' is already present");
  REQUIRE_THROWS_WITH(state.At("v\n"), "StateDict: no tensor named 'v\\n'");
}

TEST_CASE("RestoreState lists unexpected names from a file escaped, and at most 20 of them",
          "[printable]") {
  std::int64_t step = 0;
  const std::vector<dlb::StateRef<float>> refs = {{"step", &step}};
  dlb::StateDict state;
  state.Insert("step", dlb::Tensor::FromValues(dlb::DType::I64, {}, std::vector<std::int64_t>{3}));
  for (int i = 0; i < 100'000; ++i) state.Insert("x" + std::to_string(i) + "\n", dlb::Tensor{});
  try {
    dlb::RestoreState(refs, dlb::StateScope::Checkpoint, state, "Test");
    FAIL("accepted");
  } catch (const dlb::StateError& error) {
    CHECK(std::string(error.what()) ==
          "Test: the saved state does not fit: unexpected x0\\n, x1\\n, x2\\n, x3\\n, x4\\n, x5\\n, "
          "x6\\n, x7\\n, x8\\n, x9\\n, x10\\n, x11\\n, x12\\n, x13\\n, x14\\n, x15\\n, x16\\n, "
          "x17\\n, x18\\n, x19\\n and 99980 more");
  }
}
