// Catch2's main for the tests that run under mpirun: every rank runs every test case, so a
// test's collective calls match across ranks. Each rank reports its own failures and the job
// fails when any rank does.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <memory>

#include "world.hpp"

namespace {
std::unique_ptr<dlb::Communicator> world;
}

dlb::Communicator& dlb_test::World() { return *world; }

int main(int argc, char** argv) {
  world = std::make_unique<dlb::Communicator>();
  const int failed = Catch::Session().run(argc, argv);
  world.reset();
  return failed == 0 ? 0 : 1;
}
