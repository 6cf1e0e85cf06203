#pragma once
// The outside tools the ONNX tests run: ONNX's checker (tests/onnx/check_onnx_model.py, in
// a python3 with the onnx module) and ONNX Runtime for the web under Node.js
// (tests/onnx/run_onnxruntime.js), found through compile definitions that
// tests/onnx/CMakeLists.txt sets:
//   DLB_ONNX_PYTHON          python3 that imports onnx, or "" when there is none
//   DLB_NODE                 node, or "" when there is none
//   DLB_ONNXRUNTIME_PREFIX   where the CTest setup installs onnxruntime-web with npm
//   DLB_ONNX_TOOLS_DIR       tests/onnx in the source tree
// Also the "tensor list" files run_onnxruntime.js reads and writes, and a comparison of
// tensors that says where they differ.

#include <sys/wait.h>

#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace dlb_test {

#ifndef DLB_ONNX_TOOLS_DIR
#error "DLB_ONNX_TOOLS_DIR, DLB_ONNX_PYTHON, DLB_NODE and DLB_ONNXRUNTIME_PREFIX come from tests/onnx/CMakeLists.txt"
#endif

inline const std::string kOnnxPython = DLB_ONNX_PYTHON;
inline const std::string kNode = DLB_NODE;
inline const std::string kOnnxRuntimePrefix = DLB_ONNXRUNTIME_PREFIX;
inline const std::string kOnnxToolsDir = DLB_ONNX_TOOLS_DIR;

/// Whether ONNX's checker can run here (python3 with the onnx module was found).
inline bool HaveOnnxChecker() { return !kOnnxPython.empty(); }

/// Whether ONNX Runtime can run here: node was found and the CTest setup installed the package.
inline bool HaveOnnxRuntime() {
  return !kNode.empty() &&
         std::filesystem::exists(kOnnxRuntimePrefix + "/node_modules/onnxruntime-web/dist/ort.node.min.js");
}

/// `text` quoted for /bin/sh.
inline std::string ShellQuote(const std::string& text) {
  std::string quoted = "'";
  for (const char c : text) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  return quoted + "'";
}

struct CommandResult {
  int exit_code = -1;  // the exit status, or -1 when the command did not exit normally
  std::string output;  // stdout and stderr together
};

/// Runs `args` (program first) through /bin/sh and returns its exit status and output.
inline CommandResult RunCommand(const std::vector<std::string>& args) {
  std::string command;
  for (const std::string& arg : args) command += ShellQuote(arg) + " ";
  command += "2>&1";
  CommandResult result;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("popen failed: " + command);
  char buffer[4096];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) result.output.append(buffer, n);
  const int status = ::pclose(pipe);
  if (status != -1 && WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  return result;
}

/// ONNX's checker (full_check: strict shape inference) on one model file.
inline CommandResult RunOnnxChecker(const std::string& model_path) {
  return RunCommand({kOnnxPython, "-B", kOnnxToolsDir + "/check_onnx_model.py", model_path});
}

/// A named float32 tensor, row-major.
struct NamedTensor {
  std::string name;
  std::vector<std::int64_t> dims;
  std::vector<float> data;
};

/// Writes a tensor list file (the format is described in tests/onnx/run_onnxruntime.js).
inline void WriteTensorList(const std::string& path, const std::vector<NamedTensor>& tensors) {
  std::string bytes = "DLBTENS1";
  const auto put = [&bytes](std::uint64_t value, int size) {
    for (int i = 0; i < size; ++i) bytes.push_back(static_cast<char>(value >> (8 * i)));
  };
  put(tensors.size(), 4);
  for (const NamedTensor& tensor : tensors) {
    put(tensor.name.size(), 4);
    bytes += tensor.name;
    put(tensor.dims.size(), 4);
    for (const std::int64_t dim : tensor.dims) put(static_cast<std::uint64_t>(dim), 8);
    for (const float value : tensor.data) put(std::bit_cast<std::uint32_t>(value), 4);
  }
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

/// Reads a tensor list file. Throws std::runtime_error when it is malformed.
inline std::vector<NamedTensor> ReadTensorList(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::size_t pos = 0;
  const auto get = [&](int size) {
    if (bytes.size() - pos < static_cast<std::size_t>(size)) {
      throw std::runtime_error(path + ": truncated tensor list");
    }
    std::uint64_t value = 0;
    for (int i = 0; i < size; ++i) {
      value |= std::uint64_t{static_cast<unsigned char>(bytes[pos++])} << (8 * i);
    }
    return value;
  };
  if (bytes.compare(0, 8, "DLBTENS1") != 0) throw std::runtime_error(path + ": not a tensor list");
  pos = 8;
  std::vector<NamedTensor> tensors(get(4));
  for (NamedTensor& tensor : tensors) {
    const std::size_t length = get(4);
    if (bytes.size() - pos < length) throw std::runtime_error(path + ": truncated name");
    tensor.name = bytes.substr(pos, length);
    pos += length;
    tensor.dims.resize(get(4));
    std::size_t count = 1;
    for (std::int64_t& dim : tensor.dims) {
      dim = static_cast<std::int64_t>(get(8));
      if (dim < 0 || dim > (1 << 24)) throw std::runtime_error(path + ": bad dimension");
      count *= static_cast<std::size_t>(dim);
    }
    if ((bytes.size() - pos) / 4 < count) throw std::runtime_error(path + ": truncated data");
    tensor.data.resize(count);
    for (float& value : tensor.data) value = std::bit_cast<float>(static_cast<std::uint32_t>(get(4)));
  }
  if (pos != bytes.size()) throw std::runtime_error(path + ": bytes after the last tensor");
  return tensors;
}

/// "" when `actual` matches `expected` (same name and dims, every value within
/// tolerance * max(1, |expected|)); otherwise what differs, with the first few differences.
inline std::string TensorMismatch(const NamedTensor& actual, const NamedTensor& expected,
                                  double tolerance) {
  std::ostringstream out;
  if (actual.name != expected.name) {
    out << "name '" << actual.name << "', expected '" << expected.name << "'";
    return out.str();
  }
  const auto dims_text = [](const std::vector<std::int64_t>& dims) {
    std::string text = "[";
    for (std::size_t i = 0; i < dims.size(); ++i) text += (i ? ", " : "") + std::to_string(dims[i]);
    return text + "]";
  };
  if (actual.dims != expected.dims || actual.data.size() != expected.data.size()) {
    out << "'" << actual.name << "': dims " << dims_text(actual.dims) << ", expected "
        << dims_text(expected.dims);
    return out.str();
  }
  int differences = 0;
  out.precision(9);
  for (std::size_t i = 0; i < actual.data.size(); ++i) {
    const double a = actual.data[i];
    const double e = expected.data[i];
    if (!(std::abs(a - e) <= tolerance * std::max(1.0, std::abs(e)))) {
      if (++differences <= 5) {
        out << (differences > 1 ? "; " : "") << "'" << actual.name << "'[" << i << "] = " << a
            << ", expected " << e;
      }
    }
  }
  if (differences > 5) out << "; ... " << differences << " values differ in all";
  return out.str();
}

}  // namespace dlb_test
