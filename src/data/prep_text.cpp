// `ringtrain prep --format text`: UTF-8 text to byte-level tokens (vocabulary 256) in windows of T + 1 bytes,
// x the first T and y the last T (each position's next token). Train, validation and test are contiguous
// blocks of the text, in that order, and windows never cross a block's end, so no window of one split holds
// text of another; within a block windows start T bytes apart (each byte is a label once).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "prep_common.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/text.hpp"

namespace ringtrain {

namespace {

// Tokens per window: a model's context is far below this, and a window's labels (8 bytes a token) stay small.
constexpr int64_t kMaxContext = int64_t{1} << 20;

// What prep reads of a directory: every file directly in it, in name order, but hidden files and the index
// files that fortune's data directories (Debian's `fortunes`) hold beside the text: NAME.dat, and NAME.u8,
// a link to NAME that would read its text twice.
bool is_text_file(const std::filesystem::directory_entry& entry) {
  const std::string name = entry.path().filename().string();
  std::error_code ec;
  return entry.is_regular_file(ec) && !name.starts_with(".") && !name.ends_with(".dat") && !name.ends_with(".u8");
}

std::vector<std::string> text_files(const std::string& input) {
  std::error_code ec;
  if (!std::filesystem::is_directory(input, ec)) {
    if (!std::filesystem::exists(input, ec)) throw Error("--input '" + input + "' does not exist");
    return {input};
  }
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(input, ec))
    if (is_text_file(entry)) files.push_back(entry.path().string());
  if (ec) throw Error("cannot list --input '" + input + "': " + ec.message());
  if (files.empty()) throw Error("--input '" + input + "' holds no text files (it is read as a directory of them)");
  std::sort(files.begin(), files.end());
  return files;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open '" + path + "'");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error("cannot read '" + path + "'");
  return bytes;
}

// The files' bytes, one after another, each checked to be UTF-8.
std::string read_text(const std::vector<std::string>& files) {
  std::string text;
  for (const std::string& path : files) {
    const std::string bytes = read_bytes(path);
    if (const auto bad = invalid_utf8_at(bytes)) {
      const std::string at = "byte offset " + std::to_string(*bad);
      if (utf8_cut_short(std::string_view(bytes).substr(*bad)))
        throw Error("'" + path + "' is not UTF-8 text: it ends inside the character at " + at);
      char byte[8];
      std::snprintf(byte, sizeof byte, "0x%02X", static_cast<unsigned char>(bytes[*bad]));
      throw Error("'" + path + "' is not UTF-8 text: the bytes at " + at + " (" + byte + "...) are not a valid character");
    }
    text += bytes;
  }
  return text;
}

// A contiguous block of the text and the windows cut from it.
struct Block {
  const char* split;     // "training", "validation", "test"
  const char* fraction;  // the flag that sized it ("" for training)
  int64_t begin = 0, end = 0;
  int64_t bytes() const { return end - begin; }
};

int64_t windows_in(int64_t bytes, int64_t context) { return bytes > context ? (bytes - 1) / context : 0; }

prep_detail::Table windows_of(const std::string& text, const Block& block, int64_t context) {
  prep_detail::Table t;
  t.meta.samples = windows_in(block.bytes(), context);
  t.meta.sample_shape = {context};
  t.meta.x_type = PixelType::u8;
  t.meta.num_classes = 256;
  t.meta.tokens = context;
  t.meta.tokenizer = "bytes";
  t.meta.x_scale = {1.0f};
  t.meta.x_shift = {0.0f};
  const size_t values = static_cast<size_t>(t.meta.samples * context);
  t.data.x_u8.reserve(values);
  t.data.labels.reserve(values);
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  for (int64_t w = 0; w < t.meta.samples; ++w) {
    const int64_t start = block.begin + w * context;
    t.data.x_u8.insert(t.data.x_u8.end(), bytes + start, bytes + start + context);
    t.data.labels.insert(t.data.labels.end(), bytes + start + 1, bytes + start + context + 1);
  }
  return t;
}

void check_text_config(const PrepConfig& c) {
  prep_detail::check_config(c);
  if (!c.target.empty() || !c.drop_columns.empty() || c.task != TaskKind::automatic || c.missing != MissingValues::error)
    throw Error("--target, --task, --missing and --drop are for --format csv; --input '" + c.input +
                "' is read as text (--format text)");
  if (c.context == 0) throw Error("prep --format text needs --context T (tokens per window)");
  if (c.context < 1) throw Error("--context must be at least 1 token, got " + std::to_string(c.context));
  if (c.context > kMaxContext)
    throw Error("--context may be at most " + std::to_string(kMaxContext) + " tokens, got " + std::to_string(c.context));
}

// A split that its fraction asks for but that holds no whole window is an error naming it: the run would
// otherwise train or validate on nothing.
void check_has_windows(const Block& b, double fraction, int64_t context) {
  if (fraction <= 0.0 || windows_in(b.bytes(), context) > 0) return;
  const std::string window = std::to_string(context + 1) + " (--context " + std::to_string(context) + " + 1)";
  throw Error(std::string("the ") + b.split + " split has " + counted(b.bytes(), "byte") + " of text but one window " +
              "needs " + window + ": give more text, a shorter --context" +
              (*b.fraction ? std::string(", or ") + b.fraction + " 0" : std::string()));
}

}  // namespace

PrepReport prep_text(const PrepConfig& c) {
  check_text_config(c);
  const std::vector<std::string> files = text_files(c.input);
  const std::string text = read_text(files);
  const auto total = static_cast<int64_t>(text.size());
  if (total == 0) throw Error("--input '" + c.input + "' holds no text (" + counted(static_cast<int64_t>(files.size()), "file") +
                              ", all empty)");
  if (total <= c.context)
    throw Error("--input '" + c.input + "' has " + counted(total, "byte") + " of text, shorter than one window of " +
                std::to_string(c.context + 1) + " bytes (--context " + std::to_string(c.context) + " + 1)");
  // Test is the text's end, validation the val fraction of what precedes it, training the rest (the start).
  const int64_t test_bytes = std::llround(c.test_fraction * static_cast<double>(total));
  const int64_t val_bytes = std::llround(c.val_fraction * static_cast<double>(total - test_bytes));
  const int64_t train_end = total - test_bytes - val_bytes;
  const Block train{"training", "", 0, train_end}, val{"validation", "--val-fraction", train_end, total - test_bytes},
      test{"test", "--test-fraction", total - test_bytes, total};
  check_has_windows(train, 1.0, c.context);
  check_has_windows(val, c.val_fraction, c.context);
  check_has_windows(test, c.test_fraction, c.context);

  PrepReport r;
  prep_detail::publish_splits(c.out_dir, windows_of(text, train, c.context), windows_of(text, val, c.context),
                              windows_of(text, test, c.context), c.shards, r);
  r.features = r.tokens = c.context;
  r.outputs = 256;
  r.classification = true;
  r.task_reason = "text: " + counted(total, "byte") + " of UTF-8 from " +
                  counted(static_cast<int64_t>(files.size()), "file") + " as byte tokens (vocabulary 256): " +
                  std::to_string(train.bytes()) + " training, " + std::to_string(val.bytes()) + " validation, " +
                  std::to_string(test.bytes()) + " test bytes";
  return r;
}

}  // namespace ringtrain
