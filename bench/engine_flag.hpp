#pragma once
// The --engine flag of the benchmark programs: which engine runs dlb::Gemm's products.
//   auto   the library's own choice (what every program gets; see dlb/core/blas_engine.hpp)
//   eigen  Eigen's kernels
//   blas   the BLAS the build links (an error in a build without one)

#include <CLI/CLI.hpp>

#include <string>

#include "dlb/core/blas_engine.hpp"

namespace bench {

/// Adds --engine to `app`, storing the choice in `engine` (default "auto").
inline void AddEngineFlag(CLI::App& app, std::string& engine) {
  app.add_option("--engine", engine,
                 "Engine of the products: auto (the library's choice), eigen, or blas")
      ->check(CLI::IsMember({"auto", "eigen", "blas"}))
      ->capture_default_str();
}

/// Applies an --engine value (dlb::SetGemmEngine; throws dlb::ArgumentError for "blas" in a
/// build without a BLAS).
inline void ApplyEngine(const std::string& engine) {
  if (engine == "eigen") dlb::SetGemmEngine(dlb::GemmEngine::Eigen);
  if (engine == "blas") dlb::SetGemmEngine(dlb::GemmEngine::Blas);
}

/// "eigen" or "blas": the engine the products run on now.
inline const char* ActiveEngineName() {
  return dlb::ActiveGemmEngine() == dlb::GemmEngine::Blas ? "blas" : "eigen";
}

/// "eigen" or "blas": the engine the library chooses by itself in this process.
inline const char* DefaultEngineName() {
  return dlb::internal::DetectedGemmEngine().engine == dlb::GemmEngine::Blas ? "blas" : "eigen";
}

/// Text as a JSON string literal (quotes and backslashes escaped, control characters dropped).
inline std::string JsonString(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) out += c;
  }
  return out + "\"";
}

/// JSON fields every benchmark adds to its "engine", starting with a comma: "default_engine"
/// and "default_engine_description" (the library's own choice here, whatever --engine
/// forced), "default_mixes_engines" (true where that choice runs convolutions' products on
/// Eigen's kernels beside a BLAS: then neither --engine eigen nor --engine blas is what a
/// program gets, and only --engine auto measures it) and "engine_description"
/// (dlb::GemmEngineDescription: the engine of this run).
inline std::string EngineJsonFields() {
  const dlb::GemmEngineChoice& detected = dlb::internal::DetectedGemmEngine();
  const bool mixes = detected.engine != dlb::GemmEngine::Eigen && detected.implicit_patches;
  return std::string(",\"default_engine\":\"") + DefaultEngineName() +
         "\",\"default_engine_description\":" + JsonString(detected.description) +
         ",\"default_mixes_engines\":" + (mixes ? "true" : "false") +
         ",\"engine_description\":" + JsonString(dlb::GemmEngineDescription());
}

}  // namespace bench
