#include "ringtrain/comm/communicator.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

void Communicator::copy(void* dst, const void* src, size_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
}

namespace {
[[noreturn]] void no_sharding(const std::string& backend) {
  throw Error("the " + backend + " communicator has no reduce-scatter and allgather (--shard-optimizer)");
}
}  // namespace

ElementRange Communicator::owned_range(size_t) const { no_sharding(backend()); }
void Communicator::reduce_scatter_sum(float*, size_t) { no_sharding(backend()); }
void Communicator::allgather_owned(float*, size_t) { no_sharding(backend()); }

std::vector<std::string> allgather_strings(Communicator& comm, const std::string& mine) {
  const int n = comm.size();
  std::vector<uint64_t> lengths(n);
  const uint64_t my_length = mine.size();
  comm.allgather(&my_length, lengths.data(), sizeof my_length);
  const size_t width = *std::max_element(lengths.begin(), lengths.end());
  std::string padded = mine;
  padded.resize(width);
  std::string all(width * n, '\0');
  comm.allgather(padded.data(), all.data(), width);
  std::vector<std::string> out(n);
  for (int r = 0; r < n; ++r) out[r] = all.substr(r * width, lengths[r]);
  return out;
}

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0 || !*name) return "localhost";
  return name;
}

}  // namespace ringtrain
