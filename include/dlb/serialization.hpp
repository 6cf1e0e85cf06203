#pragma once
/// \file
/// DLBlocks umbrella header for model files (SaveModel, LoadModel, LoadWeights), checkpoints
/// (SaveCheckpoint, RestoreCheckpoint) and safetensors. Needs nlohmann-json (Debian
/// nlohmann-json3-dev) and zlib: link the CMake target dlb::serialization. Includes
/// <dlb/io.hpp> and <dlb/dlb.hpp>.

#if !__has_include(<nlohmann/json.hpp>)
#error "<dlb/serialization.hpp> needs nlohmann-json's <nlohmann/json.hpp> (Debian: nlohmann-json3-dev); link the CMake target dlb::serialization"
#endif

#include "dlb/io.hpp"

#include "dlb/io/safetensors.hpp"
#include "dlb/serialization/checkpoint.hpp"
#include "dlb/serialization/model_file.hpp"
