// Checks and display of text that comes from a request (paths, names, ids): an error message
// quotes at most a short, printable prefix of it, never the whole value or raw bytes.
#pragma once

#include <string>
#include <string_view>

namespace upframe::web {

// Whether `text` is well-formed UTF-8 (no overlong forms, no surrogates).
bool is_valid_utf8(std::string_view text);
// Whether `text` holds an ASCII control character (below 0x20, or 0x7f).
bool has_control_character(std::string_view text);
// `text` for an error message: at most `max_chars` characters (then "..."), control
// characters and bytes that are not UTF-8 shown as '?'.
std::string shown(std::string_view text, size_t max_chars = 60);

// Checks an uploaded file's name as its form sent it: at most `max_bytes`, UTF-8 text without
// control characters, a bare name (no folder part) that is not hidden. Throws RequestError
// (400) naming the problem; `bare_name_rule`, when given, is added to the last message.
void check_upload_file_name(const std::string& name, size_t max_bytes,
                            const std::string& bare_name_rule = "");

}  // namespace upframe::web
