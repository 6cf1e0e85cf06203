// The compiled part of DLBlocks for model files and checkpoints (built when nlohmann-json is
// found; dlb::compiled then defines DLB_COMPILED_SERIALIZATION, under which their headers
// declare these extern): Save, LoadModel, LoadWeights, SaveCheckpoint, RestoreCheckpoint and
// CheckpointCallback for float and double, with the JSON and safetensors code they call: the
// one definition of the functions and templates that their headers keep in impl/*.ipp files
// (dlb/core/linkage.hpp), which programs linking dlb::compiled do not read.
#define DLB_COMPILED_DEFINITIONS
#define DLB_COMPILED_SERIALIZATION_FUNCTIONS
#include "dlb/serialization.hpp"

namespace dlb {
DLB_COMPILED_MODEL_FILE(, float)
DLB_COMPILED_MODEL_FILE(, double)
DLB_COMPILED_CHECKPOINT(, float)
DLB_COMPILED_CHECKPOINT(, double)
}  // namespace dlb
