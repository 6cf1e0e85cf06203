// DataSet: batch counts, sample coverage per epoch, shuffling and argument validation.

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <numeric>
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

/// N samples of 2 features where sample j is (j, -2j) with label j: every batch column can
/// be traced back to its sample and checked against its label.
struct Indexed {
  Matrix<float> x;
  Labels y;
  explicit Indexed(Index n) : x(2, n), y(n) {
    for (Index j = 0; j < n; ++j) {
      x(0, j) = static_cast<float>(j);
      x(1, j) = -2.0f * static_cast<float>(j);
      y(j) = static_cast<dlb::Label>(j);
    }
  }
};

/// Sample indices of one epoch, in visiting order; checks that each batch's features belong
/// to its labels and that batch sizes are as documented.
std::vector<Index> Epoch(dlb::DataSet<float>& data) {
  std::vector<Index> order;
  Index batches = 0;
  for (const auto& batch : data) {
    ++batches;
    REQUIRE(batch.x.cols() == batch.y.size());
    REQUIRE(batch.x.rows() == 2);
    if (batches < data.NumBatches()) REQUIRE(batch.x.cols() == data.BatchSize());
    for (Index j = 0; j < batch.x.cols(); ++j) {
      REQUIRE(batch.x(0, j) == static_cast<float>(batch.y(j)));
      REQUIRE(batch.x(1, j) == -2.0f * static_cast<float>(batch.y(j)));
      order.push_back(batch.y(j));
    }
  }
  REQUIRE(batches == data.NumBatches());
  return order;
}

std::vector<Index> Iota(Index n) {
  std::vector<Index> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), Index{0});
  return v;
}

}  // namespace

TEST_CASE("DataSet: batch count with and without drop_last") {
  const Indexed d(10);
  dlb::DataSet<float> dropping(d.x, d.y, {.batch_size = 3, .drop_last = true});
  dlb::DataSet<float> keeping(d.x, d.y, {.batch_size = 3});
  CHECK(dropping.NumBatches() == 3);
  CHECK(keeping.NumBatches() == 4);
  CHECK(dropping.SamplesPerEpoch() == 9);
  CHECK(keeping.SamplesPerEpoch() == 10);
  CHECK(dropping.NumSamples() == 10);
  CHECK(dropping.NumFeatures() == 2);
  CHECK(dropping.BatchSize() == 3);

  CHECK(Epoch(dropping).size() == 9);
  keeping.StartEpoch();
  CHECK(keeping.GetBatch(3).x.cols() == 1);  // the remainder
  CHECK(keeping.GetBatch(3).y.size() == 1);
  CHECK(Epoch(keeping).size() == 10);

  // Exact multiples: drop_last changes nothing.
  dlb::DataSet<float> exact(d.x, d.y, {.batch_size = 5, .shuffle = false, .drop_last = true});
  dlb::DataSet<float> exact_keep(d.x, d.y, {.batch_size = 5, .shuffle = false});
  CHECK(exact.NumBatches() == 2);
  CHECK(exact_keep.NumBatches() == 2);
  // batch_size == N is allowed: one batch.
  CHECK(dlb::DataSet<float>(d.x, d.y, {.batch_size = 10, .drop_last = true}).NumBatches() == 1);
}

TEST_CASE("DataSet: every sample exactly once per epoch, a new order every epoch") {
  const Indexed d(50);
  dlb::DataSet<float> data(d.x, d.y, {.batch_size = 8, .seed = 123});
  std::vector<std::vector<Index>> epochs;
  for (int e = 0; e < 4; ++e) {
    std::vector<Index> order = Epoch(data);
    std::vector<Index> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    CHECK(sorted == Iota(50));  // a permutation: each sample once
    CHECK(order != Iota(50));   // and actually shuffled
    epochs.push_back(std::move(order));
  }
  for (std::size_t a = 0; a < epochs.size(); ++a)
    for (std::size_t b = a + 1; b < epochs.size(); ++b) CHECK(epochs[a] != epochs[b]);

  SECTION("with drop_last each visited sample is distinct and the dropped ones vary") {
    dlb::DataSet<float> dropping(d.x, d.y, {.batch_size = 8, .drop_last = true, .seed = 123});
    std::vector<bool> ever_visited(50, false);
    for (int e = 0; e < 10; ++e) {
      std::vector<Index> order = Epoch(dropping);
      REQUIRE(order.size() == 48);
      std::sort(order.begin(), order.end());
      CHECK(std::adjacent_find(order.begin(), order.end()) == order.end());
      for (Index i : order) ever_visited[static_cast<std::size_t>(i)] = true;
    }
    CHECK(std::all_of(ever_visited.begin(), ever_visited.end(), [](bool v) { return v; }));
  }
}

TEST_CASE("DataSet: same seed gives the same order, different seeds different orders") {
  const Indexed d(40);
  dlb::DataSet<float> a(d.x, d.y, {.batch_size = 4, .drop_last = true, .seed = 7});
  dlb::DataSet<float> b(d.x, d.y, {.batch_size = 4, .drop_last = true, .seed = 7});
  dlb::DataSet<float> c(d.x, d.y, {.batch_size = 4, .drop_last = true, .seed = 8});
  const auto a1 = Epoch(a), a2 = Epoch(a);
  CHECK(Epoch(b) == a1);
  CHECK(Epoch(b) == a2);
  CHECK(Epoch(c) != a1);
}

TEST_CASE("DataSet: shuffle = false keeps the order and views X without copying") {
  const Indexed d(10);
  dlb::DataSet<float> data(d.x, d.y, {.batch_size = 4, .shuffle = false});
  for (int e = 0; e < 2; ++e) CHECK(Epoch(data) == Iota(10));
  const auto batch = data.GetBatch(1);
  CHECK(batch.x.data() == d.x.col(4).data());
  CHECK(batch.y.data() == d.y.data() + 4);
}

TEST_CASE("DataSet: each epoch's shuffle is uniform over permutations") {
  // Each epoch reorders the previous epoch's order, so the orders themselves tend to uniform
  // even for a biased shuffle; what must be uniform is the rearrangement sigma drawn per
  // epoch: new[k] = old[sigma(k)]. 24000 epochs of 4 samples: each of the 24 sigmas should
  // appear ~1000 times. A biased Fisher-Yates (e.g. drawing from all n positions at every
  // step) fails the chi-square bound by far.
  const Indexed d(4);
  dlb::DataSet<float> data(d.x, d.y, {.batch_size = 4, .drop_last = true, .seed = 100});
  std::map<std::vector<Index>, int> counts;
  constexpr int epochs = 24000;
  data.StartEpoch();
  auto order = [&] {
    const auto batch = data.GetBatch(0);
    return std::vector<Index>{batch.y(0), batch.y(1), batch.y(2), batch.y(3)};
  };
  std::vector<Index> previous = order();
  for (int e = 0; e < epochs; ++e) {
    data.StartEpoch();
    const std::vector<Index> current = order();
    std::vector<Index> sigma(4);
    for (std::size_t k = 0; k < 4; ++k) {
      sigma[k] = std::find(previous.begin(), previous.end(), current[k]) - previous.begin();
    }
    counts[sigma]++;
    previous = current;
  }
  REQUIRE(counts.size() == 24);
  double chi2 = 0;
  for (const auto& [sigma, count] : counts) chi2 += (count - 1000.0) * (count - 1000.0) / 1000.0;
  // 23 degrees of freedom: P(chi2 > 60) ~ 4e-5.
  CHECK(chi2 < 60);
}

TEST_CASE("DataSet: options from designated initializers or setters, with PyTorch's defaults") {
  const Indexed d(10);
  // Defaults as torch.utils.data.DataLoader(shuffle=True aside): drop_last false, seed 0.
  const dlb::DataSetOptions defaults;
  CHECK(defaults.shuffle);
  CHECK_FALSE(defaults.drop_last);
  CHECK(defaults.seed == 0);
  CHECK(dlb::DataSet<float>(d.x, d.y, {.batch_size = 3}).NumBatches() == 4);  // 3, 3, 3, 1

  const dlb::DataSetOptions chained =
      dlb::DataSetOptions().BatchSize(4).Shuffle(false).DropLast(true).Seed(9);
  dlb::DataSet<float> a(d.x, d.y, chained);
  dlb::DataSet<float> b(d.x, d.y, {.batch_size = 4, .shuffle = false, .drop_last = true, .seed = 9});
  for (const dlb::DataSet<float>* set : {&a, &b}) {
    const dlb::DataSetOptions options = set->Options();
    CHECK(options.batch_size == 4);
    CHECK_FALSE(options.shuffle);
    CHECK(options.drop_last);
    CHECK(options.seed == 9);
    CHECK(set->NumBatches() == 2);
  }
  CHECK(Epoch(a) == std::vector<Index>{0, 1, 2, 3, 4, 5, 6, 7});  // unshuffled, 8 and 9 dropped
  // The seed is used: same seed, same order; another seed, another order.
  dlb::DataSet<float> s1(d.x, d.y, dlb::DataSetOptions().BatchSize(5).Seed(1));
  dlb::DataSet<float> s1_again(d.x, d.y, {.batch_size = 5, .seed = 1});
  dlb::DataSet<float> s2(d.x, d.y, {.batch_size = 5, .seed = 2});
  const std::vector<Index> first = Epoch(s1);
  CHECK(first == Epoch(s1_again));
  CHECK(first != Epoch(s2));
}

TEST_CASE("DataSet: invalid sizes are reported") {
  const Indexed d(10);
  REQUIRE_THROWS_MATCHES(dlb::DataSet<float>(d.x, d.y, {.batch_size = 11}), dlb::ArgumentError,
                         What(Contains("batch_size") && Contains("11") && Contains("1..10")));
  REQUIRE_THROWS_MATCHES(dlb::DataSet<float>(d.x, d.y, {.batch_size = 0}), dlb::ArgumentError,
                         What(Contains("batch_size") && Contains("got 0")));
  // batch_size has no default: options without it are refused, saying so.
  REQUIRE_THROWS_MATCHES(dlb::DataSet<float>(d.x, d.y, dlb::DataSetOptions().Shuffle(false)),
                         dlb::ArgumentError, What(Contains("batch_size") && Contains("not set")));
  REQUIRE_THROWS_AS(dlb::DataSet<float>(d.x, d.y, {.batch_size = -3}), dlb::ArgumentError);

  const Labels short_y = d.y.head(9);
  REQUIRE_THROWS_MATCHES(dlb::DataSet<float>(d.x, short_y, {.batch_size = 2}), dlb::ShapeError,
                         What(Contains("10 samples") && Contains("9 labels")));

  const Matrix<float> empty_x(2, 0);
  const Labels empty_y(0);
  REQUIRE_THROWS_AS(dlb::DataSet<float>(empty_x, empty_y, {.batch_size = 1}), dlb::ShapeError);

  dlb::DataSet<float> data(d.x, d.y, {.batch_size = 3, .drop_last = true});
  REQUIRE_THROWS_MATCHES(data.GetBatch(3), dlb::ArgumentError, What(Contains("batch 3")));
  REQUIRE_THROWS_AS(data.GetBatch(-1), dlb::ArgumentError);
}
