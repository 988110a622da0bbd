// spanprof gapfill: the engine — gap_filler keeps each phase's output (and so its buffers) and
// runs the phases in order (gapfill.hpp). Phases 1-7 are free functions or a class of their own
// that read earlier outputs through const references; phases 8-11 (call trees, derived spans,
// gap spans, publishing) are still member functions sharing trees_, derived_ and gap_states_.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "frames.hpp"
#include "gaps.hpp"
#include "id_table.hpp"
#include "input.hpp"
#include "output.hpp"
#include "placement.hpp"
#include "sample_order.hpp"
#include "scratch_state.hpp"
#include "span_tree.hpp"
#include "timeline.hpp"
#include "trim.hpp"

namespace spanprof::detail::gapfill {

// Reusable: keeps its scratch buffers between transactions. One gap_filler per collector thread.
class gap_filler {
 public:
  // Fills `out` (its previous contents are replaced, its capacity reused).
  void run(const transaction_input& in, const config& cfg, filled_transaction& out);

 private:
  void reset(const transaction_input& in, const config& cfg, filled_transaction& out);
  std::size_t trim_gap_samples(std::uint32_t gap);
  // The three steps of build_gap()'s per-sample loop, forced inline so the walk state stays in
  // registers, as it did when they were one function (gapfill_bench's hottest loop).
  [[gnu::always_inline]] inline void resume_walk(scratch::tree_walk& walk, const std::uint32_t* entries, std::size_t leaf,
                                                 std::size_t root) const noexcept;
  [[gnu::always_inline]] inline void descend_stack(scratch::tree_walk& walk, const std::uint32_t* entries, std::size_t leaf,
                                                   std::size_t root, std::uint32_t pos);
  [[gnu::always_inline]] inline void credit_sample(scratch::tree_walk& walk, const scratch::work_sample& sample,
                                                   std::uint32_t leaf_line, std::uint32_t pos);
  void build_gap(std::uint32_t gap);
  void emit_gap(std::uint32_t gap);
  [[nodiscard]] bool estimate_run_window(std::uint32_t gap, const scratch::run_record& top, std::uint32_t parent_candidate,
                                         std::int64_t sibling_end, scratch::run_window& window) const;
  std::uint32_t collapse_chain(std::uint32_t record, std::uint32_t count, std::uint32_t& max_repeat, std::string& stack) const;
  void fill_run_span(std::uint32_t gap, const scratch::run_record& top, std::uint32_t chain_end,
                     const scratch::run_window& window, std::uint32_t max_repeat, derived_span& span);
  [[nodiscard]] std::string_view dominant_blocking_call(std::uint32_t gap, const scratch::run_record& top) const;
  void describe_run_span(std::uint32_t gap, const scratch::run_record& top, std::string stack, derived_span& span) const;
  std::uint32_t emit_run(std::uint32_t gap, std::uint32_t record, std::uint32_t level, std::uint32_t parent_candidate, std::uint64_t& emitted_weight, std::int64_t& sibling_end);
  void apply_span_cap();
  void publish_candidates();
  void account_gaps();
  void finish_candidates();
  [[nodiscard]] derived_span make_gap_span(std::uint32_t gap, std::int64_t begin, std::int64_t end, gap_reason reason,
                                           std::uint64_t ordinal) const;
  std::uint32_t emit_gap_summary(std::uint32_t gap);
  void emit_suspension_spans(std::uint32_t gap, std::uint32_t summary);
  void emit_gap_spans();
  void label_samples();
  void output_trees();

  [[nodiscard]] std::span<const std::uint32_t> stack_of(const scratch::work_sample& sample) const noexcept {
    return in_->samples[sample.input].stack;
  }
  std::uint32_t child_of(std::uint32_t parent, std::uint32_t fkey, std::uint32_t caller_line, std::uint32_t frame, std::uint32_t caller_frame, std::uint32_t depth);
  static void tally_self_line(scratch::tree_node& node, std::uint32_t line, std::uint64_t weight) noexcept;
  void sum_node_totals(const scratch::gap_state& state);
  void order_run_records(scratch::gap_state& state);
  [[nodiscard]] std::pair<const scratch::work_sample*, const scratch::work_sample*> run_neighbours(
      std::uint32_t gap, const scratch::run_record& top, const scratch::work_sample& first) const noexcept;
  void close_runs(std::uint32_t from_depth, std::uint32_t last_pos);
  std::uint32_t ensure_record(scratch::path_entry& e);
  [[nodiscard]] std::uint32_t hottest_line(std::uint32_t node, bool self_only = false) const;
  [[nodiscard]] std::string call_site_text(std::uint32_t caller_frame) const;
  [[nodiscard]] std::uint64_t weight_between(std::uint32_t first_pos, std::uint32_t last_pos) const noexcept {
    return trees_.prefix_weight[last_pos + 1] - trees_.prefix_weight[first_pos];
  }
  [[nodiscard]] std::uint32_t count_between(std::uint32_t first_pos, std::uint32_t last_pos) const noexcept {
    return trees_.prefix_count[last_pos + 1] - trees_.prefix_count[first_pos];
  }
  [[nodiscard]] const scratch::work_sample& gap_sample(std::uint32_t gap, std::uint32_t pos) const noexcept {
    return ordered_.samples[gap_samples_.order[gap_samples_.of_gap[gap].first + pos]];
  }

  const transaction_input* in_ = nullptr;
  const config* cfg_ = nullptr;
  filled_transaction* out_ = nullptr;
  std::int64_t nominal_ = 0;
  std::int64_t min_gap_ = 0;

  // Phase outputs, in the order run() produces them. Each phase reads the earlier ones const
  // (work samples are filled column group by column group: see sample_order.hpp). They are
  // members so that their buffers keep their capacity from one transaction to the next.
  scratch::frame_table frame_table_;      // 1 frames.hpp
  scratch::span_tree span_tree_;          // 2 span_tree.hpp
  scratch::context_timeline timeline_;    // 3 timeline.hpp
  scratch::gap_list gap_list_;            // 4 gaps.hpp
  scratch::ordered_samples ordered_;      // 5 sample_order.hpp
  scratch::drop_table drops_;             // 6 placement.hpp
  scratch::gap_samples gap_samples_;      // 6 placement.hpp
  scratch::stack_trimmer trimmer_;        // 7 trim.hpp (keeps the common prefixes)
  std::vector<scratch::gap_state> gap_states_;  // 8, 9: each gap's nodes and candidates
  scratch::gap_call_trees trees_;         // 8 call_tree.hpp
  scratch::candidate_list derived_;       // 9 derived_spans.hpp
  std::vector<std::uint32_t> node_output_;  // 11 publish.hpp: node → call_tree_nodes index
};

}  // namespace spanprof::detail::gapfill
