# Compiler habits for Bastion's own targets: warnings (as errors unless BASTION_WERROR=OFF),
# ccache when present, and the optional ASan+UBSan build used by `tests/run --long`.

find_program(BASTION_CCACHE ccache)
if(BASTION_CCACHE)
  set(CMAKE_C_COMPILER_LAUNCHER "${BASTION_CCACHE}")
  set(CMAKE_CXX_COMPILER_LAUNCHER "${BASTION_CCACHE}")
  set(CMAKE_CUDA_COMPILER_LAUNCHER "${BASTION_CCACHE}")
endif()

if(BASTION_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

# Apply to every target we write; never to generated code or third-party headers (those come
# in as SYSTEM includes so their warnings stay theirs).
function(bastion_target_warnings target)
  set(flags -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align -Wunused
            -Woverloaded-virtual -Wnull-dereference -Wdouble-promotion -Wformat=2)
  if(BASTION_WERROR)
    list(APPEND flags -Werror)
  endif()
  # GCC 12's -Wmaybe-uninitialized misfires under -fsanitize in library code we instantiate
  # (std::regex in every Catch and CAF test runner, Beast's parser, kj promises): the sanitizer
  # tier checks behaviour at run time; the plain tier keeps the warning for our code.
  if(BASTION_SANITIZE)
    list(APPEND flags -Wno-maybe-uninitialized)
  endif()
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${flags}>)
endfunction()
