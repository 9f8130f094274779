// Thin RAII over the HDF5 C API: every hid_t is owned by exactly one H5Id and closed with the right
// H5?close. Failures become Error messages that name the file and the object.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "ringtrain/tensor/tensor.hpp"

namespace ringtrain::h5 {

class H5Id {
 public:
  using Closer = herr_t (*)(hid_t);
  H5Id() = default;
  H5Id(hid_t id, Closer close) : id_(id), close_(close) {}
  H5Id(H5Id&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = H5I_INVALID_HID; }
  H5Id& operator=(H5Id&& o) noexcept;
  H5Id(const H5Id&) = delete;
  H5Id& operator=(const H5Id&) = delete;
  ~H5Id();
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer close_ = nullptr;
};

enum class ElemType { u8, i64, f32, other };

struct DatasetInfo {
  Shape dims;
  ElemType type = ElemType::other;
  std::string type_name;  // for error messages: "uint8", "int32", "float64", ...
  uint64_t declared_bytes = 0;  // what the shape and type say the data takes
  uint64_t stored_bytes = 0;    // what the file holds of it (H5Dget_storage_size)
  bool filtered = false;        // stored through filters (compression): stored_bytes may be fewer
};

// The serial HDF5 library is not thread-safe: a whole file operation (the loader's reader thread, a model
// save) holds this lock. It also turns off HDF5's own error-stack printing; our errors say it in one line.
std::unique_lock<std::recursive_mutex> lock_library();

// Errors "no such file", "is a directory", "is not a regular file" (a FIFO or device would block the open).
void check_regular_file(const std::string& path);
H5Id open_file(const std::string& path);                 // read-only; "no such file" / "not an HDF5 file"
H5Id create_file(const std::string& path);               // truncates

// Files built in memory (hdf5_seal.cpp): `fill` writes into an open HDF5 file; the result is the file's bytes,
// for write_image. The write is then ours, so a full disk is an error naming the path and errno, where HDF5
// would be left a file it can neither flush nor close. sealed: with a seal (model files, checkpoints), a
// CRC-32 of the whole file in a 512-byte HDF5 user block, checked before the HDF5 library parses anything,
// because the library trusts the file's metadata and a damaged byte there can crash or hang it.
std::vector<char> file_image(const std::function<void(hid_t file)>& fill, bool sealed);
// Writes `image` to `path` (created or truncated); Error "cannot write '<name>': <strerror>", `name` being
// the file the user knows (`path` may be its temporary).
void write_image(const std::string& path, const std::vector<char>& image, const std::string& name);
// Error naming the file when it is truncated or changed since it was sealed; a file without a user block
// (written before seals) passes. Returns whether the file has a seal.
bool check_seal(const std::string& path);
// check_seal, then open_file; `sealed`, when given, says whether the file had a seal.
H5Id open_sealed_file(const std::string& path, bool* sealed = nullptr);
bool has_dataset(hid_t file, const std::string& name);
// Reads a float32 dataset that must have exactly `dims`.
void read_f32_exact(hid_t file, const std::string& path, const std::string& name, const Shape& dims, float* out);
DatasetInfo dataset_info(hid_t file, const std::string& path, const std::string& name);

// Whole-dataset reads into a buffer of the dataset's exact element type.
void read_u8(hid_t file, const std::string& name, std::vector<uint8_t>& out);
void read_i64(hid_t file, const std::string& name, std::vector<int64_t>& out);
void read_f32(hid_t file, const std::string& name, std::vector<float>& out);

// How a dataset guards its data. fletcher32: HDF5's Fletcher-32 filter on chunked storage, which the library
// checks on every read, so data changed on disk fails to read (model files and checkpoints) instead of
// loading silently. Shards stay contiguous: their reader reads slices, and a filtered chunk is read whole.
enum class Checksum { none, fletcher32 };

// Creates groups along a '/'-separated path as needed.
void write_dataset(hid_t file, const std::string& name, const Shape& dims, const uint8_t* data,
                   Checksum checksum = Checksum::none);
void write_dataset(hid_t file, const std::string& name, const Shape& dims, const int64_t* data,
                   Checksum checksum = Checksum::none);
void write_dataset(hid_t file, const std::string& name, const Shape& dims, const float* data,
                   Checksum checksum = Checksum::none);
// Reads every checksummed dataset in the file once; the error names the first whose data does not match its
// checksum (the file is damaged).
void verify_datasets(hid_t file, const std::string& path);

bool has_attr(hid_t obj, const std::string& name);
void write_attr(hid_t obj, const std::string& name, int64_t value);
void write_attr(hid_t obj, const std::string& name, const std::vector<float>& values);
void write_attr(hid_t obj, const std::string& name, const std::vector<double>& values);
void write_attr(hid_t obj, const std::string& name, const std::vector<int64_t>& values);
void write_attr(hid_t obj, const std::string& name, const std::string& value);
void write_attr(hid_t obj, const std::string& name, const std::vector<std::string>& values);
int64_t read_attr_i64(hid_t obj, const std::string& name);
std::vector<float> read_attr_f32(hid_t obj, const std::string& name);
std::vector<double> read_attr_f64(hid_t obj, const std::string& name);
std::vector<int64_t> read_attr_i64s(hid_t obj, const std::string& name);
std::string read_attr_str(hid_t obj, const std::string& name);
std::vector<std::string> read_attr_strs(hid_t obj, const std::string& name);

}  // namespace ringtrain::h5
