#include "ringtrain/comm/agreement.hpp"

#include <algorithm>
#include <exception>
#include <sstream>

#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

void raise_if_any_failed(Communicator& comm, const std::string& failure) {
  // One byte first: the messages travel only when some rank failed.
  const char failed = failure.empty() ? 0 : 1;
  std::vector<char> all(comm.size());
  comm.allgather(&failed, all.data(), 1);
  if (std::count(all.begin(), all.end(), 1) == 0) return;
  const std::vector<std::string> messages = allgather_strings(comm, failure);
  const auto first = std::find(all.begin(), all.end(), 1) - all.begin();
  const bool everywhere_alike =
      std::all_of(messages.begin(), messages.end(), [&](const std::string& m) { return m == messages[first]; });
  if (everywhere_alike || comm.size() == 1) throw CollectiveError(messages[first]);
  throw CollectiveError("rank " + std::to_string(first) + ": " + messages[first]);
}

void run_agreed(Communicator& comm, const std::function<void()>& work) {
  std::string failure;
  try {
    work();
  } catch (const std::exception& e) {
    failure = e.what();
  }
  raise_if_any_failed(comm, failure);
}

void check_same_on_all_ranks(Communicator& comm, const std::vector<std::pair<std::string, std::string>>& settings) {
  std::ostringstream mine;
  for (const auto& [name, value] : settings) mine << name << '=' << value << '\n';
  const std::vector<std::string> all = allgather_strings(comm, mine.str());
  for (int r = 1; r < comm.size(); ++r) {
    if (all[r] == all[0]) continue;
    std::istringstream a(all[0]), b(all[r]);
    std::string line_a, line_b;
    while (std::getline(a, line_a) && std::getline(b, line_b) && line_a == line_b) {
    }
    const std::string name = line_a.substr(0, line_a.find('='));
    auto value = [](const std::string& line) { return line.substr(line.find('=') + 1); };
    throw CollectiveError("ranks disagree on " + name + ": rank 0 has '" + value(line_a) + "', rank " +
                          std::to_string(r) + " has '" + value(line_b) +
                          "' (every rank must be given the same model, data and hyper-parameters)");
  }
}

bool agree_any(Communicator& comm, bool mine) {
  double any = mine ? 1.0 : 0.0;
  comm.allreduce_sum(&any, 1);
  return any > 0.0;
}

StopVote::~StopVote() {
  if (counting_ && std::uncaught_exceptions() == 0) counting_->wait();
}

bool StopVote::cast(bool mine) {
  bool any = false;
  if (counting_) {
    counting_->wait();
    any = ballot_ > 0.0;
  }
  ballot_ = mine ? 1.0 : 0.0;
  counting_ = comm_.iallreduce_sum(&ballot_, 1);
  return any;
}

}  // namespace ringtrain
