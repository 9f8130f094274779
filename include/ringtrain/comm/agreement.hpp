// Collective checks that turn one rank's problem into the same clear error on every rank, so a job never
// hangs with some ranks waiting in a collective that others will not reach.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "ringtrain/comm/communicator.hpp"

namespace ringtrain {

// Collective. `failure` is this rank's error message ("" when it succeeded). If any rank failed, every rank
// throws the same CollectiveError: the lowest failed rank's message, naming the rank unless all failed alike.
void raise_if_any_failed(Communicator& comm, const std::string& failure);

// Collective. settings: (name, value) pairs every rank must agree on, in the same order on every rank.
// Throws CollectiveError naming the first setting that differs and the ranks' values.
void check_same_on_all_ranks(Communicator& comm, const std::vector<std::pair<std::string, std::string>>& settings);

// Collective: whether any rank says yes.
bool agree_any(Communicator& comm, bool mine);

}  // namespace ringtrain
