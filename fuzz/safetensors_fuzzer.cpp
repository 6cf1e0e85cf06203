// libFuzzer target for the model reader: dlb/io/safetensors.hpp and dlb/serialization/model_file.hpp.
//
// Each input is written to a file, read with ReadSafetensors, and rebuilt as a model with
// LoadModel<float> and LoadModel<double>. Rejection by a dlb::Error is the expected outcome
// for most inputs; a finding is anything else: a crash or sanitizer report, a leak, another
// exception (std::bad_alloc included), an allocation over the -malloc_limit_mb given by
// fuzz/run.sh, or one of the checks below failing.
//
// Checks beyond "no crash":
//  * a rejection's message is printable (dlb::EscapeForTerminal leaves it as it is): text
//    from the file in it is escaped, so printing it cannot forge output or drive a terminal;
//  * an accepted file's tensors hold exactly the bytes their dtype and shape need, and
//    their data sizes add up to the data section (no gap, no overlap);
//  * round trip: writing the accepted tensors and metadata and reading them back gives the
//    same tensors and metadata;
//  * a model LoadModel accepts predicts finite-sized logits of OutputSize() rows for a
//    sample (when the sample is small enough to build).

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/printable.hpp"
#include "dlb/serialization/model_file.hpp"
#include "dlb/io/safetensors.hpp"
#include "scratch_files.hpp"

namespace {

using fuzz::Finding;

void CheckAccepted(const dlb::Safetensors& file, std::size_t size) {
  std::uint64_t data_bytes = 0;
  for (const auto& [name, tensor] : file.tensors.Entries()) {
    std::uint64_t elements = 1;
    for (std::int64_t extent : tensor.shape) {
      if (extent < 0) Finding("accepted a negative extent in '" + name + "'");
      elements *= static_cast<std::uint64_t>(extent);
    }
    if (tensor.data.size() != elements * dlb::DTypeSize(tensor.dtype)) {
      Finding("accepted tensor '" + name + "' whose bytes do not match its shape");
    }
    data_bytes += tensor.data.size();
  }
  if (data_bytes > size) Finding("accepted more tensor bytes than the file has");

  static const std::string again = fuzz::ScratchPath("again");
  dlb::WriteSafetensors(again, file.tensors, file.metadata);
  const dlb::Safetensors reread = dlb::ReadSafetensors(again);
  if (reread.metadata != file.metadata) Finding("metadata changed in a round trip");
  if (reread.tensors.Size() != file.tensors.Size()) Finding("tensor count changed in a round trip");
  for (std::size_t i = 0; i < reread.tensors.Size(); ++i) {
    const auto& [name, tensor] = file.tensors.Entries()[i];
    const auto& [name2, tensor2] = reread.tensors.Entries()[i];
    if (name != name2 || tensor.dtype != tensor2.dtype || tensor.shape != tensor2.shape ||
        tensor.data != tensor2.data) {
      Finding("tensor '" + name + "' changed in a round trip");
    }
  }
}

template <dlb::Scalar T>
void TryModel(const std::string& path) {
  try {
    dlb::LoadedModel<T> loaded = dlb::LoadModel<T>(path);
    if (loaded.Model().InputSize() > 4096) return;  // building the sample would be the cost
    const dlb::Matrix<T> sample = dlb::Matrix<T>::Constant(loaded.Model().InputSize(), 1, T(0.5));
    if (loaded.Model().NumLayers() == 0) return;
    const dlb::Matrix<T>& logits = loaded.Predict(sample);
    if (logits.rows() != loaded.Model().OutputSize() || logits.cols() != 1) {
      Finding("a loaded model's logits have the wrong shape");
    }
  } catch (const dlb::FileError& error) {
    if (error.Path() != path) Finding("FileError names the wrong path: " + error.Path());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::FuzzerName() = "safetensors_fuzzer";
  static const std::string path = fuzz::ScratchPath("input");
  fuzz::WriteFile(path, data, size);
  try {
    const dlb::Safetensors file = dlb::ReadSafetensors(path);
    CheckAccepted(file, size);
  } catch (const dlb::FileError& error) {
    if (error.Path() != path) Finding("FileError names the wrong path: " + error.Path());
    const std::string message = error.what();
    if (dlb::EscapeForTerminal(message) != message) {
      Finding("a FileError message holds characters that are not printable: " +
              dlb::EscapeForTerminal(message));
    }
    return 0;
  }
  TryModel<float>(path);
  TryModel<double>(path);
  return 0;
}
