// A request to end the job early and cleanly: SIGTERM (SLURM's time limit, scancel, mpirun passing a signal
// on) or SIGINT. The trainer sees it at the next step boundary, every rank stops at the same step, a
// checkpoint is written and the process exits 0. Process-wide, since a signal is.
#pragma once

namespace ringtrain {

// Routes SIGTERM and SIGINT to a stop request (the CLI, for train). A second signal ends the process at once.
void install_stop_handlers();
// Async-signal-safe.
void request_stop();
bool stop_requested();
// Which signal asked ("SIGTERM"), or "a request" when none did (tests).
const char* stop_reason();
void clear_stop_request();  // tests

}  // namespace ringtrain
