#include "ringtrain/data/hdf5.hpp"

#include <algorithm>
#include <filesystem>

#include "ringtrain/tensor/error.hpp"

namespace ringtrain::h5 {

H5Id& H5Id::operator=(H5Id&& o) noexcept {
  if (this != &o) {
    if (valid() && close_) close_(id_);
    id_ = o.id_, close_ = o.close_;
    o.id_ = H5I_INVALID_HID;
  }
  return *this;
}

H5Id::~H5Id() {
  if (valid() && close_) close_(id_);
}

std::unique_lock<std::recursive_mutex> lock_library() {
  static std::recursive_mutex mutex;
  std::unique_lock lock(mutex);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  return lock;
}

namespace {

H5Id check(hid_t id, H5Id::Closer close, const std::string& what) {
  if (id < 0) throw Error(what);
  return H5Id(id, close);
}

std::vector<hsize_t> to_hsize(const Shape& dims) { return {dims.begin(), dims.end()}; }

ElemType classify(hid_t type, std::string& name) {
  const H5T_class_t cls = H5Tget_class(type);
  const size_t size = H5Tget_size(type);
  if (cls == H5T_INTEGER) {
    const bool is_signed = H5Tget_sign(type) == H5T_SGN_2;
    name = std::string(is_signed ? "int" : "uint") + std::to_string(size * 8);
    if (!is_signed && size == 1) return ElemType::u8;
    if (is_signed && size == 8) return ElemType::i64;
    return ElemType::other;
  }
  if (cls == H5T_FLOAT) {
    name = "float" + std::to_string(size * 8);
    return size == 4 ? ElemType::f32 : ElemType::other;
  }
  name = cls == H5T_STRING ? "string" : "non-numeric";
  return ElemType::other;
}

bool has_checksum(hid_t ds) {
  H5Id dcpl(H5Dget_create_plist(ds), H5Pclose);
  unsigned flags = 0, config = 0;
  size_t values = 0;
  return dcpl.valid() && H5Pget_filter_by_id2(dcpl.get(), H5Z_FILTER_FLETCHER32, &flags, &values, nullptr, 0,
                                                 nullptr, &config) >= 0;
}

void read_dataset(hid_t ds, const std::string& name, hid_t mem_type, void* out) {
  if (H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0) return;
  if (has_checksum(ds)) throw Error("dataset '" + name + "' is damaged: its data does not match its checksum");
  throw Error("cannot read dataset '" + name + "'");
}

void read_all(hid_t file, const std::string& name, hid_t mem_type, void* out) {
  H5Id ds = check(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose, "cannot open dataset '" + name + "'");
  read_dataset(ds.get(), name, mem_type, out);
}

int64_t element_count(hid_t file, const std::string& name) {
  H5Id ds = check(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose, "cannot open dataset '" + name + "'");
  H5Id space = check(H5Dget_space(ds.get()), H5Sclose, "cannot read the shape of '" + name + "'");
  return H5Sget_simple_extent_npoints(space.get());
}

template <typename T>
void read_vector(hid_t file, const std::string& name, hid_t mem_type, std::vector<T>& out) {
  out.resize(static_cast<size_t>(element_count(file, name)));
  if (!out.empty()) read_all(file, name, mem_type, out.data());
}

void ensure_groups(hid_t file, const std::string& name) {
  for (size_t slash = name.find('/', 1); slash != std::string::npos; slash = name.find('/', slash + 1)) {
    const std::string group = name.substr(0, slash);
    if (H5Lexists(file, group.c_str(), H5P_DEFAULT) > 0) continue;
    check(H5Gcreate2(file, group.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose,
          "cannot create group '" + group + "'");
  }
}

// Chunked storage with the Fletcher-32 filter: chunks along the first dimension of at most 1 GiB (HDF5 allows
// 4 GiB), most datasets one chunk.
H5Id checksummed_layout(const std::vector<hsize_t>& dims, size_t element_bytes, const std::string& name) {
  H5Id dcpl = check(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, "cannot create the layout of '" + name + "'");
  std::vector<hsize_t> chunk = dims;
  hsize_t row_bytes = element_bytes;
  for (size_t d = 1; d < dims.size(); ++d) row_bytes *= dims[d];
  chunk[0] = std::max<hsize_t>(1, std::min<hsize_t>(dims[0], (hsize_t{1} << 30) / row_bytes));
  if (H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()) < 0 ||
      H5Pset_fletcher32(dcpl.get()) < 0)
    throw Error("cannot set up the checksum of '" + name + "'");
  return dcpl;
}

void write_raw(hid_t file, const std::string& name, const Shape& dims, hid_t file_type, hid_t mem_type,
               const void* data, Checksum checksum) {
  ensure_groups(file, name);
  const auto hd = to_hsize(dims);
  H5Id space = check(H5Screate_simple(static_cast<int>(hd.size()), hd.data(), nullptr), H5Sclose,
                     "cannot create dataspace for '" + name + "'");
  // An empty dataset has no data to guard (and cannot be chunked).
  const bool guarded = checksum == Checksum::fletcher32 && !dims.empty() && shape_numel(dims) > 0;
  H5Id layout = guarded ? checksummed_layout(hd, H5Tget_size(file_type), name) : H5Id();
  H5Id ds = check(H5Dcreate2(file, name.c_str(), file_type, space.get(), H5P_DEFAULT,
                             guarded ? layout.get() : H5P_DEFAULT, H5P_DEFAULT),
                  H5Dclose, "cannot create dataset '" + name + "'");
  if (shape_numel(dims) > 0 && H5Dwrite(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    throw Error("cannot write dataset '" + name + "'");
}

H5Id open_attr(hid_t obj, const std::string& name) {
  return check(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose, "missing attribute '" + name + "'");
}

void write_attr_raw(hid_t obj, const std::string& name, hid_t type, const Shape& dims, const void* data) {
  if (H5Aexists(obj, name.c_str()) > 0) H5Adelete(obj, name.c_str());
  const auto hd = to_hsize(dims);
  H5Id space = dims.empty() ? check(H5Screate(H5S_SCALAR), H5Sclose, "cannot create attribute space")
                            : check(H5Screate_simple(static_cast<int>(hd.size()), hd.data(), nullptr), H5Sclose,
                                    "cannot create attribute space");
  H5Id attr = check(H5Acreate2(obj, name.c_str(), type, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
                    "cannot create attribute '" + name + "'");
  if (H5Awrite(attr.get(), type, data) < 0) throw Error("cannot write attribute '" + name + "'");
}

H5Id vlen_string_type() {
  H5Id type = check(H5Tcopy(H5T_C_S1), H5Tclose, "cannot create string type");
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  return type;
}

}  // namespace

void check_regular_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw Error("no such file '" + path + "'");
  if (std::filesystem::is_directory(path, ec)) throw Error("'" + path + "' is a directory, not an HDF5 file");
  // A FIFO or a device would block the open (a FIFO until some writer comes) or never end.
  if (!std::filesystem::is_regular_file(path, ec)) throw Error("'" + path + "' is not a regular file, not an HDF5 file");
}

H5Id open_file(const std::string& path) {
  check_regular_file(path);
  if (H5Fis_hdf5(path.c_str()) <= 0) throw Error("'" + path + "' is not an HDF5 file");
  return check(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose, "cannot open HDF5 file '" + path + "'");
}

H5Id create_file(const std::string& path) {
  return check(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose,
               "cannot create HDF5 file '" + path + "' (is the directory there and writable?)");
}

void read_f32_exact(hid_t file, const std::string& path, const std::string& name, const Shape& dims, float* out) {
  const DatasetInfo info = dataset_info(file, path, name);
  if (info.dims != dims || info.type != ElemType::f32)
    throw Error("'" + name + "' in '" + path + "' is " + info.type_name + " " + shape_str(info.dims) + ", expected float32 " +
                shape_str(dims));
  try {
    read_all(file, name, H5T_NATIVE_FLOAT, out);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " in '" + path + "'");
  }
}

bool has_dataset(hid_t file, const std::string& name) {
  if (H5Lexists(file, name.c_str(), H5P_DEFAULT) <= 0) return false;
  H5O_info_t info;
  return H5Oget_info_by_name(file, name.c_str(), &info, H5P_DEFAULT) >= 0 && info.type == H5O_TYPE_DATASET;
}

DatasetInfo dataset_info(hid_t file, const std::string& path, const std::string& name) {
  if (!has_dataset(file, name)) throw Error("'" + path + "' has no dataset '" + name + "'");
  H5Id ds = check(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose, "cannot open '" + name + "' in '" + path + "'");
  H5Id space = check(H5Dget_space(ds.get()), H5Sclose, "cannot read the shape of '" + name + "'");
  H5Id type = check(H5Dget_type(ds.get()), H5Tclose, "cannot read the type of '" + name + "'");
  DatasetInfo info;
  const int rank = H5Sget_simple_extent_ndims(space.get());
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(rank, 0)));
  if (rank > 0) H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  info.dims.assign(dims.begin(), dims.end());
  info.type = classify(type.get(), info.type_name);
  info.declared_bytes = static_cast<uint64_t>(H5Sget_simple_extent_npoints(space.get())) * H5Tget_size(type.get());
  info.stored_bytes = H5Dget_storage_size(ds.get());
  H5Id dcpl(H5Dget_create_plist(ds.get()), H5Pclose);
  info.filtered = dcpl.valid() && H5Pget_nfilters(dcpl.get()) > 0;
  return info;
}

void read_u8(hid_t file, const std::string& name, std::vector<uint8_t>& out) {
  read_vector(file, name, H5T_NATIVE_UINT8, out);
}
void read_i64(hid_t file, const std::string& name, std::vector<int64_t>& out) {
  read_vector(file, name, H5T_NATIVE_INT64, out);
}
void read_f32(hid_t file, const std::string& name, std::vector<float>& out) {
  read_vector(file, name, H5T_NATIVE_FLOAT, out);
}

void write_dataset(hid_t file, const std::string& name, const Shape& dims, const uint8_t* data, Checksum checksum) {
  write_raw(file, name, dims, H5T_STD_U8LE, H5T_NATIVE_UINT8, data, checksum);
}
void write_dataset(hid_t file, const std::string& name, const Shape& dims, const int64_t* data, Checksum checksum) {
  write_raw(file, name, dims, H5T_STD_I64LE, H5T_NATIVE_INT64, data, checksum);
}
void write_dataset(hid_t file, const std::string& name, const Shape& dims, const float* data, Checksum checksum) {
  write_raw(file, name, dims, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, data, checksum);
}

namespace {
herr_t collect_dataset(hid_t, const char* name, const H5O_info_t* info, void* names) {
  if (info->type == H5O_TYPE_DATASET) static_cast<std::vector<std::string>*>(names)->push_back(name);
  return 0;
}
}  // namespace

void verify_datasets(hid_t file, const std::string& path) {
  std::vector<std::string> names;
  if (H5Ovisit(file, H5_INDEX_NAME, H5_ITER_INC, collect_dataset, &names) < 0)
    throw Error("cannot list the datasets of '" + path + "'");
  std::vector<char> buffer;
  for (const std::string& name : names) {
    H5Id ds = check(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose, "cannot open dataset '" + name + "'");
    if (!has_checksum(ds.get())) continue;  // nothing to check it against (a file from before checksums)
    H5Id type = check(H5Dget_type(ds.get()), H5Tclose, "cannot read the type of '" + name + "'");
    buffer.resize(static_cast<size_t>(element_count(file, name)) * H5Tget_size(type.get()));
    if (!buffer.empty()) read_dataset(ds.get(), name, type.get(), buffer.data());
  }
}

bool has_attr(hid_t obj, const std::string& name) { return H5Aexists(obj, name.c_str()) > 0; }

void write_attr(hid_t obj, const std::string& name, int64_t value) {
  write_attr_raw(obj, name, H5T_NATIVE_INT64, {}, &value);
}
void write_attr(hid_t obj, const std::string& name, const std::vector<float>& values) {
  write_attr_raw(obj, name, H5T_NATIVE_FLOAT, {static_cast<int64_t>(values.size())}, values.data());
}
void write_attr(hid_t obj, const std::string& name, const std::vector<double>& values) {
  write_attr_raw(obj, name, H5T_NATIVE_DOUBLE, {static_cast<int64_t>(values.size())}, values.data());
}
void write_attr(hid_t obj, const std::string& name, const std::vector<int64_t>& values) {
  write_attr_raw(obj, name, H5T_NATIVE_INT64, {static_cast<int64_t>(values.size())}, values.data());
}
void write_attr(hid_t obj, const std::string& name, const std::string& value) {
  H5Id type = vlen_string_type();
  const char* p = value.c_str();
  write_attr_raw(obj, name, type.get(), {}, &p);
}
void write_attr(hid_t obj, const std::string& name, const std::vector<std::string>& values) {
  H5Id type = vlen_string_type();
  std::vector<const char*> ptrs;
  for (const auto& v : values) ptrs.push_back(v.c_str());
  write_attr_raw(obj, name, type.get(), {static_cast<int64_t>(values.size())}, ptrs.data());
}

int64_t read_attr_i64(hid_t obj, const std::string& name) {
  H5Id attr = open_attr(obj, name);
  H5Id space = check(H5Aget_space(attr.get()), H5Sclose, "cannot read attribute '" + name + "'");
  if (H5Sget_simple_extent_npoints(space.get()) != 1) throw Error("attribute '" + name + "' is not one number");
  int64_t v = 0;
  if (H5Aread(attr.get(), H5T_NATIVE_INT64, &v) < 0) throw Error("attribute '" + name + "' is not an integer");
  return v;
}

namespace {
template <typename T>
std::vector<T> read_attr_vector(hid_t obj, const std::string& name, hid_t mem_type) {
  H5Id attr = open_attr(obj, name);
  H5Id space = check(H5Aget_space(attr.get()), H5Sclose, "cannot read attribute '" + name + "'");
  std::vector<T> v(static_cast<size_t>(H5Sget_simple_extent_npoints(space.get())));
  if (H5Aread(attr.get(), mem_type, v.data()) < 0) throw Error("attribute '" + name + "' is not numeric");
  return v;
}
}  // namespace

std::vector<float> read_attr_f32(hid_t obj, const std::string& name) {
  return read_attr_vector<float>(obj, name, H5T_NATIVE_FLOAT);
}
std::vector<double> read_attr_f64(hid_t obj, const std::string& name) {
  return read_attr_vector<double>(obj, name, H5T_NATIVE_DOUBLE);
}
std::vector<int64_t> read_attr_i64s(hid_t obj, const std::string& name) {
  return read_attr_vector<int64_t>(obj, name, H5T_NATIVE_INT64);
}

std::vector<std::string> read_attr_strs(hid_t obj, const std::string& name) {
  H5Id attr = open_attr(obj, name);
  H5Id space = check(H5Aget_space(attr.get()), H5Sclose, "cannot read attribute '" + name + "'");
  H5Id type = vlen_string_type();
  std::vector<char*> ptrs(static_cast<size_t>(H5Sget_simple_extent_npoints(space.get())));
  if (H5Aread(attr.get(), type.get(), ptrs.data()) < 0) throw Error("attribute '" + name + "' is not a string");
  std::vector<std::string> out(ptrs.begin(), ptrs.end());
  H5Dvlen_reclaim(type.get(), space.get(), H5P_DEFAULT, ptrs.data());
  return out;
}

std::string read_attr_str(hid_t obj, const std::string& name) {
  auto v = read_attr_strs(obj, name);
  if (v.size() != 1) throw Error("attribute '" + name + "' is not a single string");
  return v[0];
}

}  // namespace ringtrain::h5
