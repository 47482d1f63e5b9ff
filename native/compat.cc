// libstdc++ from GCC >= 11 routes std::allocator's size check to this helper, first exported in
// GLIBCXX_3.4.29 (GCC 11), which would make the prebuild refuse to load on RHEL 8 / Ubuntu 20.04.
// A local definition keeps the import away; the check itself is unreachable for our sizes.
#include <cstdlib>

namespace std {
[[noreturn]] void __throw_bad_array_new_length() { std::abort(); }
}  // namespace std
