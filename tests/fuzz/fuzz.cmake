# ---- fuzzing: libFuzzer targets (tests/fuzz/, docs/HARDENING.md) ------------
# Included from the top-level CMakeLists.txt. -DSTRATA_FUZZ=ON with clang as
# the C compiler builds tests/fuzz/fuzz_<name>.c as fuzz_<name> against the
# core compiled with -fsanitize=fuzzer-no-link,address,undefined, and
# fuzz_gen_seeds (the seed corpora). With another compiler the targets are
# built by scripts/fuzz.sh in a separate clang build dir: `make fuzz` runs
# that script with 0 seconds (build and seed only). scripts/fuzz.sh [SECONDS]
# builds, seeds and runs every target; scripts/test.sh runs it for 30 s each.
option(STRATA_FUZZ "build the libFuzzer targets (tests/fuzz/fuzz_*.c; needs clang)" OFF)
if(STRATA_FUZZ)
  if(CMAKE_C_COMPILER_ID MATCHES "Clang")
    set(STRATA_FUZZ_FLAGS -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
    # A core file that clang rejects (quant_avxvnni.c passes a non-constant
    # immediate to _mm256_permute2x128_si256, which gcc folds after unrolling
    # and clang does not) is compiled by gcc into an uninstrumented object and
    # linked into the clang-built cores; each file is checked at configure time,
    # so one that clang accepts again goes back to clang by itself.
    set(fuzz_core_src ${STRATA_CORE_SRC})
    set(fuzz_gcc_objs)
    find_program(STRATA_FUZZ_GCC gcc)
    foreach(src ${STRATA_CORE_SRC})
      get_source_file_property(opts ${src} COMPILE_OPTIONS)
      if(NOT opts)
        set(opts)
      endif()
      execute_process(COMMAND ${CMAKE_C_COMPILER} -std=gnu11 -O2 -fsyntax-only ${opts} -I${CMAKE_SOURCE_DIR}/core ${src}
                      RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
      if(NOT rc EQUAL 0)
        if(NOT STRATA_FUZZ_GCC)
          message(FATAL_ERROR "STRATA_FUZZ: clang cannot compile ${src} and there is no gcc to compile it instead")
        endif()
        get_filename_component(base ${src} NAME_WE)
        set(obj ${CMAKE_BINARY_DIR}/fuzz_gcc_${base}.o)
        add_custom_command(OUTPUT ${obj}
          COMMAND ${STRATA_FUZZ_GCC} -std=gnu11 -O2 -g -Wall -Wextra ${opts} -I${CMAKE_SOURCE_DIR}/core -c ${src} -o ${obj}
          DEPENDS ${src} COMMENT "gcc ${base}.c (clang rejects it)" VERBATIM)
        list(REMOVE_ITEM fuzz_core_src ${src})
        list(APPEND fuzz_gcc_objs ${obj})
        message(STATUS "STRATA_FUZZ: clang rejects ${src}: compiled with gcc, uninstrumented")
      endif()
    endforeach()
    if(fuzz_gcc_objs)
      set_property(TARGET strata_core_asan PROPERTY SOURCES ${fuzz_core_src} ${fuzz_gcc_objs})
    endif()
    add_library(strata_core_fuzz STATIC ${fuzz_core_src} ${fuzz_gcc_objs})
    target_include_directories(strata_core_fuzz PUBLIC ${CMAKE_SOURCE_DIR}/core)
    target_compile_options(strata_core_fuzz PUBLIC ${STRATA_FUZZ_FLAGS})
    target_link_libraries(strata_core_fuzz PUBLIC Threads::Threads m)
    if(NOT STRATA_PREFETCH)
      target_compile_definitions(strata_core_fuzz PUBLIC ST_NO_PREFETCH)
    endif()
    file(GLOB STRATA_FUZZ_SRC CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_*.c)
    foreach(src ${STRATA_FUZZ_SRC})
      get_filename_component(name ${src} NAME_WE)
      add_executable(${name} ${src})
      target_compile_definitions(${name} PRIVATE
        STRATA_SHARED_DIR="${STRATA_SHARED_DIR}" STRATA_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
      target_link_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
      target_link_libraries(${name} PRIVATE strata_core_fuzz)
    endforeach()
    pkg_check_modules(FUZZ_CJSON REQUIRED IMPORTED_TARGET libcjson)
    add_executable(fuzz_gen_seeds ${CMAKE_SOURCE_DIR}/tests/fuzz/gen_seeds.c)
    target_compile_definitions(fuzz_gen_seeds PRIVATE
      STRATA_SHARED_DIR="${STRATA_SHARED_DIR}" STRATA_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
    target_link_libraries(fuzz_gen_seeds PRIVATE strata_core_asan PkgConfig::FUZZ_CJSON)
  else()
    message(STATUS "STRATA_FUZZ: ${CMAKE_C_COMPILER_ID} is not clang: `make fuzz` builds the targets with clang via scripts/fuzz.sh")
    add_custom_target(fuzz COMMAND bash ${CMAKE_SOURCE_DIR}/scripts/fuzz.sh 0
      WORKING_DIRECTORY ${CMAKE_SOURCE_DIR} USES_TERMINAL VERBATIM)
  endif()
endif()
