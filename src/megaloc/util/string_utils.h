#pragma once

#include <cstdint>
#include <cstddef>
#include <string>
#include <vector>

namespace megaloc {

// Splits on any run of whitespace; no empty tokens.
std::vector<std::string> SplitWhitespace(const std::string& text);
// Splits on a delimiter character, keeping empty fields.
std::vector<std::string> Split(const std::string& text, char delimiter);
std::string Trim(const std::string& text);
bool StartsWith(const std::string& text, const std::string& prefix);
bool EndsWith(const std::string& text, const std::string& suffix);
std::string ToLower(std::string text);
// `text` for quoting in a one-line error message: control and non-ASCII bytes as \xNN, cut after
// `max_length` characters ("..." appended).
std::string EscapeForMessage(const std::string& text, size_t max_length = 200);
// True if the text contains a space, tab, newline or other whitespace character.
bool HasWhitespace(const std::string& text);

// Number parsing of a whole field as Python's float() / int() read the text files we share with
// Python tools: surrounding whitespace ignored, decimal only (no hexadecimal floats, no
// "nan(...)"; ParseDouble accepts "nan" / "inf"), nothing after the number. Return false on
// anything else; the caller names the file in its error.
bool ParseDouble(const std::string& text, double* value);
// ParseDouble and finite.
bool ParseFiniteDouble(const std::string& text, double* value);
// Optional sign and decimal digits, in int64 range.
bool ParseInt64(const std::string& text, int64_t* value);

}  // namespace megaloc
