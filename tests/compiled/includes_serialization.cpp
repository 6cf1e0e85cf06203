// The include check's negative control: the umbrella of model files includes JSON, zlib
// and the file code.
#include <dlb/serialization.hpp>
