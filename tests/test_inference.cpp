// The inference path a service uses: Predictor and LoadedModel::Predict from many threads at
// once (the same logits as one thread), ModelNN::Clone, and the class-probability helpers.
// tests/tsan/ runs the concurrent part again under ThreadSanitizer.

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "dlb/data/standardize.hpp"
#include "dlb/metrics/class_probabilities.hpp"
#include "dlb/model/predictor.hpp"
#include "dlb/serialization/model_file.hpp"
#include "support/inference_model.hpp"
#include "support/temp_dir.hpp"

using dlb::Matrix;

namespace {

bool BitwiseEqual(const Matrix<float>& a, const Matrix<float>& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() && (a.array() == b.array()).all();
}

std::vector<Matrix<float>> SingleThreadLogits(dlb::ModelNN<float>& model, const std::vector<Matrix<float>>& batches) {
  std::vector<Matrix<float>> expected;
  model.SetMode(dlb::Mode::Inference);
  for (const Matrix<float>& x : batches) expected.push_back(model.Forward(x));
  return expected;
}

}  // namespace

TEST_CASE("Predictor: the logits of ModelNN::Forward in inference mode, as an owned matrix", "[inference]") {
  dlb::ModelNN<float> model = dlb_test::InferenceTestModel(1);
  const dlb::Predictor<float> predictor(model);
  const std::vector<Matrix<float>> batches = dlb_test::TestBatches(64, 4, 5);
  const std::vector<Matrix<float>> expected = SingleThreadLogits(model, batches);
  for (std::size_t b = 0; b < batches.size(); ++b) {
    const Matrix<float> first = predictor.Predict(batches[b]);
    const Matrix<float> again = predictor.Predict(batches[b]);  // owned: not overwritten
    CHECK(BitwiseEqual(first, expected[b]));
    CHECK(BitwiseEqual(again, expected[b]));
  }
  // An expression (here double -> float) is accepted like ModelNN::Forward's.
  CHECK(BitwiseEqual(predictor.Predict(batches[0].cast<double>().cast<float>()), expected[0]));
  Matrix<float> into;
  predictor.Predict(batches[1], into);
  CHECK(BitwiseEqual(into, expected[1]));
  CHECK(predictor.Workspaces() == 1);  // one thread, one workspace
  CHECK_THROWS_AS(predictor.Predict(Matrix<float>::Zero(63, 2)), dlb::ShapeError);
  CHECK_THROWS_AS(predictor.Predict(Matrix<float>::Zero(64, 0)), dlb::ShapeError);
}

TEST_CASE("Predictor: 8 threads predicting at once get the logits of one thread", "[inference]") {
  dlb::ModelNN<float> model = dlb_test::InferenceTestModel(2);
  const dlb::Predictor<float> predictor(model);
  const std::vector<Matrix<float>> batches = dlb_test::TestBatches(64, 6, 7);
  const std::vector<Matrix<float>> expected = SingleThreadLogits(model, batches);
  const int mismatches = dlb_test::CountConcurrentMismatches(
      8, 20, batches, expected, [&](const Matrix<float>& x) { return predictor.Predict(x); });
  CHECK(mismatches == 0);
  CHECK(predictor.Workspaces() >= 1);
  CHECK(predictor.Workspaces() <= 8);
  // Negative control: the comparison sees a different model's logits.
  const dlb::Predictor<float> other(dlb_test::InferenceTestModel(3));
  CHECK(dlb_test::CountConcurrentMismatches(2, 1, batches, expected,
                                            [&](const Matrix<float>& x) { return other.Predict(x); }) ==
        2 * static_cast<int>(batches.size()));
}

TEST_CASE("Predictor: frozen at construction and Clone is independent", "[inference]") {
  dlb::ModelNN<float> model = dlb_test::InferenceTestModel(4);
  const Matrix<float> x = dlb_test::TestBatches(64, 1, 3)[0];
  model.SetMode(dlb::Mode::Inference);
  const Matrix<float> before = model.Forward(x);
  const dlb::Predictor<float> predictor(model);
  const dlb::Predictor<float> copy = predictor.Clone();
  CHECK(predictor.Model().GetMode() == dlb::Mode::Inference);
  CHECK(predictor.Model().Summary() == model.Summary());
  model.Init(99);  // new weights in the source model
  CHECK_FALSE(BitwiseEqual(model.Forward(x), before));
  CHECK(BitwiseEqual(predictor.Predict(x), before));
  CHECK(BitwiseEqual(copy.Predict(x), before));
  CHECK(copy.Workspaces() == 1);
}

TEST_CASE("ModelNN::Clone: same logits and state, independent afterwards", "[inference]") {
  dlb::ModelNN<float> model = dlb_test::InferenceTestModel(5);
  dlb::ModelNN<float> clone = model.Clone();
  const Matrix<float> x = dlb_test::TestBatches(64, 1, 4)[0];
  CHECK(clone.GetMode() == dlb::Mode::Inference);
  CHECK(clone.Summary() == model.Summary());
  const Matrix<float> expected = model.Forward(x);
  CHECK(BitwiseEqual(clone.Forward(x), expected));
  clone.LayerAt<dlb::Linear<float>>(7).Weight().setZero();
  CHECK(BitwiseEqual(model.Forward(x), expected));
  CHECK_FALSE(BitwiseEqual(clone.Forward(x), expected));
  // A const model reads its layers through the const LayerAt.
  const dlb::ModelNN<float>& read_only = model;
  CHECK(read_only.LayerAt<dlb::Linear<float>>(7).Weight().isApprox(model.LayerAt<dlb::Linear<float>>("7").Weight()));
}

TEST_CASE("LoadedModel: const Predict from 8 threads, with the saved standardizer", "[inference]") {
  dlb_test::TempDir dir("dlb_test_inference_");
  dlb::ModelNN<float> model = dlb_test::InferenceTestModel(6);
  const std::vector<Matrix<float>> batches = dlb_test::TestBatches(64, 5, 6);
  dlb::Standardizer<float> standardizer;
  standardizer.Fit(batches[0]);
  const dlb::ModelNN<float>& const_model = model;
  dlb::Save(const_model, dir / "model.safetensors", &standardizer);  // Save takes a const model

  std::vector<Matrix<float>> expected;
  for (const Matrix<float>& x : batches) {
    Matrix<float> standardized = x;
    standardizer.Transform(standardized);
    expected.push_back(model.Forward(standardized));
  }
  const dlb::LoadedModel<float> loaded = dlb::LoadModel<float>(dir / "model.safetensors");
  CHECK(loaded.Model().Summary() == model.Summary());
  for (std::size_t b = 0; b < batches.size(); ++b) CHECK(BitwiseEqual(loaded.Predict(batches[b]), expected[b]));
  CHECK(dlb_test::CountConcurrentMismatches(8, 10, batches, expected,
                                            [&](const Matrix<float>& x) { return loaded.Predict(x); }) == 0);
  const dlb::LoadedModel<float> copy = loaded.Clone();
  CHECK(BitwiseEqual(copy.Predict(batches[2]), expected[2]));
  CHECK(copy.metadata == loaded.metadata);
  CHECK_THROWS_AS(loaded.Predict(Matrix<float>::Zero(10, 1)), dlb::ShapeError);
}

TEST_CASE("Softmax: columns of probabilities summing to 1, stable for large logits", "[probabilities]") {
  Matrix<float> z(3, 3);
  z << 0, 1000, 1,  //
      0, 0, 1,      //
      std::log(2.0f), -1000, 1;
  const Matrix<float> p = dlb::Softmax(z);
  CHECK(p(0, 0) == Approx(0.25));
  CHECK(p(1, 0) == Approx(0.25));
  CHECK(p(2, 0) == Approx(0.5));
  CHECK(p(0, 1) == 1.0f);  // exp(1000) would overflow without subtracting the maximum
  CHECK(p(1, 1) == 0.0f);
  for (dlb::Index i = 0; i < 3; ++i) CHECK(p(i, 2) == Approx(1.0 / 3));
  for (dlb::Index j = 0; j < 3; ++j) CHECK(p.col(j).sum() == Approx(1.0));
}

TEST_CASE("ArgMax and TopK: classes by probability, ties to the lower class", "[probabilities]") {
  Matrix<double> z(4, 3);
  z << 1, 5, 2,  //
      3, 5, 2,   //
      2, 0, 2,   //
      0, 1, 2;
  const dlb::Labels classes = dlb::ArgMax(z);
  CHECK(classes(0) == 1);
  CHECK(classes(1) == 0);  // a tie: the first maximum, as CountCorrect
  CHECK(classes(2) == 0);

  const std::vector<dlb::ClassProbability> top = dlb::TopK(z.col(0), 3);
  REQUIRE(top.size() == 3);
  CHECK(top[0].label == 1);
  CHECK(top[1].label == 2);
  CHECK(top[2].label == 0);
  const Matrix<double> p = dlb::Softmax(z);
  CHECK(top[0].probability == Approx(p(1, 0)));
  CHECK(top[2].probability == Approx(p(0, 0)));
  CHECK(top[0].probability > top[1].probability);
  const std::vector<dlb::ClassProbability> all = dlb::TopK(z.col(2), 10);  // k > classes
  REQUIRE(all.size() == 4);
  for (std::size_t i = 0; i < all.size(); ++i) {
    CHECK(all[i].label == static_cast<dlb::Label>(i));
    CHECK(all[i].probability == Approx(0.25));
  }
  CHECK_THROWS_AS(dlb::TopK(z.col(0), 0), dlb::ArgumentError);
  CHECK_THROWS_WITH(dlb::TopK(z, 1), Catch::Contains("one column"));
}

TEST_CASE("Probabilities: logits that are not finite are refused, naming the sample", "[probabilities]") {
  Matrix<float> z = Matrix<float>::Zero(3, 4);
  CHECK_NOTHROW(dlb::ArgMax(z));  // control: the same logits, finite
  z(1, 2) = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(dlb::ArgMax(z), Catch::Contains("logits of sample 2 are not finite"));
  CHECK_THROWS_WITH(dlb::Softmax(z), Catch::Contains("Softmax"));
  CHECK_THROWS_AS(dlb::TopK(z.col(2), 1), dlb::ArgumentError);
  z(1, 2) = std::numeric_limits<float>::infinity();
  CHECK_THROWS_AS(dlb::ArgMax(z), dlb::ArgumentError);
  CHECK_THROWS_AS(dlb::ArgMax(Matrix<float>(0, 2)), dlb::ArgumentError);
}
