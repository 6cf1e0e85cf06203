#pragma once
/// \file
/// Text from a file, made safe to print. A name or value read from a stranger's file can hold
/// a newline and a forged line of output ("\nAccuracy: 0.9999"), terminal escape sequences
/// (ESC [2J clears the screen; others set the window title or, on some terminals, answer back),
/// bidirectional-text controls that make a name display as something else, or bytes that are
/// not UTF-8. EscapeForTerminal and QuoteForTerminal turn all of these into visible escapes,
/// so whatever a file holds, printing it writes one line of plain characters.
///
/// Every message the library builds from file content (FileError, StateError ...) passes that
/// content through QuoteForTerminal, and programs print other file text (metadata, names)
/// through it or EscapeForTerminal.
///
/// Here in core/ rather than io/: error messages are built in every folder, core's StateDict
/// included, and core is the one folder all of them may include.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace dlb {

/// QuoteForTerminal's default limit on the bytes of text it shows.
inline constexpr std::size_t kMaxQuotedBytes = 200;

namespace internal {

/// Appends "\xHH" (two lowercase hex digits) for `byte`.
inline void AppendHexByte(std::string& out, unsigned char byte) {
  char text[5];
  std::snprintf(text, sizeof text, "\\x%02x", static_cast<unsigned>(byte));
  out += text;
}

/// Appends "\u{h...}" (lowercase hex, no leading zeros) for the code point `code`.
inline void AppendCodePoint(std::string& out, std::uint32_t code) {
  char text[16];
  std::snprintf(text, sizeof text, "\\u{%x}", static_cast<unsigned>(code));
  out += text;
}

/// The length (2 to 4) of the well-formed UTF-8 sequence of a non-ASCII character starting
/// at text[at] and its code point, or 0 when the bytes there are not one (a stray
/// continuation byte, a truncated sequence, an overlong form, a surrogate, beyond U+10FFFF):
/// the Unicode standard's table 3-7 of well-formed byte sequences.
inline std::size_t DecodeUtf8(std::string_view text, std::size_t at, std::uint32_t& code) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[at + i]); };
  const unsigned char lead = byte(0);
  std::size_t length = 0;
  unsigned char low = 0x80, high = 0xBF;  // the range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;   // no overlong forms
    if (lead == 0xED) high = 0x9F;  // no surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;   // no overlong forms
    if (lead == 0xF4) high = 0x8F;  // nothing beyond U+10FFFF
  } else {
    return 0;
  }
  if (text.size() - at < length) return 0;
  if (byte(1) < low || byte(1) > high) return 0;
  code = lead & (0xFFu >> (length + 1));
  for (std::size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xC0u) != 0x80u) return 0;
    code = (code << 6) | (byte(i) & 0x3Fu);
  }
  return length;
}

/// Whether the code point `code` (>= 0x80) changes how a terminal shows text instead of
/// showing a character: C1 controls (U+0080-U+009F, among them CSI, which starts escape
/// sequences like ESC [ does), the line and paragraph separators, and the bidirectional
/// controls that reorder what follows them ("Trojan Source").
inline bool IsInvisibleControl(std::uint32_t code) {
  return (code >= 0x80 && code <= 0x9F) || code == 0x061C || code == 0x200E || code == 0x200F ||
         (code >= 0x2028 && code <= 0x202E) || (code >= 0x2066 && code <= 0x2069);
}

/// Appends `text` with what is not printable escaped (see EscapeForTerminal); with `quote`
/// (not 0), '\' and `quote` are escaped too, so that the result reads back unambiguously.
inline void AppendEscaped(std::string& out, std::string_view text, char quote) {
  for (std::size_t at = 0; at < text.size();) {
    const auto c = static_cast<unsigned char>(text[at]);
    if (c < 0x80) {
      switch (c) {
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
          if (c < 0x20 || c == 0x7F) {
            AppendHexByte(out, c);
          } else {
            if (quote != 0 && (c == '\\' || c == static_cast<unsigned char>(quote))) out += '\\';
            out += static_cast<char>(c);
          }
      }
      ++at;
      continue;
    }
    std::uint32_t code = 0;
    const std::size_t length = DecodeUtf8(text, at, code);
    if (length == 0) {
      AppendHexByte(out, c);  // one byte at a time: what follows may be fine again
      ++at;
    } else {
      if (IsInvisibleControl(code)) {
        AppendCodePoint(out, code);
      } else {
        out.append(text.substr(at, length));
      }
      at += length;
    }
  }
}

/// The first bytes of `text`, at most `max_bytes`, cut at a character boundary (never in the
/// middle of a well-formed UTF-8 character).
inline std::string_view Prefix(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  std::size_t cut = max_bytes;
  // Back up over continuation bytes (a character has at most 3).
  for (int i = 0; i < 3 && cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0u) == 0x80u; ++i) {
    --cut;
  }
  return text.substr(0, cut);
}

}  // namespace internal

/// Represents `text` as printable characters: printing the result neither starts another
/// line nor sends the terminal a command, whatever `text` holds.
/// Ensures: printable text (ASCII 0x20-0x7E, and well-formed UTF-8 characters other than the
/// controls below) is kept as it is, '\' included, so that text escaped once is not changed
/// by escaping it again (a message that quotes names with QuoteForTerminal can be printed
/// through it); newline, carriage return and tab become "\n", "\r", "\t"; the other C0
/// controls and DEL become "\x1b"-style escapes of their byte; C1 controls (U+0080-U+009F),
/// U+2028/U+2029 and the bidirectional controls (U+061C, U+200E/F, U+202A-U+202E,
/// U+2066-U+2069) become "\u{9b}"-style escapes of their code point; each byte that is not
/// part of well-formed UTF-8 becomes "\xff"-style. Text longer than `max_bytes` is cut to
/// its first max_bytes bytes (at a character boundary) followed by "... (N bytes)".
/// Since '\' is kept, "\x1b" in the result may stand for ESC or for those four characters;
/// QuoteForTerminal tells them apart.
inline std::string EscapeForTerminal(std::string_view text,
                                     std::size_t max_bytes = std::string_view::npos) {
  const std::string_view shown = internal::Prefix(text, max_bytes);
  std::string out;
  out.reserve(shown.size());
  internal::AppendEscaped(out, shown, 0);
  if (shown.size() < text.size()) out += "... (" + std::to_string(text.size()) + " bytes)";
  return out;
}

/// `text` in single quotes, escaped as EscapeForTerminal does and with '\' and "'" written
/// "\\" and "\'", for naming something taken from a file in a message: "tensor 'w'". Different
/// texts give different results. Text longer than `max_bytes` is cut to its first max_bytes
/// bytes (at a character boundary) and followed by "... (N bytes)", so that a name of
/// megabytes cannot make a message of megabytes.
inline std::string QuoteForTerminal(std::string_view text,
                                    std::size_t max_bytes = kMaxQuotedBytes) {
  const std::string_view shown = internal::Prefix(text, max_bytes);
  std::string out = "'";
  out.reserve(shown.size() + 2);
  internal::AppendEscaped(out, shown, '\'');
  out += '\'';
  if (shown.size() < text.size()) out += "... (" + std::to_string(text.size()) + " bytes)";
  return out;
}

}  // namespace dlb
