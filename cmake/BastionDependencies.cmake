# Every third-party library Bastion's non-kernel rooms use, found once here. scripts/bootstrap
# installs them from Debian; a missing one fails here, naming the package.

find_package(Threads REQUIRED)
find_package(CAF 0.17.6 REQUIRED COMPONENTS core io test)
find_package(CapnProto REQUIRED)
find_package(Boost 1.74 REQUIRED COMPONENTS program_options)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(tomlplusplus 3 REQUIRED)
find_package(OpenSSL 3.0 REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(RAFT REQUIRED IMPORTED_TARGET raft>=0.15)
if(BASTION_BUILD_TESTS)
  find_package(Catch2 2.13 REQUIRED)
endif()
