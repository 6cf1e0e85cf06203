# Lists the headers a translation unit includes (the compiler's -M) and checks whether any
# matches FORBIDDEN.
#   cmake -DCXX=g++ -DFLAGS="-std=c++20;-I..." -DSOURCE=x.cpp -DFORBIDDEN=regex
#         -DEXPECT=absent|present -P check_includes.cmake
execute_process(COMMAND ${CXX} ${FLAGS} -M ${SOURCE}
                RESULT_VARIABLE code OUTPUT_VARIABLE deps ERROR_VARIABLE err)
if(NOT code EQUAL 0)
  message(FATAL_ERROR "${CXX} -M ${SOURCE} failed (${code}):\n${err}")
endif()
string(REGEX REPLACE "[ \\\\\n]+" ";" deps "${deps}")
set(matches "")
foreach(dep IN LISTS deps)
  if(dep MATCHES "${FORBIDDEN}")
    list(APPEND matches "${dep}")
  endif()
endforeach()
list(LENGTH deps count)
list(LENGTH matches found)
if(EXPECT STREQUAL "absent" AND found GREATER 0)
  list(JOIN matches "\n  " shown)
  message(FATAL_ERROR "${SOURCE} includes ${found} headers matching '${FORBIDDEN}':\n  ${shown}")
elseif(EXPECT STREQUAL "present" AND found EQUAL 0)
  message(FATAL_ERROR "${SOURCE}: none of its ${count} headers matches '${FORBIDDEN}': the check sees nothing")
endif()
message(STATUS "${SOURCE}: ${count} headers, ${found} matching '${FORBIDDEN}' (expected ${EXPECT})")
