// A program whose Eigen is configured differently from dlb::compiled's (no static alignment):
// linking it to the library must fail, naming the configuration it wanted.
#include <dlb/dlb.hpp>

int main() { return dlb::NumThreads() > 0 ? 0 : 1; }
