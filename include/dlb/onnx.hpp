#pragma once
/// \file
/// DLBlocks umbrella header for ONNX export (ExportOnnx; no dependency beyond dlb::dlb).
/// Includes <dlb/dlb.hpp>.

#include "dlb/dlb.hpp"

#include "dlb/onnx/export_onnx.hpp"
