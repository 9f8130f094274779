// --progress bar: on rank 0, one line on the terminal redrawn in place (at most 10 times a second) as the epoch
// goes, the figures of the step lines (progress_log.cpp) and an ETA:
//   epoch 1/5  412/843 [=========>          ]  loss 0.5123  accuracy 0.8123  10234 img/s  ETA 0:04
// The epoch's line then takes its place, so that the terminal keeps one line per epoch. The bar is transient:
// it goes to the terminal (stdout) itself, never into the log (a run directory's copy of the log has none of it).
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <streambuf>
#include <vector>

#include "ringtrain/comm/agreement.hpp"
#include "ringtrain/train/callbacks.hpp"
#include "ringtrain/train/launch.hpp"

namespace ringtrain {

namespace {

// The bar's line on the terminal: drawn with a carriage return, and erased (a carriage return, then ESC [K,
// erase to the end of the line) before anything else is written there, so that no other line begins after
// the bar's text.
class TerminalLine {
 public:
  explicit TerminalLine(std::streambuf* terminal) : terminal_(terminal) {}
  void draw(const std::string& text) {
    put("\r" + text + "\033[K");
    shown_ = true;
  }
  void erase() {
    if (shown_) put("\r\033[K");
    shown_ = false;
  }
  // Leaves the last drawing on the screen and moves to the next line: what an error says comes next.
  void keep() {
    if (shown_) put("\n");
    shown_ = false;
  }

 private:
  void put(const std::string& text) {
    terminal_->sputn(text.data(), static_cast<std::streamsize>(text.size()));
    terminal_->pubsync();
  }
  std::streambuf* terminal_;
  bool shown_ = false;
};

// Stands in front of a stream's buffer while the bar is up: whatever anyone writes to the stream (the log's
// lines, a checkpoint's, a warning on stderr) erases the bar first. It keeps no buffer of its own, so every
// write reaches it at once.
class ErasingBuffer final : public std::streambuf {
 public:
  ErasingBuffer(std::ostream& stream, TerminalLine& line) : stream_(stream), next_(stream.rdbuf()), line_(line) {
    stream_.rdbuf(this);
  }
  ~ErasingBuffer() override { stream_.rdbuf(next_); }
  ErasingBuffer(const ErasingBuffer&) = delete;
  ErasingBuffer& operator=(const ErasingBuffer&) = delete;
  // What was written before the bar is drawn must reach the terminal before it.
  void flush() { next_->pubsync(); }

 protected:
  int_type overflow(int_type ch) override {
    if (traits_type::eq_int_type(ch, traits_type::eof())) return traits_type::not_eof(ch);
    line_.erase();
    return next_->sputc(traits_type::to_char_type(ch));
  }
  std::streamsize xsputn(const char* text, std::streamsize n) override {
    line_.erase();
    return next_->sputn(text, n);
  }
  int sync() override { return next_->pubsync(); }

 private:
  std::ostream& stream_;
  std::streambuf* next_;
  TerminalLine& line_;
};

// The terminal's width in characters: a line as wide wraps, and a carriage return then redraws only its
// second half. 80 where stdout is not a terminal (a bar forced into a file).
size_t terminal_columns() {
  winsize size{};
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  return 80;
}

// "4:05", "1:02:03".
std::string clock_text(double seconds) {
  const auto s = static_cast<long long>(std::max(0.0, seconds) + 0.5);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%lld:%02lld", s / 60, s % 60);
  return buf;
}

// "[=========>          ]", `width` characters between the brackets.
std::string meter(int64_t done, int64_t total, size_t width) {
  const auto filled = static_cast<size_t>(static_cast<double>(width) * static_cast<double>(done) /
                                          static_cast<double>(std::max<int64_t>(total, 1)));
  std::string inside(std::min(filled, width), '=');
  if (inside.size() < width) inside += '>';
  return "[" + inside + std::string(width - inside.size(), ' ') + "]";
}

// "a  b  c".
std::string joined(const std::vector<std::string>& figures) {
  std::string line;
  for (const std::string& figure : figures) line += (line.empty() ? "" : "  ") + figure;
  return line;
}

// The bar's line in `columns` characters: the figures that fit, the last dropped first (the first two, the
// epoch and its steps, always stay), and a meter of `done` of `total` after them where room is left for it (an
// 80-column terminal has room for the figures alone).
std::string fitted(std::vector<std::string> figures, int64_t done, int64_t total, size_t columns) {
  constexpr size_t kMinMeter = 10, kMaxMeter = 30;  // characters between its brackets
  std::string line = joined(figures);
  for (; figures.size() > 2 && line.size() > columns; line = joined(figures)) figures.pop_back();
  const size_t meter_room = columns > line.size() + 4 ? columns - line.size() - 4 : 0;  // its "  [" and "]"
  if (meter_room >= kMinMeter) {
    figures.insert(figures.begin() + 2, meter(done, total, std::min(meter_room, kMaxMeter)));
    line = joined(figures);
  }
  if (line.size() > columns) line.resize(columns);
  return line;
}

class ProgressBar final : public Callback {
 public:
  explicit ProgressBar(const TrainContext& context)
      : c_(context),
        metric_(context.loss.metric_name()),
        unit_(throughput_unit(context)),
        line_(std::cout.rdbuf()),  // the terminal, taken before the log (std::cout itself) is put behind a guard
        log_(context.log, line_),
        errors_(std::cerr, line_) {}
  ~ProgressBar() override { line_.keep(); }  // an error ends the run: its line follows the bar's

  void on_train_begin(TrainState& state) override { start_counting(state); }  // a resumed run: within an epoch
  void on_step_begin(TrainState& state) override {
    if (state.epoch_steps > 0) return;
    start_counting(state);
    draw_at_most_10_hz(state);  // 0 of N steps: a first step that takes seconds shows where the run is
  }
  void on_step_end(TrainState& state) override { draw_at_most_10_hz(state); }

 private:
  using Clock = std::chrono::steady_clock;

  // The rate and ETA count the steps this process takes in the epoch from here.
  void start_counting(const TrainState& state) {
    counted_from_ = Clock::now();
    steps_before_ = state.epoch_steps;
  }

  void draw_at_most_10_hz(const TrainState& state) {
    const Clock::time_point now = Clock::now();
    if (drawn_ && now - drawn_at_ < std::chrono::milliseconds(100)) return;
    log_.flush();
    line_.draw(text(state, std::chrono::duration<double>(now - counted_from_).count()));
    drawn_ = true;
    drawn_at_ = now;
  }

  // The bar's figures for the epoch so far, `seconds` after counting began, at most as wide as the terminal.
  std::string text(const TrainState& state, double seconds) const {
    // The epoch's steps: fewer where --steps ends the run within it.
    const int64_t epoch_first = state.step - state.epoch_steps;
    int64_t steps = state.steps_per_epoch;
    if (c_.config.max_steps > 0) steps = std::clamp<int64_t>(c_.config.max_steps - epoch_first, 0, steps);
    std::vector<std::string> figures = {"epoch " + std::to_string(state.epoch + 1) + "/" + std::to_string(state.epochs),
                                        std::to_string(state.epoch_steps) + "/" + std::to_string(steps)};
    if (state.running.step > epoch_first)  // a score point of this epoch
      figures.push_back(format_score("", state.running.score, metric_, c_.model.per_position()));
    if (const int64_t taken = state.epoch_steps - steps_before_; taken > 0 && seconds > 0.0) {
      // Every replica takes a whole --batch a step (of tokens, for a language model, as the unit says).
      const double samples =
          static_cast<double>(taken * c_.config.batch * c_.share.replicas * c_.model.predictions_per_sample());
      figures.push_back(format_rate(samples / seconds, unit_));
      figures.push_back("ETA " + clock_text(seconds / static_cast<double>(taken) *
                                            static_cast<double>(std::max<int64_t>(steps - state.epoch_steps, 0))));
    }
    // The last column would wrap on some terminals.
    return fitted(std::move(figures), state.epoch_steps, steps, terminal_columns() - 1);
  }

  const TrainContext& c_;
  std::string metric_, unit_;
  TerminalLine line_;
  ErasingBuffer log_, errors_;  // the log and stderr, each erasing the bar before it writes
  Clock::time_point counted_from_, drawn_at_;
  int64_t steps_before_ = 0;  // the epoch's steps when counting began
  bool drawn_ = false;
};

}  // namespace

ProgressKind choose_progress(ProgressKind asked, Communicator& world) {
  if (asked != ProgressKind::automatic) return asked;
  const bool terminal = world.rank() == 0 && ::isatty(STDOUT_FILENO) == 1 &&
                        launch_from_environment().launcher != Launch::mpirun;
  return agree_any(world, terminal) ? ProgressKind::bar : ProgressKind::lines;
}

std::unique_ptr<Callback> make_progress_bar(const TrainContext& context) {
  if (context.config.progress != ProgressKind::bar || context.world.rank() != 0) return nullptr;
  return std::make_unique<ProgressBar>(context);
}

}  // namespace ringtrain
