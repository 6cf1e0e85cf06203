# Checks that one release has one version everywhere:
#   VERSION (CMake's project version) == dlb::kLibraryVersion in HEADER (what dlb::Version()
#   returns and model files record) == the version of CHANGELOG's top release entry
#   ("## [X.Y.Z]", below an "## [Unreleased]" section if there is one),
#   and, when SOURCE_DIR is a git checkout whose HEAD carries a release tag vX.Y.Z, that tag
#   is annotated and names the same version.
# cmake -DVERSION=0.2.0 -DHEADER=.../version.hpp -DCHANGELOG=.../CHANGELOG.md
#       [-DSOURCE_DIR=...] -P check_version.cmake

# Today's policies (CMP0054: a quoted "tag" is text, not the loop variable tag).
cmake_minimum_required(VERSION 3.21)
foreach(var VERSION HEADER CHANGELOG)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_version.cmake: -D${var}=... is required")
  endif()
endforeach()

file(READ "${HEADER}" header)
if(NOT header MATCHES "kLibraryVersion = \"([0-9]+\\.[0-9]+\\.[0-9]+)\"")
  message(FATAL_ERROR "${HEADER}: no kLibraryVersion = \"X.Y.Z\"")
endif()
set(header_version "${CMAKE_MATCH_1}")
if(NOT header_version STREQUAL VERSION)
  message(FATAL_ERROR "${HEADER} says ${header_version}, CMake's project() says ${VERSION}")
endif()

file(STRINGS "${CHANGELOG}" entries REGEX "^## ")
# "## [Unreleased]" (Keep a Changelog's heading for the changes since the last release) may
# come first; the top release entry is the one that must agree.
list(FILTER entries EXCLUDE REGEX "^## \\[Unreleased\\]")
list(LENGTH entries count)
if(count EQUAL 0)
  message(FATAL_ERROR "${CHANGELOG}: no entry (a line starting with '## [X.Y.Z]')")
endif()
list(GET entries 0 top)
if(NOT top MATCHES "^## \\[([0-9]+\\.[0-9]+\\.[0-9]+)\\]")
  message(FATAL_ERROR "${CHANGELOG}: the top entry '${top}' does not start with '## [X.Y.Z]'")
endif()
if(NOT CMAKE_MATCH_1 STREQUAL VERSION)
  message(FATAL_ERROR "${CHANGELOG}: the top entry is ${CMAKE_MATCH_1}, CMake's project() says ${VERSION}")
endif()

if(DEFINED SOURCE_DIR)
  find_program(GIT git)
  if(GIT AND EXISTS "${SOURCE_DIR}/.git")
    execute_process(COMMAND ${GIT} -C "${SOURCE_DIR}" tag --points-at HEAD --list "v[0-9]*"
                    OUTPUT_VARIABLE tags OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE code)
    if(code EQUAL 0 AND NOT tags STREQUAL "")
      string(REPLACE "\n" ";" tags "${tags}")
      foreach(tag IN LISTS tags)
        if(NOT tag STREQUAL "v${VERSION}")
          message(FATAL_ERROR "HEAD is tagged ${tag} but CMake's project() says ${VERSION}")
        endif()
        execute_process(COMMAND ${GIT} -C "${SOURCE_DIR}" cat-file -t "${tag}"
                        OUTPUT_VARIABLE object_type OUTPUT_STRIP_TRAILING_WHITESPACE)
        # An annotated tag is a git object of type "tag" (a lightweight one points at the
        # commit). Compared as text: the loop variable is also called tag.
        if(NOT "${object_type}" MATCHES "^tag$")
          message(FATAL_ERROR "the release tag ${tag} is a lightweight tag: use git tag -a")
        endif()
      endforeach()
    endif()
  endif()
endif()
message(STATUS "version ${VERSION}: CMake, ${HEADER} and ${CHANGELOG} agree")
