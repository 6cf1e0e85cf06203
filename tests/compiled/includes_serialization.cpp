// The include checks of tests/compiled: the umbrella of model files. Header-only it includes
// JSON, zlib and the file code (the control of the check of <dlb/dlb.hpp>); with
// DLB_COMPILED_SERIALIZATION it includes no JSON and no definitions file.
#include <dlb/serialization.hpp>
