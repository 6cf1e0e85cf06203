// Writes a model saved by `train_fashion_mnist --save FILE` (or a checkpoint, or any model
// file dlb::LoadModel reads) as an ONNX model (ONNX IR 8, opset 17) that ONNX Runtime and
// other ONNX tools run. The model's saved standardization is part of the graph, so the ONNX
// model takes the same raw inputs as predict_fashion_mnist (Fashion-MNIST: pixels in
// [0, 1], as [N, 1, 28, 28] for an image model or [N, 784] for an MLP) and gives its logits
// [N, classes]. A model saved in double is written in float32.
//
//   export_onnx --model FILE.safetensors --output FILE.onnx
//
// Prints the model and what the ONNX file holds: its input and output, nodes, initializers
// (named like the model's state_dict) and size.
// Exit codes: 0 written, 1 a bad model file or a model that cannot be written, 2 invalid flags.

#include <cstdio>
#include <exception>
#include <iostream>
#include <string>

#include <dlb/onnx/export_onnx.hpp>
#include <dlb/serialization.hpp>  // LoadModel

#include "common/experiment.hpp"

namespace {

struct Settings {
  std::string model;
  std::string output;
};

}  // namespace

int main(int argc, char** argv) {
  Settings settings;
  CLI::App app("Write a saved model (train_fashion_mnist --save) as an ONNX model (opset " +
                   std::to_string(dlb::kOnnxOpsetVersion) + ") with its standardization.",
               "export_onnx");
  app.add_option("--model", settings.model, "Model file (train_fashion_mnist --save or --checkpoint)")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--output", settings.output, "ONNX file to write (replaced atomically)")
      ->required()
      ->check(experiment::kOutputFile);
  if (auto code = experiment::Parse(app, argc, argv)) return *code;

  try {
    dlb::LoadedModel<float> loaded = dlb::LoadModel<float>(settings.model);
    std::cout << "Model " << settings.model << " (" << loaded.metadata["format"] << ", DLBlocks "
              << loaded.metadata["library_version"] << ", " << loaded.metadata["dtype"] << ")\n"
              << loaded.Model().Summary();

    dlb::OnnxExportOptions<float> options;
    options.standardizer = loaded.standardizer;
    const dlb::OnnxExport written = dlb::ExportOnnx(loaded.Model(), settings.output, options);

    std::cout << "\nWrote " << settings.output << ": ONNX IR " << dlb::kOnnxIrVersion << ", opset "
              << dlb::kOnnxOpsetVersion << ", " << written.nodes << " nodes, " << written.initializers
              << " initializers, " << written.bytes.size() << " bytes\n"
              << "  input  '" << written.input_name << "' float32 " << dlb::OnnxShapeText(written.input_shape)
              << (loaded.standardizer ? ": raw samples, standardized inside the graph (the saved statistics)"
                                      : ": the model's inputs as they are (no standardization saved)")
              << "\n  output '" << written.output_name << "' float32 "
              << dlb::OnnxShapeText(written.output_shape) << ": the model's outputs (logits)\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "export_onnx: error: " << e.what() << "\n";
    return 1;
  }
}
