// build_id.hpp: NT_GNU_BUILD_ID notes parsed with every length checked against the segment.
// (Build ids of real modules, against readelf's, are in symbolize_test.cpp.)
#include <doctest/doctest.h>
#include <spanprof/detail/symbolize/build_id.hpp>

#include <cstdint>
#include <cstring>
#include <vector>

using namespace spanprof::detail;

TEST_CASE("build id: notes are parsed with every length checked") {
  // namesz 4 "GNU\0", descsz 4, type NT_GNU_BUILD_ID, then the id.
  const unsigned char good[] = {4, 0, 0, 0, 4, 0, 0, 0, 3, 0, 0, 0, 'G', 'N', 'U', 0, 0xaa, 0xbb, 0xcc, 0xdd};
  CHECK(gnu_build_id_in_notes(good, sizeof good, 4) == std::vector<std::uint8_t>{0xaa, 0xbb, 0xcc, 0xdd});
  CHECK(gnu_build_id_in_notes(good, sizeof good - 1, 4).empty());  // descriptor cut short
  unsigned char huge[sizeof good];
  std::memcpy(huge, good, sizeof good);
  huge[3] = 0x7f;  // namesz far past the segment
  CHECK(gnu_build_id_in_notes(huge, sizeof huge, 4).empty());
  unsigned char other_owner[sizeof good];
  std::memcpy(other_owner, good, sizeof good);
  other_owner[12] = 'X';  // not "GNU"
  CHECK(gnu_build_id_in_notes(other_owner, sizeof other_owner, 4).empty());
}
