# Helpers shared by every folder's CMakeLists.txt.

# ferry_library(NAME <target> SOURCES ... DEPS ...): one library per top-level folder,
# public headers in <folder>/include, warnings as errors.
function(ferry_library)
  cmake_parse_arguments(ARG "" "NAME" "SOURCES;DEPS" ${ARGN})
  if(NOT ARG_SOURCES)
    # A folder with headers only so far.
    add_library(${ARG_NAME} INTERFACE)
    target_include_directories(${ARG_NAME} INTERFACE ${CMAKE_CURRENT_SOURCE_DIR}/include)
    target_link_libraries(${ARG_NAME} INTERFACE ${ARG_DEPS})
    return()
  endif()
  add_library(${ARG_NAME} STATIC ${ARG_SOURCES})
  target_include_directories(${ARG_NAME} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include
                                         PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_compile_options(${ARG_NAME} PRIVATE ${FERRY_WARNINGS})
  target_link_libraries(${ARG_NAME} PUBLIC ${ARG_DEPS})
  ferry_precompile(${ARG_NAME})
endfunction()

# ferry_gtest(NAME <exe> SOURCES ... DEPS ... [LABELS ...] [TIMEOUT s]): a GoogleTest
# executable registered with CTest (one CTest entry per executable keeps the suite fast
# to enumerate; gtest filters still work through the binary).
function(ferry_gtest)
  cmake_parse_arguments(ARG "" "NAME;TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  find_package(GTest REQUIRED)
  add_executable(${ARG_NAME} ${ARG_SOURCES})
  target_compile_options(${ARG_NAME} PRIVATE ${FERRY_WARNINGS})
  target_include_directories(${ARG_NAME} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  # C++ headers only fit C++ targets (some tests also compile the guest's C helpers).
  list(FILTER ARG_SOURCES INCLUDE REGEX "\\.c$")
  if(NOT ARG_SOURCES)
    ferry_precompile(${ARG_NAME} TESTS)
  endif()
  add_test(NAME ${ARG_NAME} COMMAND ${ARG_NAME} --gtest_color=no)
  # Everything under tests/unit/ is a unit test: no root, no /dev/kvm, sanitizer-built.
  if(CMAKE_CURRENT_SOURCE_DIR MATCHES "/tests/unit/" AND NOT "kvm" IN_LIST ARG_LABELS)
    list(APPEND ARG_LABELS unit)
    add_dependencies(ferry_unit_tests ${ARG_NAME})
  elseif(CMAKE_CURRENT_SOURCE_DIR MATCHES "/tests/integration/")
    list(APPEND ARG_LABELS integration)
  endif()
  list(REMOVE_DUPLICATES ARG_LABELS)
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  set_tests_properties(${ARG_NAME} PROPERTIES TIMEOUT ${ARG_TIMEOUT}
    LABELS "${ARG_LABELS}"
    ENVIRONMENT "FERRY_SOURCE_DIR=${PROJECT_SOURCE_DIR};FERRY_BINARY_DIR=${PROJECT_BINARY_DIR}")
endfunction()

# ferry_precompile(<target> [TESTS] [CLI]): precompile the heavy headers nearly every Ferry
# file includes (the standard library, fmt, nlohmann::json, tl::expected; GoogleTest for
# test executables, CLI11 for the tool). A clean build spent most of its time re-parsing
# these in every file: about 170,000 preprocessed lines for a 90-line command file.
set(FERRY_PCH_COMMON
  <algorithm> <array> <atomic> <chrono> <cstdint> <cstring> <functional> <map> <memory>
  <mutex> <optional> <span> <string> <string_view> <thread> <vector>
  <fmt/format.h> <nlohmann/json.hpp> <tl/expected.hpp>)
function(ferry_precompile target)
  cmake_parse_arguments(ARG "TESTS;CLI" "" "" ${ARGN})
  if(NOT FERRY_PCH)
    return()
  endif()
  set(headers ${FERRY_PCH_COMMON})
  if(ARG_TESTS)
    list(APPEND headers <gtest/gtest.h> <gmock/gmock.h>)
  endif()
  if(ARG_CLI)
    list(APPEND headers <CLI/CLI.hpp>)
  endif()
  target_precompile_headers(${target} PRIVATE ${headers})
endfunction()
