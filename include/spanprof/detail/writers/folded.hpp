// spanprof: folded stacks (<stem>.folded), the input of flamegraph.pl, speedscope, inferno and
// Pyroscope — and their per-transaction-name aggregate. See ../shared/docs/formats.md §5.
//
// A line per distinct stack, root first, `;`-joined, one space, an integer count:
//
//   GET /api/users;db.sql.query SELECT …;_start;main;handle;parse_json 4
//
// The frames of a sample, root first:
//   1. the transaction's name;
//   2. the instrumented spans enclosing the sample ("op description"), outermost first: the span
//      gap filling placed the sample in (or the one open when it was taken), and its ancestors;
//   3. if gap filling put the sample inside a derived span, ONE frame `span:<op> <description>`
//      for the outermost of them (formats.md's suggestion). Only the outermost: the functions of
//      nested derived spans are the symbolized frames below it, and repeating them would draw
//      every inferred function twice;
//   4. the symbolized frames, root first, without the sampler's own leaf frames. Where gap
//      filling resolved the sample, the stack starts at the function that opened the span
//      (gapfill's trimmed stack): the frames above it (thread start, main, the request loop)
//      are what the span path already says, and leaving them out makes the same work of two
//      transactions fold into one stack. Unresolved samples keep their whole stack. Inlined
//      frames end in `_[i]`, which flamegraph.pl colours as inlined.
// The count of a sample is its weight (1, or 1 + timer overruns in CPU mode): counts add up to
// sampling intervals.
//
// The format has no escaping, so names are repaired instead (folded_frame_name()).
//
// NOT ASYNC-SIGNAL-SAFE. Collector thread only.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../core/text.hpp"
#include "finished_transaction.hpp"
#include "speedscope.hpp"  // span_frame_label

namespace spanprof::detail {

// A name made safe to be one frame of a folded line, whatever it was:
//   - `;` (the separator) becomes `:`;
//   - `\n`, `\r`, `\t` and every other control character become a space (a newline would end
//     the line);
//   - invalid UTF-8 becomes U+FFFD (counted in `stats`), so the SVG made from it is valid XML;
//   - trailing whitespace is dropped, an empty name becomes "[unknown]";
//   - a name ending in whitespace + a number ("retry 7", "v 1.5") gets `_` for that whitespace:
//     flamegraph.pl reads `… <number> <count>` as a differential line and speedscope would take
//     the wrong number. Done for every frame, not only leaves, so a frame has one spelling
//     whether or not it is the leaf of a stack.
inline std::string folded_frame_name(std::string_view raw, json_text_stats& stats) {
  std::string out;
  out.reserve(raw.size());
  // Controls would end the line or the frame: they become spaces, `;` becomes `:`.
  const bool repaired = append_utf8_repaired(out, raw, [](std::string& o, unsigned char c) {
    o += c == ';' ? ':' : (c < 0x20 || c == 0x7F) ? ' ' : static_cast<char>(c);
    return false;
  });
  if (repaired) ++stats.utf8_repaired;
  while (!out.empty() && out.back() == ' ') out.pop_back();
  if (out.empty()) return "[unknown]";
  // The maximal run of digits and dots at the end; flamegraph.pl's /\s+?(\d+(?:\.\d*)?)$/ can
  // only match it whole, and only if whitespace comes right before it.
  std::size_t k = out.size();
  while (k > 0 && ((out[k - 1] >= '0' && out[k - 1] <= '9') || out[k - 1] == '.')) --k;
  const std::string_view tail = std::string_view(out).substr(k);
  const bool is_number = !tail.empty() && tail.front() != '.' && tail.find('.') == tail.rfind('.');
  if (is_number && k > 0 && out[k - 1] == ' ') {
    for (std::size_t j = k; j > 0 && out[j - 1] == ' '; --j) out[j - 1] = '_';
  }
  return out;
}

// Distinct stacks (`;`-joined, root first) → summed counts. Ordered, so files are reproducible.
using folded_counts = std::map<std::string, std::uint64_t>;

inline folded_counts fold_transaction(const finished_transaction& txn, json_text_stats& stats) {
  folded_counts counts;
  const std::size_t span_count = txn.span_count();
  // Each span's path from the root, root first. Parents are recorded before their children,
  // so one pass in order suffices; a parent index that breaks that is treated as the root.
  std::vector<std::string> path(span_count);
  std::unordered_map<std::uint64_t, std::size_t> index_of_id;
  for (std::size_t i = 0; i < span_count; ++i) {
    const span_record& span = txn.span(i);
    index_of_id.emplace(span.id, i);
    const std::string label = folded_frame_name(span_frame_label(txn, i), stats);
    if (i == 0) {
      path[0] = label;
    } else {
      const std::size_t parent = span.parent_index < i ? span.parent_index : 0;
      path[i] = path[parent] + ";" + label;
    }
  }
  if (span_count == 0) return counts;

  const transaction_analysis* a = txn.analysis;
  std::vector<std::string> frame_name;
  if (a != nullptr) {
    frame_name.reserve(a->frames.size());
    for (const profile_frame& f : a->frames) {
      std::string name = f.function.empty()
                             ? fmt::format("{}+{:#x}", f.module != nullptr ? f.module->file_name() : std::string_view("unknown"),
                                           f.relative_addr)
                             : f.function;
      name = folded_frame_name(name, stats);
      if (f.inlined) name += "_[i]";
      frame_name.push_back(std::move(name));
    }
  }
  std::unordered_map<std::uint32_t, std::string> derived_label;  // outermost derived span → its frame
  std::string line;
  for (std::size_t n = 0; n < txn.sampled.samples.size(); ++n) {
    const collected_sample& sample = txn.sampled.samples[n];
    const gapfill::sample_placement* placed = nullptr;
    if (a != nullptr && n < a->gaps.placements.size() && a->gaps.placements[n].fate == gapfill::sample_fate::placed) {
      placed = &a->gaps.placements[n];
    }
    std::size_t span = 0;
    if (placed != nullptr && placed->span_index < span_count) {
      span = placed->span_index;
    } else if (auto it = index_of_id.find(sample.span_id); it != index_of_id.end()) {
      span = it->second;
    }
    line = path[span];
    if (placed != nullptr && placed->derived_index < a->gaps.derived_spans.size()) {
      std::uint32_t outer = placed->derived_index;
      // parent_index always points to an earlier entry (pre-order); the bound stops a cycle.
      for (std::size_t hops = 0; hops < a->gaps.derived_spans.size(); ++hops) {
        const std::uint32_t up = a->gaps.derived_spans[outer].parent_index;
        if (up >= outer) break;
        outer = up;
      }
      auto [it, inserted] = derived_label.try_emplace(outer);
      if (inserted) {
        const gapfill::derived_span& d = a->gaps.derived_spans[outer];
        it->second = folded_frame_name(fmt::format("span:{} {}", d.op(), d.description), stats);
      }
      line += ';';
      line += it->second;
    }
    if (a != nullptr) {
      const auto stack = a->stack_of(n);
      std::size_t leaf = 0, past_root = stack.size();  // [leaf, past_root) of the leaf-first stack
      if (placed != nullptr) {
        leaf = std::min<std::size_t>(placed->leaf_skip, stack.size());
        if (placed->resolved && placed->trimmed_count != 0) {
          past_root = std::min<std::size_t>(leaf + placed->trimmed_count, stack.size());
        }
      }
      for (std::size_t k = past_root; k-- > leaf;) {
        line += ';';
        line += frame_name[stack[k]];
      }
    }
    counts[line] += std::max<std::uint32_t>(1, sample.weight);
  }
  return counts;
}

// The file: one line per stack.
inline std::string write_folded(const folded_counts& counts) {
  std::string out;
  for (const auto& [stack, count] : counts) {
    if (count == 0) continue;  // flamegraph.pl and speedscope want positive counts
    out += stack;
    fmt::format_to(std::back_inserter(out), " {}\n", count);
  }
  return out;
}

// Per transaction name, the merged folded counts of every finished transaction of that name:
// Sentry's "flame graph per endpoint". Bounded, because names and stacks come from the program
// (a name with an id in it would otherwise grow without end): past `max_names` a new name is
// not aggregated, past `max_stacks_per_name` (or `max_total_stack_bytes` over all names) a new
// stack of a name is counted into one "<name>;[other]" stack. Both are counted for
// spanprof::stats().
class folded_aggregates {
 public:
  struct limits {
    std::size_t max_names = 256;
    std::size_t max_stacks_per_name = 10'000;
    // Stacks are long strings (a deep C++ stack folds into kilobytes): the bytes of all stacks
    // of all names are capped too, so the worst case is this much memory, not names × stacks.
    std::size_t max_total_stack_bytes = 64u << 20;
    // Rewriting an aggregate costs O(its stacks) plus rendering its SVG: at most once per
    // second per name, so a hot endpoint finishing 1000 times a second does not make the
    // collector rewrite the same file 1000 times. The last state is always written: at the
    // next finish after the interval, when the collector idles past it, and at shutdown.
    std::int64_t min_rewrite_interval_ns = 1'000'000'000;
  };

  struct aggregate {
    std::string name;  // the transaction name, as given
    std::string stem;  // its file name stem, unique among the aggregates
    std::string root;  // its root frame
    folded_counts stacks;
    std::uint64_t other = 0;  // counts of the stacks over the cap
    std::uint64_t transactions = 0;
    bool dirty = false;
    std::int64_t last_written_ns = std::numeric_limits<std::int64_t>::min();

    // The folded lines, "[other]" last.
    [[nodiscard]] folded_counts with_other() const {
      folded_counts all = stacks;
      if (other != 0) all[root + ";[other]"] += other;
      return all;
    }
  };

  folded_aggregates() = default;
  explicit folded_aggregates(limits l) : limits_(l) {}

  // Merges one transaction's counts. Returns the aggregate, or nullptr if the name is over
  // the cap (counted in names_over_cap).
  aggregate* add(std::string_view name, const folded_counts& counts, std::uint64_t& stacks_over_cap,
                 std::uint64_t& names_over_cap) {
    auto it = by_name_.find(std::string(name));
    if (it == by_name_.end()) {
      if (by_name_.size() >= limits_.max_names) {
        ++names_over_cap;
        return nullptr;
      }
      aggregate fresh;
      fresh.name = std::string(name);
      fresh.stem = unique_stem(name);
      json_text_stats ignored;
      fresh.root = folded_frame_name(name, ignored);
      it = by_name_.emplace(fresh.name, std::move(fresh)).first;
    }
    aggregate& agg = it->second;
    for (const auto& [stack, count] : counts) {
      auto found = agg.stacks.find(stack);
      if (found != agg.stacks.end()) {
        found->second += count;
      } else if (agg.stacks.size() < limits_.max_stacks_per_name &&
                 stack_bytes_ + stack.size() <= limits_.max_total_stack_bytes) {
        agg.stacks.emplace(stack, count);
        stack_bytes_ += stack.size();
      } else {
        agg.other += count;
        ++stacks_over_cap;
      }
    }
    ++agg.transactions;
    agg.dirty = true;
    return &agg;
  }

  // Calls write(aggregate&) for every aggregate with unwritten changes whose interval has
  // passed (every one with changes if `all`); write returns whether the files were written.
  template <class Write>
  void flush(std::int64_t now_ns, bool all, Write&& write) {
    for (auto& [name, agg] : by_name_) {
      if (!agg.dirty) continue;
      if (!all && agg.last_written_ns != std::numeric_limits<std::int64_t>::min() &&
          now_ns - agg.last_written_ns < limits_.min_rewrite_interval_ns) {
        continue;
      }
      if (write(agg)) {
        agg.dirty = false;
        agg.last_written_ns = now_ns;
      }
    }
  }

  [[nodiscard]] bool any_dirty() const noexcept {
    for (const auto& [name, agg] : by_name_) {
      if (agg.dirty) return true;
    }
    return false;
  }

 private:
  // Two names can make one stem ("GET /a" and "GET _a"): the later one gets a hash of its
  // name appended (FNV-1a, so the same name gets the same file in every run).
  std::string unique_stem(std::string_view name) {
    std::string stem = safe_file_stem(name);
    if (!stems_.insert(stem).second) {
      std::uint32_t h = 2166136261u;
      for (const char c : name) h = (h ^ static_cast<unsigned char>(c)) * 16777619u;
      stem += fmt::format("-{:08x}", h);
      for (unsigned salt = 1; !stems_.insert(stem).second; ++salt) stem = safe_file_stem(name) + fmt::format("-{:08x}-{}", h, salt);
    }
    return stem;
  }

  limits limits_;
  std::size_t stack_bytes_ = 0;  // Σ size of every stored stack
  std::map<std::string, aggregate> by_name_;
  std::set<std::string> stems_;
};

}  // namespace spanprof::detail
