#pragma once
/// \file
/// DLBlocks umbrella header for data-parallel training over MPI (Communicator,
/// GradientAllReduce, SyncBatchNorm). Needs MPI's <mpi.h>: configure with -DDLB_MPI=ON and
/// link the CMake target dlb::mpi. Includes <dlb/dlb.hpp>.

#if !__has_include(<mpi.h>)
#error "<dlb/distributed.hpp> needs MPI's <mpi.h> (Debian: libopenmpi-dev); configure DLBlocks with -DDLB_MPI=ON and link the CMake target dlb::mpi"
#endif

#include "dlb/dlb.hpp"

#include "dlb/distributed/communicator.hpp"
#include "dlb/distributed/gradient_allreduce.hpp"
#include "dlb/distributed/sync_batch_norm.hpp"
