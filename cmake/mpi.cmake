# Optional data-parallel training over MPI (include/dlb/distributed/). Off by default: the
# rest of the library never needs MPI. On, it defines dlb::mpi = dlb::dlb + MPI::MPI_CXX and
# DLB_HAVE_MPI=1 (Debian: libopenmpi-dev, and openmpi-bin for mpirun).
option(DLB_MPI "Build the MPI data-parallel part (target dlb::mpi; needs libopenmpi-dev)" OFF)
set(DLB_CONFIG_MPI ${DLB_MPI})  # for dlbConfig.cmake: installed users find MPI too
if(DLB_MPI)
  find_package(MPI REQUIRED COMPONENTS CXX)
  add_library(dlb_mpi INTERFACE)
  add_library(dlb::mpi ALIAS dlb_mpi)
  set_target_properties(dlb_mpi PROPERTIES EXPORT_NAME mpi)
  target_link_libraries(dlb_mpi INTERFACE dlb MPI::MPI_CXX)
  target_compile_definitions(dlb_mpi INTERFACE DLB_HAVE_MPI=1)
  # How the tests start 2 ranks: as root in CI containers with fewer cores than ranks,
  # Open MPI needs to be told that this is fine.
  set(DLB_MPIRUN ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 ${MPIEXEC_PREFLAGS})
  execute_process(COMMAND ${MPIEXEC_EXECUTABLE} --version OUTPUT_VARIABLE dlb_mpiexec_version
                  ERROR_QUIET)
  if(dlb_mpiexec_version MATCHES "Open MPI|OpenRTE")
    list(APPEND DLB_MPIRUN --allow-run-as-root --oversubscribe)
  endif()
  # Under the sanitizers, LeakSanitizer must tell Open MPI's own leftovers (suppressed) from
  # ours: full stack unwinding, and MPI's components kept loaded so their frames have names.
  set(DLB_MPI_TEST_ENVIRONMENT "")
  if(DLB_SANITIZE)
    set(DLB_MPI_TEST_ENVIRONMENT
      "ASAN_OPTIONS=fast_unwind_on_malloc=0"
      "LSAN_OPTIONS=suppressions=${PROJECT_SOURCE_DIR}/tests/mpi/lsan.supp"
      "OMPI_MCA_mca_base_component_disable_dlclose=1")
  endif()
  if(DLB_INSTALL)
    install(TARGETS dlb_mpi EXPORT dlbTargets)
  endif()
endif()
