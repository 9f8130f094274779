// The test programs are MPI programs: alone they are a one-rank world, under mpirun one rank of many.
// Only rank 0 prints gtest's report; other ranks print just their failures, prefixed with the rank.
#include <gtest/gtest.h>

#include "ringtrain/comm/mpi_session.hpp"
#include "test_util.hpp"

namespace {

class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (r.failed())
      std::fprintf(stderr, "[rank %d] %s:%d: failure\n%s\n", rank_, r.file_name() ? r.file_name() : "?",
                   r.line_number(), r.message());
  }

 private:
  int rank_;
};

}  // namespace

int main(int argc, char** argv) {
  ringtrain::MpiSession mpi(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  if (mpi.rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new FailurePrinter(mpi.rank()));
  }
  const int rc = RUN_ALL_TESTS();
  ringtrain::test::release_world();
  return rc;
}
