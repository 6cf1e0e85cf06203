# Runs a program and checks its exit code and what it printed.
#   cmake -DPROGRAM=... -DARGS="a;b" -DEXPECT_CODE=2 -DEXPECT_REGEX=... [-DTIMEOUT=s] -P expect.cmake
# TIMEOUT (default 120 seconds) ends a program that runs longer, and fails the check;
# REJECT_REGEX, when given, must not match what it printed.
if(NOT DEFINED TIMEOUT)
  set(TIMEOUT 120)
endif()
execute_process(COMMAND ${PROGRAM} ${ARGS}
                RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT ${TIMEOUT})
if(NOT code STREQUAL "${EXPECT_CODE}")
  message(FATAL_ERROR "exit code ${code}, expected ${EXPECT_CODE}\nstdout:\n${out}\nstderr:\n${err}")
endif()
if(NOT "${out}${err}" MATCHES "${EXPECT_REGEX}")
  message(FATAL_ERROR "output does not match '${EXPECT_REGEX}'\nstdout:\n${out}\nstderr:\n${err}")
endif()
if(DEFINED REJECT_REGEX AND "${out}${err}" MATCHES "${REJECT_REGEX}")
  message(FATAL_ERROR "output matches '${REJECT_REGEX}', which it must not\nstdout:\n${out}\nstderr:\n${err}")
endif()
