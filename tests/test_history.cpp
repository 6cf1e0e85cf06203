// The history file: its columns and number format, HistoryCsvLogger keeping the file
// complete after every epoch, and a path that cannot be written failing before training.

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "dlb/serialization/checkpoint.hpp"
#include "dlb/training/history_csv_logger.hpp"
#include "dlb/training/train.hpp"
#include "support/helpers.hpp"
#include "support/temp_dir.hpp"
#include "support/training_run.hpp"

using dlb_test::MessageContains;
using dlb_test::TrainingRun;

namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace

TEST_CASE("History rows: the columns and numbers that read back exactly", "[history]") {
  CHECK(std::string(dlb::kHistoryCsvHeader) ==
        "epoch,lr,train_loss,val_loss,train_acc,val_acc,seconds");
  const dlb::EpochStats stats{3, static_cast<double>(0.2f), 0.345, 0.371, 0.874, 0.8665, 1.2345678};
  CHECK(dlb::HistoryCsvRow(stats) == "3,0.200000003,0.345,0.371,0.874,0.8665,1.234568");
  CHECK(dlb::HistoryCsv({stats, stats}) == std::string(dlb::kHistoryCsvHeader) + "\n" +
                                               dlb::HistoryCsvRow(stats) + "\n" +
                                               dlb::HistoryCsvRow(stats) + "\n");
  // A float learning rate survives the round trip through the text.
  const float lr = 0.123456789f;
  const dlb::EpochStats row{1, static_cast<double>(lr), 0, 0, 0, 0, 0};
  const std::string text = dlb::HistoryCsvRow(row);
  CHECK(static_cast<float>(std::stod(text.substr(2))) == lr);
}

TEST_CASE("HistoryCsvLogger keeps the file complete after every epoch", "[history]") {
  dlb_test::TempDir dir("dlb_history_");
  const std::string path = dir / "history.csv";
  TrainingRun run;
  dlb::HistoryCsvLogger<float> logger(path);
  std::vector<std::size_t> lines_seen;
  dlb::LambdaCallback<float> reader;
  reader.on_epoch_begin = [&](auto&) { lines_seen.push_back(Lines(ReadFile(path)).size()); };
  const dlb::TrainResult result = dlb::TrainModel(
      run.model, run.train, run.validation, run.loss, run.optimizer, {.epochs = 3}, {&logger, &reader});
  // Before epoch e the file holds the header and e - 1 rows.
  CHECK(lines_seen == std::vector<std::size_t>{1, 2, 3});
  CHECK(ReadFile(path) == dlb::HistoryCsv(result.history));
  const auto lines = Lines(ReadFile(path));
  REQUIRE(lines.size() == 4);
  CHECK(lines[1].rfind("1,0.100000001,", 0) == 0);
  // Only the file itself is left in the directory: no temporary files.
  int files = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir.path)) ++files;
  CHECK(files == 1);
}

TEST_CASE("HistoryCsvLogger replaces an earlier file and fails before training on a bad path",
          "[history]") {
  dlb_test::TempDir dir("dlb_history_");
  const std::string path = dir / "history.csv";
  {
    std::ofstream old(path);
    old << "an earlier, longer file\nwith lines\nthat must all go\n";
  }
  TrainingRun run;
  dlb::HistoryCsvLogger<float> logger(path);
  const auto result = dlb::TrainModel(run.model, run.train, run.validation, run.loss,
                                      run.optimizer, {.epochs = 1}, {&logger});
  CHECK(ReadFile(path) == dlb::HistoryCsv(result.history));

  const std::string bad = dir / "no-such-dir/history.csv";
  dlb::HistoryCsvLogger<float> bad_logger(bad);
  TrainingRun run2;
  REQUIRE_THROWS_MATCHES(dlb::TrainModel(run2.model, run2.train, run2.validation, run2.loss,
                                         run2.optimizer, {.epochs = 1}, {&bad_logger}),
                         dlb::FileError, MessageContains({bad, "the directory", "does not exist"}));
  CHECK(run2.optimizer.StepCount() == 0);
}

TEST_CASE("HistoryCsvLogger after a resumption: the checkpoint's rows, then the new ones",
          "[history]") {
  // The file of a resumed run is the interrupted run's file, byte for byte, followed by the
  // rows of the epochs trained after it; the whole equals the uninterrupted run's file but for
  // the seconds of the new epochs (wall time).
  dlb_test::TempDir dir("dlb_history_");
  const std::string whole_path = dir / "whole.csv";
  const std::string path = dir / "history.csv";
  const std::string checkpoint = dir / "checkpoint.safetensors";
  TrainingRun whole;
  dlb::HistoryCsvLogger<float> whole_logger(whole_path);
  dlb::TrainModel(whole.model, whole.train, whole.validation, whole.loss, whole.optimizer,
                  {.epochs = 4}, {&whole_logger});

  TrainingRun first;
  dlb::HistoryCsvLogger<float> first_logger(path);
  dlb::CheckpointCallback<float> checkpoints(checkpoint);
  dlb::TrainModel(first.model, first.train, first.validation, first.loss, first.optimizer,
                  {.epochs = 2}, {&first_logger, &checkpoints});
  const std::string interrupted = ReadFile(path);

  TrainingRun resumed;
  const dlb::CheckpointInfo info =
      dlb::RestoreCheckpoint(
      checkpoint, dlb::TrainingState<float>{resumed.model, resumed.optimizer, resumed.train});
  dlb::HistoryCsvLogger<float> logger(path);
  logger.SetEarlierHistory(info.history);
  std::vector<std::size_t> lines_seen;
  dlb::LambdaCallback<float> reader;
  reader.on_epoch_begin = [&](auto&) { lines_seen.push_back(Lines(ReadFile(path)).size()); };
  dlb::TrainModel(resumed.model, resumed.train, resumed.validation, resumed.loss,
                  resumed.optimizer, {.epochs = 4, .initial_epoch = info.epoch}, {&logger, &reader});
  // Complete before every epoch too: the header and the 2 saved rows before epoch 3.
  CHECK(lines_seen == std::vector<std::size_t>{3, 4});
  const std::string text = ReadFile(path);
  CHECK(text.substr(0, interrupted.size()) == interrupted);
  const auto without_seconds = [](const std::string& line) { return line.substr(0, line.rfind(',')); };
  const auto lines = Lines(text);
  const auto expected = Lines(ReadFile(whole_path));
  REQUIRE(lines.size() == expected.size());
  for (std::size_t i = 0; i < lines.size(); ++i) {
    INFO("line " << i);
    CHECK(without_seconds(lines[i]) == without_seconds(expected[i]));
  }
}
