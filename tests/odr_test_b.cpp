// The second translation unit of the ODR test: it includes the header on its own and opens a
// span, which must land in the transaction the other translation unit opened.
#include <spanprof/spanprof.hpp>
#include <spanprof/detail/engine/runtime.hpp>

// Declared in odr_test_a.cpp too (no shared header on purpose: each TU sees only spanprof.hpp).
int odr_b_open_span();
const void* odr_b_runtime_address();
const void* odr_b_context_address();

int odr_b_open_span() {
  SPANPROF_SPAN_NAMED(span, "odr.b", "span from b"); const int line = __LINE__;
  span.set_data("tu", "b");
  return span.is_recording() ? line : -line;
}

// The process-wide state as this TU sees it: inline variables must have one address.
const void* odr_b_runtime_address() { return &spanprof::detail::the_runtime(); }
const void* odr_b_context_address() { return spanprof::detail::current_context(); }
