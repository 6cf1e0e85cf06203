#pragma once
// The MPI job the distributed tests run in: tests/mpi/main.cpp creates the Communicator before
// Catch2 runs the tests and destroys it (finalizing MPI) after.

#include "dlb/distributed/communicator.hpp"

namespace dlb_test {

/// The job's communicator; valid while the tests run.
dlb::Communicator& World();

}  // namespace dlb_test
