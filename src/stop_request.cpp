#include "ringtrain/stop_request.hpp"

#include <atomic>
#include <csignal>

namespace ringtrain {

namespace {
std::atomic<int> requested{0};  // 0: none; -1: by a call; else the signal
static_assert(std::atomic<int>::is_always_lock_free, "the handler may only touch a lock-free atomic");

// The first signal asks for a clean stop at the next step; a second one (Ctrl-C again, when a step takes
// too long) takes the default action: the process ends now.
extern "C" void on_stop_signal(int signal) {
  if (requested.exchange(signal) != 0) {
    std::signal(signal, SIG_DFL);
    std::raise(signal);
  }
}
}  // namespace

void install_stop_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // a blocking read or MPI wait goes on; the step boundary looks
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
}

void request_stop() {
  int none = 0;
  requested.compare_exchange_strong(none, -1);
}

bool stop_requested() { return requested.load() != 0; }

const char* stop_reason() {
  switch (requested.load()) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    default: return "a stop request";
  }
}

void clear_stop_request() { requested.store(0); }

}  // namespace ringtrain
