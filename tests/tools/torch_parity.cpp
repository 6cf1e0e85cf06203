// The C++ half of the PyTorch parity tests of blocks (tests/python/torch_parity.py).
//
//   torch_parity write DIR   builds, in double, a residual block with a downsample shortcut
//                            (torchvision's BasicBlock: conv1 bn1 relu conv2 bn2 + downsample,
//                            then ReLU) and an identity one after it, and writes
//                              DIR/block.safetensors    the initial weights (a model file),
//                              DIR/inputs.safetensors   the batch x and the weights r of the
//                                                       objective sum(r * y),
//                              DIR/results.safetensors  y, dx and every parameter's gradient
//                                                       of the first step, and the state after
//                                                       5 Adam steps (lr 0.01) on the objective
//                            and, for the cross-entropy with label smoothing 0.15, logits and
//                            labels (inputs: loss.logits, loss.labels) with the loss and its
//                            gradient (results: loss.value, loss.dlogits)
//
// torch_parity.py computes the same with torch and compares (the issue asks for PyTorch's
// numbers to 1e-10 in double). The products run on the Eigen engine, so that the convolutions
// take the library's own kernels on patches read from the image (the strided conv1 and the
// 1x1 downsample on the input's phases) whatever engine this build would pick; test_conv
// checks the BLAS engine's explicit paths against them. Exit code 0 when written, 1 otherwise.

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <dlb/serialization.hpp>  // <dlb/dlb.hpp>, data files, model files and checkpoints

namespace {

using dlb::Index;
using dlb::Matrix;

/// A features x N batch as an N x C x H x W tensor (the memory of a column-major matrix).
dlb::Tensor AsTensor(const Matrix<double>& m, const dlb::Shape& sample) {
  return dlb::Tensor::FromValues(dlb::DType::F64, {m.cols(), sample.channels, sample.height, sample.width},
                                 std::vector<double>(m.data(), m.data() + m.size()));
}

int Write(const std::string& dir) {
  std::filesystem::create_directories(dir);
  const dlb::Shape input(3, 6, 6);
  dlb::ModelNN<double> model(input, 11);
  model.Add("block1", dlb::MakeBasicBlock<double>(3, 4, 2)).Add("block2", dlb::MakeBasicBlock<double>(4, 4, 1));
  // Batch norms with non-trivial affine parameters, so that their gradients matter.
  dlb::Generator gen(5);
  for (auto& p : model.Parameters()) {
    if (p.name.find("bn") != std::string::npos || p.name.find("downsample.1") != std::string::npos) {
      for (Index i = 0; i < p.value->size(); ++i) {
        p.value->data()[i] = 0.5 + dlb::SampleUniform<double>(gen);
      }
    }
  }
  dlb::Save(model, dir + "/block.safetensors");

  const Index batch = 4;
  Matrix<double> x(input.Size(), batch);
  for (Index i = 0; i < x.size(); ++i) x.data()[i] = 2 * dlb::SampleUniform<double>(gen) - 1;
  const dlb::Shape output = model.OutputShape();
  Matrix<double> r(output.Size(), batch);
  for (Index i = 0; i < r.size(); ++i) r.data()[i] = 2 * dlb::SampleUniform<double>(gen) - 1;
  dlb::StateDict inputs;
  inputs.Insert("x", AsTensor(x, input));
  inputs.Insert("r", AsTensor(r, output));

  dlb::StateDict results;
  dlb::Optimizer optimizer(model, dlb::Adam<double>(0.01));
  Matrix<double> dx;
  for (int step = 1; step <= 5; ++step) {
    const Matrix<double>& y = model.Forward(x);
    if (step == 1) results.Insert("y", AsTensor(y, output));
    model.Backward(r, &dx);  // d sum(r * y) / dy = r
    if (step == 1) {
      results.Insert("dx", AsTensor(dx, input));
      for (const auto& p : model.Parameters()) {
        results.Insert("grad." + p.name,
                       dlb::ToTensor(dlb::StateRef<double>{p.name, p.grad, dlb::StateKind::Parameter, p.shape}));
      }
    }
    optimizer.Step();
  }
  results.Merge(model.SaveState(), "after.");

  // The loss: 5 classes x 6 samples, one sample's logits at +-1000 (the stable path).
  const Index classes = 5, samples = 6;
  Matrix<double> logits(classes, samples);
  for (Index i = 0; i < logits.size(); ++i) logits.data()[i] = 8 * dlb::SampleUniform<double>(gen) - 4;
  logits.col(samples - 1) << 1000, -1000, 3, 999, 0;
  dlb::Labels labels(samples);
  labels << 0, 4, 2, 2, 1, 3;
  const dlb::CrossEntropyLoss<double> loss(dlb::CrossEntropyLossOptions().LabelSmoothing(0.15));
  Matrix<double> dlogits;
  const double value = loss.Compute(logits, labels, dlogits);
  const dlb::Shape row(1, 1, classes);  // a sample's logits: one row of N x K
  inputs.Insert("loss.logits", AsTensor(logits, row));
  inputs.Insert("loss.labels", AsTensor(labels.cast<double>().transpose(), dlb::Shape(1, 1, 1)));
  dlb::WriteSafetensors(dir + "/inputs.safetensors", inputs, {});
  results.Insert("loss.value", dlb::Tensor::FromValues(dlb::DType::F64, {1}, std::vector<double>{value}));
  results.Insert("loss.dlogits", AsTensor(dlogits, row));
  dlb::WriteSafetensors(dir + "/results.safetensors", results, {});
  std::printf("torch_parity: wrote %s (%zu result tensors)\n", dir.c_str(), results.Size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 || std::string(argv[1]) != "write") {
    std::fprintf(stderr, "usage: torch_parity write DIR\n");
    return 2;
  }
  try {
    dlb::SetGemmEngine(dlb::GemmEngine::Eigen);
    return Write(argv[2]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "torch_parity: FAILED: %s\n", e.what());
    return 1;
  }
}
