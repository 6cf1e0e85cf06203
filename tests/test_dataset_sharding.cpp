// DataSet::SetShard: the shards of R ranks seeded alike are disjoint, contiguous, equal parts
// of the same global batches, and invalid splits are rejected with a clear message.

#include <catch2/catch.hpp>

#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/data/dataset.hpp"
#include "support/helpers.hpp"

using Catch::Matchers::Contains;
using dlb::Index;
using dlb::Labels;
using dlb::Matrix;
using dlb_test::What;

namespace {

/// N samples of 1 feature: sample j holds the value j and the label j.
struct Numbered {
  Matrix<float> x;
  Labels y;
  explicit Numbered(Index n)
      : x(Eigen::RowVectorXf::LinSpaced(n, 0.0f, static_cast<float>(n - 1))),
        y(Labels::LinSpaced(n, 0, static_cast<dlb::Label>(n - 1))) {}
};

/// The labels of every batch of one epoch, batch by batch; checks features match labels.
std::vector<std::vector<Index>> EpochBatches(dlb::DataSet<float>& data) {
  std::vector<std::vector<Index>> batches;
  for (const auto& batch : data) {
    REQUIRE(batch.x.cols() == batch.y.size());
    std::vector<Index> labels;
    for (Index j = 0; j < batch.y.size(); ++j) {
      REQUIRE(batch.x(0, j) == static_cast<float>(batch.y(j)));
      labels.push_back(batch.y(j));
    }
    batches.push_back(labels);
  }
  return batches;
}

}  // namespace

TEST_CASE("DataSet sharding: the shards of each global batch are its contiguous equal parts") {
  const Numbered d(53);
  for (bool shuffle : {true, false}) {
    for (bool drop_last : {true, false}) {
      CAPTURE(shuffle, drop_last);
      const dlb::DataSetOptions options{
          .batch_size = 12, .shuffle = shuffle, .drop_last = drop_last, .seed = 7};
      dlb::DataSet<float> whole(d.x, d.y, options);
      std::vector<dlb::DataSet<float>> shards;
      for (Index r = 0; r < 3; ++r) {
        shards.emplace_back(d.x, d.y, options);
        shards.back().SetShard(r, 3);
        CHECK(shards.back().ShardIndex() == r);
        CHECK(shards.back().NumShards() == 3);
        CHECK(shards.back().NumBatches() == whole.NumBatches());
      }
      for (int epoch = 0; epoch < 2; ++epoch) {  // the second epoch reshuffles alike
        const auto global = EpochBatches(whole);
        std::vector<std::vector<std::vector<Index>>> parts;
        for (auto& shard : shards) parts.push_back(EpochBatches(shard));
        REQUIRE(global.size() == static_cast<std::size_t>(whole.NumBatches()));
        for (std::size_t b = 0; b < global.size(); ++b) {
          std::vector<Index> joined;
          for (const auto& part : parts) {
            REQUIRE(part.size() == global.size());
            // Full batches split 4 + 4 + 4; a kept remainder of 5 (53 = 4 x 12 + 5) 1 + 2 + 2.
            if (global[b].size() == 12) REQUIRE(part[b].size() == 4);
            joined.insert(joined.end(), part[b].begin(), part[b].end());
          }
          REQUIRE(joined == global[b]);
        }
      }
    }
  }
}

TEST_CASE("DataSet sharding: a kept last batch is split as evenly as possible") {
  const Numbered d(23);  // batch 8: 8, 8 and a last batch of 7 split 3 + 4
  dlb::DataSet<float> first(d.x, d.y, {.batch_size = 8, .shuffle = false});
  dlb::DataSet<float> second(d.x, d.y, {.batch_size = 8, .shuffle = false});
  first.SetShard(0, 2);
  second.SetShard(1, 2);
  CHECK(first.GetBatch(2).y.size() == 3);
  CHECK(second.GetBatch(2).y.size() == 4);
  CHECK(first.GetBatch(2).y(0) == 16);
  CHECK(second.GetBatch(2).y(0) == 19);
  CHECK(second.GetBatch(1).y(0) == 12);
}

TEST_CASE("DataSet sharding: invalid splits are rejected and leave the DataSet unsharded") {
  const Numbered d(21);
  dlb::DataSet<float> data(d.x, d.y, {.batch_size = 10, .drop_last = true});
  REQUIRE_THROWS_MATCHES(data.SetShard(0, 3), dlb::ArgumentError,
                         What(Contains("global batch of 10 samples does not split into 3 equal "
                                       "shards") &&
                              Contains("divisible by the number of ranks")));
  REQUIRE_THROWS_MATCHES(data.SetShard(2, 2), dlb::ArgumentError,
                         What(Contains("need 0 <= shard < num_shards, got shard 2 of 2")));
  REQUIRE_THROWS_MATCHES(data.SetShard(0, 0), dlb::ArgumentError, What(Contains("got shard 0 of 0")));
  CHECK(data.NumShards() == 1);
  CHECK(data.GetBatch(0).y.size() == 10);

  dlb::DataSet<float> keeping(d.x, d.y, {.batch_size = 10});  // last batch: 1 sample
  REQUIRE_THROWS_MATCHES(keeping.SetShard(1, 2), dlb::ArgumentError,
                         What(Contains("the last batch keeps 1 samples (N = 21, batch 10), fewer "
                                       "than the 2 shards")));
  CHECK(keeping.NumShards() == 1);
}
