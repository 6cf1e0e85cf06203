#!/bin/sh
# Starts one rank of an MPI job with flags of its own, so that a test can give the ranks of
# one mpirun different flags: runs PROGRAM ARGS, then RANK0_FLAGS on rank 0 or RANK1_FLAGS
# on rank 1 (each split into words; "-" for none, as CMake drops empty arguments).
#   mpirun -np 2 rank_flags.sh "--epochs 1" "--epochs 3" PROGRAM ARGS...
rank0_flags=$1
rank1_flags=$2
shift 2
[ "$rank0_flags" = "-" ] && rank0_flags=
[ "$rank1_flags" = "-" ] && rank1_flags=
case "${OMPI_COMM_WORLD_RANK:-${PMIX_RANK:-${PMI_RANK:-0}}}" in
  1) extra=$rank1_flags ;;
  *) extra=$rank0_flags ;;
esac
# The flags are meant to be split into words; exec, so that mpirun is the rank's parent.
# shellcheck disable=SC2086
exec "$@" $extra
