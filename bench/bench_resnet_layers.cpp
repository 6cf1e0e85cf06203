// Where a ResNet training step goes, layer by layer: every distinct layer of
// train_fashion_mnist --model resnet (dlb::MakeResNet) timed alone, forward and backward, at
// its input shape, times the number of such layers in the network. The sum against the epoch's
// time per batch (bench_cnn_epoch --model resnet) tells what lies between the layers
// (residual additions, pooling, the loss, the optimizer's step, caches cooled by the layers
// before); the convolutions' GFLOP/s against the products' ceiling (dlb_gemm_ceiling) tell
// what lies inside them.
//
// Each layer runs on random input and output gradient; the time of a pass is the fastest of
// --rounds (after one untimed pass), so a layer's inputs are warm in cache as they are not in
// an epoch: the table is a lower bound per layer, not a profile of the epoch.
//
// Usage: dlb_bench_resnet_layers [--threads 2] [--batch 128] [--rounds 8] [--engine auto]

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include <dlb/dlb.hpp>

#include "engine_flag.hpp"

namespace {

using dlb::Index;
using dlb::Shape;

struct Totals {
  double seconds = 0;  // per batch, every layer of the network
  double conv_seconds = 0;
};

/// Times `layer` at `input` (batch columns) and prints one row: `count` layers of the network
/// have this shape. `flops`: multiply-adds x 2 of one forward pass per sample (0: not a product).
/// `first`: the model's first layer, whose backward computes no input gradient.
template <class L>
void TimeLayer(const std::string& name, L layer, const Shape& input, int count, double flops,
               Index batch, int rounds, Totals& totals, bool first = false) {
  layer.SetInputShape(input);
  const dlb::Matrix<float> x = dlb::Matrix<float>::Random(input.Size(), batch);
  dlb::Matrix<float> y, dx;
  layer.Forward(x, y, dlb::Mode::Train);
  const dlb::Matrix<float> dy = dlb::Matrix<float>::Random(y.rows(), y.cols());
  dlb::Matrix<float>* const input_gradient = first ? nullptr : &dx;
  layer.Backward(x, y, dy, input_gradient);
  double forward = 1e30, backward = 1e30;
  for (int round = 0; round < rounds; ++round) {
    const auto t0 = std::chrono::steady_clock::now();
    layer.Forward(x, y, dlb::Mode::Train);
    const auto t1 = std::chrono::steady_clock::now();
    layer.Backward(x, y, dy, input_gradient);
    const auto t2 = std::chrono::steady_clock::now();
    forward = std::min(forward, std::chrono::duration<double>(t1 - t0).count());
    backward = std::min(backward, std::chrono::duration<double>(t2 - t1).count());
  }
  const double all = count * (forward + backward);
  totals.seconds += all;
  char rate[48] = "";
  if (flops > 0) {
    totals.conv_seconds += all;
    // Backward: dW and (but for the first layer) dX, each as many multiply-adds as forward.
    std::snprintf(rate, sizeof rate, "%6.0f %6.0f", flops * batch / forward / 1e9,
                  (first ? 1 : 2) * flops * batch / backward / 1e9);
  }
  std::printf("%-36s %3d %9.2f %9.2f %9.2f  %s\n", name.c_str(), count, forward * 1e3,
              backward * 1e3, all * 1e3, rate);
}

dlb::Conv2D<float> Conv(Index in, Index out, Index kernel, Index stride) {
  return dlb::Conv2D<float>(
      dlb::Conv2DOptions(in, out, kernel).Stride(stride).Padding(kernel / 2).Bias(false));
}

dlb::BatchNorm2D<float> BatchNormRelu(Index channels) {
  dlb::BatchNorm2D<float> layer(channels);
  layer.FuseActivation(dlb::Activation::ReLU);  // as ModelNN fuses bn1 and the stem's
  return layer;
}

/// 2 x multiply-adds per sample of a k x k convolution from `in` channels to an output of
/// out x side x side.
double ConvFlops(Index in, Index out, Index kernel, Index side) {
  return 2.0 * static_cast<double>(in * kernel * kernel * out * side * side);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Time each distinct layer of the Fashion-MNIST ResNet (train_fashion_mnist --model resnet) alone."};
  int threads = 2, rounds = 8;
  Index batch = 128;
  std::string engine = "auto";
  app.add_option("--threads", threads, "Threads")->check(CLI::Range(1, 1024))->capture_default_str();
  app.add_option("--batch", batch, "Samples per batch")->check(CLI::Range(1, 1 << 16))->capture_default_str();
  app.add_option("--rounds", rounds, "Timed passes per layer (the fastest is kept)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  bench::AddEngineFlag(app, engine);
  CLI11_PARSE(app, argc, argv);
  dlb::SetNumThreads(threads);
  bench::ApplyEngine(engine);

  std::printf("ResNet layers alone: threads=%d batch=%lld, fastest of %d passes; products: %s\n",
              threads, static_cast<long long>(batch), rounds, dlb::GemmEngineDescription().c_str());
  std::printf("%-36s %3s %9s %9s %9s  %s\n", "layer (input)", "n", "fwd ms", "bwd ms",
              "n x ms", "GFLOP/s fwd bwd");
  Totals totals;
  // The network of dlb::MakeResNet: stem conv + bn + relu; stages of two BasicBlocks at 16,
  // 32, 64 channels (conv3x3-bn-relu-conv3x3-bn, + shortcut, relu); the first block of
  // stages 2 and 3 strided, with a 1x1 strided conv + bn shortcut.
  // One stage: `blocks` BasicBlocks at `out` channels from `in`, on planes of `side` after the
  // stage (the first block strided when `side` halves), as the table's rows.
  struct Stage {
    Index in, out, side;
  };
  const Stage stages[] = {{16, 16, 28}, {16, 32, 14}, {32, 64, 7}};
  const Shape image(1, 28, 28);
  TimeLayer("conv 1->16 3x3 (" + image.ToString() + ")", Conv(1, 16, 3, 1), image, 1,
            ConvFlops(1, 16, 3, 28), batch, rounds, totals, /*first=*/true);
  for (const Stage& stage : stages) {
    const bool strided = stage.in != stage.out;
    const Index in_side = strided ? 2 * stage.side : stage.side;
    const Shape input(stage.in, in_side, in_side), output(stage.out, stage.side, stage.side);
    const std::string in_text = " (" + input.ToString() + ")";
    const std::string out_text = " (" + output.ToString() + ")";
    const std::string same = "conv " + std::to_string(stage.out) + "->" + std::to_string(stage.out);
    if (strided) {
      const std::string to = "conv " + std::to_string(stage.in) + "->" + std::to_string(stage.out);
      TimeLayer(to + " 3x3 s2" + in_text, Conv(stage.in, stage.out, 3, 2), input, 1,
                ConvFlops(stage.in, stage.out, 3, stage.side), batch, rounds, totals);
      TimeLayer(to + " 1x1 s2" + in_text, Conv(stage.in, stage.out, 1, 2), input, 1,
                ConvFlops(stage.in, stage.out, 1, stage.side), batch, rounds, totals);
    }
    // 2 blocks x 2 convolutions, less the strided one; bn1 of each block fused with its ReLU
    // (and the stem's batch norm in the first stage); bn2 of each block and the shortcut's.
    TimeLayer(same + " 3x3" + out_text, Conv(stage.out, stage.out, 3, 1), output,
              strided ? 3 : 4, ConvFlops(stage.out, stage.out, 3, stage.side), batch, rounds,
              totals);
    TimeLayer("bn+relu" + out_text, BatchNormRelu(stage.out), output, strided ? 2 : 3, 0, batch,
              rounds, totals);
    TimeLayer("bn" + out_text, dlb::BatchNorm2D<float>(stage.out), output, strided ? 3 : 2, 0,
              batch, rounds, totals);
  }
  std::printf("every layer above: %.1f ms per batch, convolutions %.1f ms (%.0f%%)\n",
              totals.seconds * 1e3, totals.conv_seconds * 1e3,
              100 * totals.conv_seconds / totals.seconds);
  return 0;
}
