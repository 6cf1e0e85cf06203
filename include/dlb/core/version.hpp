#pragma once
/// \file
/// The version of DLBlocks: the same as the CMake project's version (and the release tag
/// vMAJOR.MINOR.PATCH); written into every model file and ONNX model the library writes.

namespace dlb {

/// "MAJOR.MINOR.PATCH" of this DLBlocks.
inline constexpr const char* kLibraryVersion = "0.2.0";

/// The version of this DLBlocks ("0.2.0").
constexpr const char* Version() { return kLibraryVersion; }

}  // namespace dlb
