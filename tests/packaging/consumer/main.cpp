// A program of another project that uses DLBlocks: trains a tiny model for a few steps and
// checks the loss went down; linked to dlb::compiled (run_documented.py's way "compiled"),
// it also calls a file primitive that only the compiled part defines for it.
#include <dlb/core/blas_engine.hpp>
#include <dlb/dlb.hpp>
#ifdef DLB_COMPILED
#include <dlb/io.hpp>  // dlb::compiled links dlb::io
#endif

#include <cstdio>

int main() {
  dlb::Generator gen(7);
  dlb::Matrix<float> x(4, 64);
  dlb::Labels y(64);
  for (dlb::Index j = 0; j < x.cols(); ++j) {
    y(j) = static_cast<dlb::Label>(j % 2);
    for (dlb::Index i = 0; i < x.rows(); ++i) {
      x(i, j) = dlb::SampleNormal<float>(gen) + (y(j) == 1 ? 2.0f : -2.0f);
    }
  }
  dlb::ModelNN<float> model(/*input_shape=*/4, /*seed=*/1);
  model.Add(dlb::Linear<float>(4, 8)).Add(dlb::ReLU<float>()).Add(dlb::Linear<float>(8, 2));
  dlb::Optimizer optimizer(model, dlb::Adam<float>(1e-2f));
  dlb::CrossEntropyLoss<float> loss;
  dlb::Matrix<float> dlogits;
  float first = 0, last = 0;
  for (int step = 0; step < 50; ++step) {
    last = loss.Compute(model.Forward(x), y, dlogits);
    if (step == 0) first = last;
    model.Backward(dlogits);
    optimizer.Step();
  }
  std::printf("consumer: loss %.4f -> %.4f, products by %s\n", first, last,
              dlb::GemmEngineDescription().c_str());
  bool files_ok = true;
#ifdef DLB_COMPILED
  // With the compiled part the file primitives are declarations here and definitions in the
  // library (dlb/core/linkage.hpp): this links and runs only if the library provides them.
  files_ok = dlb::SameFile("consumer_check.txt", "./consumer_check.txt");
  std::printf("consumer: built with dlb::compiled, SameFile through the library: %s\n",
              files_ok ? "yes" : "no");
#endif
  return last < first && files_ok ? 0 : 1;
}
