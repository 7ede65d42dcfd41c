#include "web/request_text.hpp"

#include <filesystem>

#include "upframe/web/roots.hpp"

namespace upframe::web {

namespace {

// The length of the UTF-8 sequence at the start of `text`, or 0 if it is not one.
size_t utf8_sequence_length(std::string_view text) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char first = byte(0);
  if (first < 0x80) return 1;
  size_t length;
  unsigned min_second = 0x80, max_second = 0xbf;
  if (first >= 0xc2 && first <= 0xdf) {
    length = 2;
  } else if (first >= 0xe0 && first <= 0xef) {
    length = 3;
    if (first == 0xe0) min_second = 0xa0;  // overlong
    if (first == 0xed) max_second = 0x9f;  // surrogates
  } else if (first >= 0xf0 && first <= 0xf4) {
    length = 4;
    if (first == 0xf0) min_second = 0x90;  // overlong
    if (first == 0xf4) max_second = 0x8f;  // past U+10FFFF
  } else {
    return 0;
  }
  if (text.size() < length) return 0;
  if (byte(1) < min_second || byte(1) > max_second) return 0;
  for (size_t i = 2; i < length; ++i)
    if (byte(i) < 0x80 || byte(i) > 0xbf) return 0;
  return length;
}

bool is_control(unsigned char c) { return c < 0x20 || c == 0x7f; }

}  // namespace

bool is_valid_utf8(std::string_view text) {
  while (!text.empty()) {
    const size_t length = utf8_sequence_length(text);
    if (length == 0) return false;
    text.remove_prefix(length);
  }
  return true;
}

bool has_control_character(std::string_view text) {
  for (char c : text)
    if (is_control(static_cast<unsigned char>(c))) return true;
  return false;
}

std::string shown(std::string_view text, size_t max_chars) {
  std::string out;
  size_t chars = 0;
  while (!text.empty()) {
    if (chars == max_chars) return out + "...";
    const size_t length = utf8_sequence_length(text);
    if (length == 0 || (length == 1 && is_control(static_cast<unsigned char>(text[0])))) {
      out += '?';
      text.remove_prefix(1);
    } else {
      out.append(text.substr(0, length));
      text.remove_prefix(length);
    }
    ++chars;
  }
  return out;
}

void check_upload_file_name(const std::string& name, size_t max_bytes,
                            const std::string& bare_name_rule) {
  if (name.size() > max_bytes)
    throw RequestError(400, "file name too long (" + std::to_string(name.size()) +
                                " bytes, at most " + std::to_string(max_bytes) +
                                "): " + shown(name, 40));
  if (!is_valid_utf8(name) || has_control_character(name))
    throw RequestError(
        400, "bad file name '" + shown(name, 40) + "' (not UTF-8 text, or a control character)");
  if (name.empty() || name.starts_with(".") ||
      std::filesystem::path(name).filename().string() != name)
    throw RequestError(400, "bad file name '" + shown(name, 40) + "'" +
                                (bare_name_rule.empty() ? "" : " (" + bare_name_rule + ")"));
}

}  // namespace upframe::web
