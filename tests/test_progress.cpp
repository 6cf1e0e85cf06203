// Progress display: summary lines only when the output is not a terminal, a live line
// redrawn in place on a terminal (checked on an injected stream and on a real
// pseudo-terminal standing in for standard output), the live line's contents, and no
// allocation while it is drawn.

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <pty.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "dlb/training/progress.hpp"
#include "dlb/training/train.hpp"
#include "support/allocation_counter.hpp"  // counts allocations; one file per program
#include "support/temp_dir.hpp"
#include "support/training_run.hpp"

using dlb_test::TrainingRun;

namespace {

const std::regex kSummaryLine(
    R"(Epoch +[0-9]+ / [0-9]+: \| Train Loss: +[0-9.]+ \| Val Loss: +[0-9.]+ \| Train Acc: +[0-9.]+ \| Val Acc: +[0-9.]+ \| Epoch Time: +[0-9.]+ \|)");
const std::regex kLiveLine(
    R"(Epoch [0-9]+ / [0-9]+ \| batch [0-9]+ / [0-9]+ \| [0-9]+ samples/s \| loss [0-9.]+ \| [0-9:]+ left)");

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

/// Trains a small run for `epochs` epochs with its progress going to `out`.
dlb::TrainResult Train(std::ostream& out, dlb::ProgressMode mode, int epochs = 2,
                       const std::vector<dlb::Callback<float>*>& callbacks = {}) {
  TrainingRun run;  // 4 batches per epoch
  return dlb::TrainModel(run.model, run.train, run.validation, run.loss, run.optimizer,
                         {.epochs = epochs, .log = &out, .progress = mode}, callbacks);
}

/// Splits the text at "\r" and "\n", keeping only non-empty pieces after removing "\x1b[K":
/// what a terminal would have shown at some moment, line by line.
std::vector<std::string> Redraws(std::string text) {
  for (std::size_t at; (at = text.find("\x1b[K")) != std::string::npos;) text.erase(at, 3);
  std::vector<std::string> pieces;
  std::string piece;
  for (char c : text) {
    if (c == '\r' || c == '\n') {
      if (!piece.empty()) pieces.push_back(piece);
      piece.clear();
    } else {
      piece += c;
    }
  }
  if (!piece.empty()) pieces.push_back(piece);
  return pieces;
}

/// A context of a 10-epoch run of `run`, to set by hand.
dlb::TrainingContext<float> Context(TrainingRun& run, const std::vector<dlb::EpochStats>& history) {
  dlb::TrainingContext<float> context(run.model, run.optimizer, run.train, history);
  context.epochs = 10;
  return context;
}

/// A stream over a fixed buffer: writing to it never allocates.
class FixedBuffer : public std::streambuf {
 public:
  FixedBuffer() { setp(data_, data_ + sizeof data_); }
  std::string Text() const { return std::string(pbase(), pptr()); }

 private:
  char data_[1 << 16];
};

/// Redirects standard output (file descriptor 1) to `fd` for its lifetime.
class RedirectStdout {
 public:
  explicit RedirectStdout(int fd) : saved_(::dup(STDOUT_FILENO)) {
    std::cout.flush();
    std::fflush(stdout);
    ::dup2(fd, STDOUT_FILENO);
  }
  ~RedirectStdout() {
    std::cout.flush();
    std::fflush(stdout);
    ::dup2(saved_, STDOUT_FILENO);
    ::close(saved_);
  }
  RedirectStdout(const RedirectStdout&) = delete;
  RedirectStdout& operator=(const RedirectStdout&) = delete;

 private:
  int saved_;
};

/// Sets an environment variable for its lifetime.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

}  // namespace

TEST_CASE("Off a terminal only the summary lines are written", "[progress]") {
  for (const auto mode : {dlb::ProgressMode::Auto, dlb::ProgressMode::Summary}) {
    std::ostringstream out;  // not a terminal: Auto means summary lines
    const dlb::TrainResult result = Train(out, mode, 3);
    const std::string text = out.str();
    CHECK(text.find('\r') == std::string::npos);
    CHECK(text.find('\x1b') == std::string::npos);
    const auto lines = Lines(text);
    REQUIRE(lines.size() == 3);
    for (std::size_t i = 0; i < lines.size(); ++i) {
      CHECK(std::regex_match(lines[i], kSummaryLine));
      CHECK(lines[i] == dlb::FormatEpoch(result.history[i], 3));
    }
  }
}

TEST_CASE("The live line is drawn in place and replaced by the summary line", "[progress]") {
  std::ostringstream out;
  const dlb::TrainResult result = Train(out, dlb::ProgressMode::Live, 2);
  const std::string text = out.str();
  // Each epoch: "\r<live line>\x1b[K" at least for batch 1 (later ones are throttled to
  // 10 per second), then "\r\x1b[K<summary line>\n".
  for (int epoch = 1; epoch <= 2; ++epoch) {
    INFO(text);
    const std::string live = "\rEpoch " + std::to_string(epoch) + " / 2 | batch 1 / 4 | ";
    const std::size_t at = text.find(live);
    REQUIRE(at != std::string::npos);
    const std::string summary = "\r\x1b[K" + dlb::FormatEpoch(result.history[static_cast<std::size_t>(epoch - 1)], 2) + "\n";
    const std::size_t summary_at = text.find(summary);
    REQUIRE(summary_at != std::string::npos);
    CHECK(summary_at > at);
  }
  for (const std::string& piece : Redraws(text)) {
    CHECK((std::regex_match(piece, kLiveLine) || std::regex_match(piece, kSummaryLine)));
  }
  // What stays on screen: the two summary lines.
  CHECK(text.substr(text.rfind('\r')) ==
        "\r\x1b[K" + dlb::FormatEpoch(result.history.back(), 2) + "\n");
}

TEST_CASE("A ProgressLine without throttling draws every batch in order", "[progress]") {
  TrainingRun run;
  std::ostringstream out;
  dlb::ProgressLine<float> progress(out, /*live=*/true, /*refresh_seconds=*/0);
  dlb::TrainModel(run.model, run.train, run.validation, run.loss, run.optimizer, {.epochs = 2},
                  {&progress});
  std::vector<std::string> expected;
  std::vector<std::string> seen;
  for (const std::string& piece : Redraws(out.str())) {
    if (!std::regex_match(piece, kLiveLine)) continue;
    seen.push_back(piece.substr(0, piece.find(" | ", piece.find("batch"))));
  }
  for (int epoch = 1; epoch <= 2; ++epoch) {
    for (int batch = 1; batch <= 4; ++batch) {
      expected.push_back("Epoch " + std::to_string(epoch) + " / 2 | batch " + std::to_string(batch) + " / 4");
    }
  }
  CHECK(seen == expected);
}

TEST_CASE("The live line's numbers: samples per second and time left", "[progress]") {
  TrainingRun run;
  std::vector<dlb::EpochStats> history;
  dlb::TrainingContext<float> context = Context(run, history);
  context.epoch = 3;
  context.batches = 200;
  context.batch = 50;
  context.running = {0.41234, 0.8, 12800};
  context.epoch_seconds = 2.0;
  char line[192];
  const int n = dlb::FormatBatchProgress(line, sizeof line, context);
  // 12800 samples in 2 s; 150 batches left at 25 batches per second.
  CHECK(std::string(line, static_cast<std::size_t>(n)) ==
        "Epoch 3 / 10 | batch 50 / 200 | 6400 samples/s | loss 0.4123 | 0:06 left");
  char small[12];
  CHECK(dlb::FormatBatchProgress(small, sizeof small, context) == 11);  // truncated, terminated
  CHECK(std::string(small) == "Epoch 3 / 1");

  char text[32];
  const auto duration = [&](double seconds) {
    dlb::FormatDuration(text, sizeof text, seconds);
    return std::string(text);
  };
  CHECK(duration(7.4) == "0:07");
  CHECK(duration(754) == "12:34");
  CHECK(duration(3723) == "1:02:03");
  CHECK(duration(NAN) == "?");
  CHECK(duration(-1) == "?");
}

TEST_CASE("Drawing the live line allocates nothing", "[progress]") {
  TrainingRun run;
  std::vector<dlb::EpochStats> history;
  dlb::TrainingContext<float> context = Context(run, history);
  context.epoch = 1;
  context.batches = 100;
  context.running = {0.5, 0.5, 0};
  FixedBuffer buffer;
  std::ostream out(&buffer);
  dlb::ProgressLine<float> progress(out, true, 0);
  progress.OnEpochBegin(context);
  const long before = dlb_test::Allocations();
  for (dlb::Index batch = 1; batch <= 100; ++batch) {
    context.batch = batch;
    context.running.samples = batch * 32;
    context.epoch_seconds = 0.01 * static_cast<double>(batch);
    progress.OnBatchEnd(context);
  }
  const long allocations = dlb_test::Allocations() - before;
  CHECK(allocations == 0);
  CHECK(buffer.Text().find("batch 100 / 100") != std::string::npos);
}

TEST_CASE("An error during an epoch leaves the live line ended by a newline", "[progress]") {
  std::ostringstream out;
  dlb::LambdaCallback<float> fail;
  fail.on_batch_end = [](auto& context) {
    if (context.batch == 2) throw dlb::Error("stop here");
  };
  REQUIRE_THROWS_AS(Train(out, dlb::ProgressMode::Live, 2, {&fail}), dlb::Error);
  const std::string text = out.str();
  REQUIRE(text.size() > 4);
  CHECK(text.substr(text.size() - 4) == "\x1b[K\n");
  CHECK(text.find("batch 1 / 4") != std::string::npos);
}

TEST_CASE("On a pseudo-terminal the live line appears; redirected to a file it does not",
          "[progress]") {
  ScopedEnv term("TERM", "xterm");
  std::ostringstream not_a_terminal;
  CHECK_FALSE(dlb::IsTerminal(not_a_terminal));

  SECTION("a pseudo-terminal") {
    int master = -1, slave = -1;
    REQUIRE(::openpty(&master, &slave, nullptr, nullptr, nullptr) == 0);
    termios raw{};
    REQUIRE(::tcgetattr(slave, &raw) == 0);
    ::cfmakeraw(&raw);  // no "\n" -> "\r\n" translation: the bytes arrive as written
    REQUIRE(::tcsetattr(slave, TCSANOW, &raw) == 0);
    bool terminal = false;
    bool dumb = true;
    std::optional<dlb::TrainResult> result;
    {
      RedirectStdout redirect(slave);
      terminal = dlb::IsTerminal(std::cout);
      {
        ScopedEnv dumb_term("TERM", "dumb");
        dumb = dlb::IsTerminal(std::cout);
      }
      result = Train(std::cout, dlb::ProgressMode::Auto, 2);
    }
    ::close(slave);
    std::string text;
    ::fcntl(master, F_SETFL, O_NONBLOCK);
    char chunk[4096];
    for (ssize_t n; (n = ::read(master, chunk, sizeof chunk)) > 0;) text.append(chunk, static_cast<std::size_t>(n));
    ::close(master);
    CHECK(terminal);
    CHECK_FALSE(dumb);
    INFO(text);
    CHECK(text.find("\rEpoch 1 / 2 | batch 1 / 4 | ") != std::string::npos);
    CHECK(text.find("\rEpoch 2 / 2 | batch 1 / 4 | ") != std::string::npos);
    CHECK(text.find("\r\x1b[K" + dlb::FormatEpoch(result->history[1], 2) + "\n") != std::string::npos);
  }

  SECTION("a file") {
    dlb_test::TempDir dir("dlb_progress_");
    const std::string path = dir / "log.txt";
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    bool terminal = true;
    std::optional<dlb::TrainResult> result;
    {
      RedirectStdout redirect(fd);
      terminal = dlb::IsTerminal(std::cout);
      result = Train(std::cout, dlb::ProgressMode::Auto, 2);
    }
    ::close(fd);
    std::ifstream in(path);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK_FALSE(terminal);
    CHECK(text == dlb::FormatEpoch(result->history[0], 2) + "\n" +
                      dlb::FormatEpoch(result->history[1], 2) + "\n");
  }
}

namespace {

/// One process of a chain: its command name (as a launcher would show in /proc) and the
/// descriptor that becomes its standard output.
struct ChainLink {
  const char* name;
  int stdout_fd;
};

/// Forks the processes of `chain`, each the parent of the next, renamed and with their
/// standard output set as given; the last one, with OMPI_COMM_WORLD_SIZE=2 set as in a rank
/// of mpirun, answers dlb::IsTerminal(std::cout). Returns that answer (through the exit
/// statuses), or -1 when a process failed.
int IsTerminalAtEndOf(const std::vector<ChainLink>& chain, std::size_t at = 0) {
  const pid_t child = ::fork();
  if (child < 0) return -1;
  if (child == 0) {
    const ChainLink& link = chain[at];
    if (::dup2(link.stdout_fd, STDOUT_FILENO) < 0) ::_exit(3);
    ::prctl(PR_SET_NAME, link.name, 0, 0, 0);
    if (at + 1 < chain.size()) {
      const int answer = IsTerminalAtEndOf(chain, at + 1);
      ::_exit(answer < 0 ? 3 : answer);
    }
    ::setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
    ::_exit(dlb::IsTerminal(std::cout) ? 1 : 0);
  }
  int status = 0;
  if (::waitpid(child, &status, 0) != child || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status) <= 1 ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST_CASE("Under mpirun the live line needs mpirun's own output to be a terminal", "[progress]") {
  // Open MPI gives every rank a pseudo-terminal and copies it to mpirun's output, which may
  // be a log file: the rank's isatty() is no guide there. Stand-ins: processes named
  // "mpirun" (and a shell between it and the rank), pseudo-terminals and a file.
  int rank_master = -1, rank_pty = -1, user_master = -1, user_pty = -1;
  REQUIRE(::openpty(&rank_master, &rank_pty, nullptr, nullptr, nullptr) == 0);
  REQUIRE(::openpty(&user_master, &user_pty, nullptr, nullptr, nullptr) == 0);
  dlb_test::TempDir dir("dlb_progress_");
  const std::string log = dir / "log.txt";
  const int file = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  REQUIRE(file >= 0);
  ScopedEnv term("TERM", "xterm");

  CHECK(IsTerminalAtEndOf({{"mpirun", file}, {"rank", rank_pty}}) == 0);       // mpirun ... > log
  CHECK(IsTerminalAtEndOf({{"mpirun", user_pty}, {"rank", rank_pty}}) == 1);   // on a terminal
  CHECK(IsTerminalAtEndOf({{"mpirun", file}, {"sh", rank_pty}, {"rank", rank_pty}}) == 0);
  CHECK(IsTerminalAtEndOf({{"mpirun", user_pty}, {"sh", rank_pty}, {"rank", rank_pty}}) == 1);
  CHECK(IsTerminalAtEndOf({{"orted", file}, {"rank", rank_pty}}) == 0);        // another host
  // No launcher among the ancestors (a singleton run): the rank's own terminal counts.
  CHECK(IsTerminalAtEndOf({{"bash", file}, {"rank", rank_pty}}) == 1);
  // A rank writing to a file is no terminal, whatever mpirun writes to.
  CHECK(IsTerminalAtEndOf({{"mpirun", user_pty}, {"rank", file}}) == 0);
  ::close(file);
  for (const int fd : {rank_master, rank_pty, user_master, user_pty}) ::close(fd);
}

TEST_CASE("LaunchedByMpi reads the launchers' rank variables", "[progress]") {
  const char* names[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"};
  std::vector<std::optional<std::string>> saved;
  for (const char* name : names) {
    const char* value = std::getenv(name);
    saved.push_back(value ? std::optional<std::string>(value) : std::nullopt);
    ::unsetenv(name);
  }
  CHECK_FALSE(dlb::LaunchedByMpi());
  for (const char* name : names) {
    ScopedEnv set(name, "1");
    CHECK(dlb::LaunchedByMpi());
  }
  for (std::size_t i = 0; i < saved.size(); ++i) {
    if (saved[i]) ::setenv(names[i], saved[i]->c_str(), 1);
  }
}
