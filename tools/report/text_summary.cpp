// spanprof-report: the text summary (text_summary.hpp).
#include "text_summary.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>

namespace spanprof::report {

std::string text_summary(const run& r, const run* baseline, std::size_t max_endpoints) {
  std::string out;
  auto put = [&]<typename... A>(fmt::format_string<A...> format, A&&... args) {
    fmt::format_to(std::back_inserter(out), format, std::forward<A>(args)...);
  };
  put("spanprof-report: {} transactions from {} files ({} skipped) over {:.1f} s\n", r.transactions, r.files_read,
      r.files_skipped, r.wall_s());
  std::vector<const endpoint*> order;
  for (const auto& [name, e] : r.endpoints) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const endpoint* a, const endpoint* b) { return a->percentile(95) > b->percentile(95); });
  if (order.size() > max_endpoints) order.resize(max_endpoints);
  for (const endpoint* e : order) {
    const double n = static_cast<double>(e->durations_ns.size());
    put("  {}  n={}  p50 {:.1f} ms  p95 {:.1f} ms  errors {:.1f} %", e->name, e->durations_ns.size(), e->percentile(50) / 1e6,
        e->percentile(95) / 1e6, n > 0 ? 100.0 * static_cast<double>(e->errors) / n : 0.0);
    if (baseline != nullptr) {
      const auto b = baseline->endpoints.find(e->name);
      if (b != baseline->endpoints.end()) put("  (baseline p95 {:.1f} ms)", b->second.percentile(95) / 1e6);
    }
    put("\n");
    const auto culprits = e->ranked_culprits();
    if (culprits.empty()) {
      put("      top culprit: none (no derived spans between spans)\n");
    } else {
      const culprit& c = *culprits.front();
      put("      top culprit: {} ({}) {:.1f} % of its time, in {} of {} transactions, {}\n", c.function,
          c.call_site.empty() ? c.hot_file + ":" + std::to_string(c.hot_line) : c.call_site,
          e->total_ns > 0 ? 100.0 * static_cast<double>(c.total_ns) / static_cast<double>(e->total_ns) : 0.0, c.transactions,
          e->durations_ns.size(), c.typical_position());
    }
  }
  if (r.endpoints.size() > order.size()) put("  … and {} more endpoints (report.json)\n", r.endpoints.size() - order.size());
  return out;
}

}  // namespace spanprof::report
