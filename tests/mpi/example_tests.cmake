# The example trainer's --distributed. Included by examples/CMakeLists.txt, which defines
# `expect`, `fake_dir` and the fake_data fixture.
if(DLB_MPI)
  set(distributed_args --data ${fake_dir} --epochs 2 --batch 32 --hidden 32,16 --threads 1)
  add_test(NAME "train_fashion_mnist mpi: 2 ranks print the table of one process"
    COMMAND ${CMAKE_COMMAND} "-DMPIRUN=${DLB_MPIRUN}" "-DPROGRAM=$<TARGET_FILE:train_fashion_mnist>"
            "-DARGS=${distributed_args}" -P ${CMAKE_CURRENT_LIST_DIR}/same_as_one_process.cmake)
  # Printed once (no other line starts with "rank" or "tr").
  add_test(NAME "train_fashion_mnist mpi: batch not divisible by the ranks"
    COMMAND ${CMAKE_COMMAND} "-DPROGRAM=${DLB_MPIRUN};$<TARGET_FILE:train_fashion_mnist>"
            "-DARGS=--distributed;--data;${fake_dir};--batch;33;--epochs;1;--threads;1"
            -DEXPECT_CODE=1
            "-DEXPECT_REGEX=^train_fashion_mnist: error: --batch 33 with 2 ranks: DataSet::SetShard: the global batch of 33 samples does not split into 2 equal shards[^\n]*\n((([^rt\n]|t[^r\n])[^\n]*)?\n)*$"
            -P ${expect})
  set_tests_properties("train_fashion_mnist mpi: 2 ranks print the table of one process"
    "train_fashion_mnist mpi: batch not divisible by the ranks"
    PROPERTIES FIXTURES_REQUIRED fake_data TIMEOUT 120 PROCESSORS 2)
  if(DLB_MPI_TEST_ENVIRONMENT)
    set_tests_properties("train_fashion_mnist mpi: 2 ranks print the table of one process"
      "train_fashion_mnist mpi: batch not divisible by the ranks"
      PROPERTIES ENVIRONMENT "${DLB_MPI_TEST_ENVIRONMENT}")
  endif()

  # The README's first MPI command (issue 15 item 12), as written, on the stand-in data: it
  # configures its own build with tests off (DLB_BUILD_DIR, here inside this build), builds
  # the trainer there, and starts 2 ranks through mpirun. DLB_DATA_DIR points it at the fake
  # data set instead of the real one; a few flags keep the run short. Slow: a Release build.
  add_test(NAME "scripts/train: DLB_RANKS=2 scripts/train --distributed, as the README runs it"
    COMMAND ${CMAKE_COMMAND} -DPROGRAM=${CMAKE_COMMAND}
            "-DARGS=-E;env;DLB_RANKS=2;DLB_BUILD_DIR=${PROJECT_BINARY_DIR}/scripts-train;DLB_DATA_DIR=${fake_dir};${PROJECT_SOURCE_DIR}/scripts/train;--distributed;--epochs;1;--batch;32;--hidden;32;--threads;1"
            -DEXPECT_CODE=0 -DTIMEOUT=3000
            "-DEXPECT_REGEX=Data parallel: 2 rank[(]s[)] x 16 samples of each batch of 32.*Epoch    1 / 1: .*Test accuracy"
            -P ${expect})
  set_tests_properties("scripts/train: DLB_RANKS=2 scripts/train --distributed, as the README runs it"
    PROPERTIES FIXTURES_REQUIRED fake_data TIMEOUT 3100 PROCESSORS 2)
else()
  add_test(NAME "train_fashion_mnist cli: --distributed without MPI"
    COMMAND ${CMAKE_COMMAND} "-DPROGRAM=$<TARGET_FILE:train_fashion_mnist>"
            "-DARGS=--distributed" -DEXPECT_CODE=2
            "-DEXPECT_REGEX=--distributed: this build has no MPI: configure with -DDLB_MPI=ON"
            -P ${expect})
endif()
