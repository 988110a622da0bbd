// The one translation unit that compiles spanprof's engine (stb/doctest pattern, like Tracy's
// TracyClient.cpp). Meson's spanprof_dep, the CMake target spanprof::spanprof and pkg-config's
// libspanprof.a are built from it; with a bare -I, compile this file once into your program (or
// define SPANPROF_IMPLEMENTATION before including spanprof.hpp in exactly one of your files).
#define SPANPROF_IMPLEMENTATION
#include "spanprof.hpp"
