// spanprof gapfill: the gap filler's declaration — its phases and the scratch state they share.
// Each phase's definitions live in the file named after it; gapfill.hpp runs them in order.
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
  void finish_candidates();
  void emit_gap_spans();
  void label_samples();
  void output_trees();

  [[nodiscard]] std::span<const std::uint32_t> stack_of(const scratch::work_sample& w) const noexcept {
    return in_->samples[w.input].stack;
  }
  std::uint32_t child_of(std::uint32_t parent, std::uint32_t fkey, std::uint32_t caller_line, std::uint32_t frame, std::uint32_t caller_frame, std::uint32_t depth);
  static void tally_self_line(scratch::tree_node& node, std::uint32_t line, std::uint64_t weight) noexcept;
  void sum_node_totals(const scratch::gap_state& g);
  void order_run_records(scratch::gap_state& g);
  [[nodiscard]] std::pair<const scratch::work_sample*, const scratch::work_sample*> run_neighbours(
      std::uint32_t gap, const scratch::run_record& top, const scratch::work_sample& first) const noexcept;
  void close_runs(std::uint32_t from_depth, std::uint32_t last_pos);
  std::uint32_t ensure_record(scratch::path_entry& e);
  [[nodiscard]] std::uint32_t hottest_line(std::uint32_t node, bool self_only = false) const;
  [[nodiscard]] std::string call_site_text(std::uint32_t caller_frame) const;
  [[nodiscard]] std::uint64_t weight_between(std::uint32_t first_pos, std::uint32_t last_pos) const noexcept {
    return prefix_weight_[last_pos + 1] - prefix_weight_[first_pos];
  }
  [[nodiscard]] std::uint32_t count_between(std::uint32_t first_pos, std::uint32_t last_pos) const noexcept {
    return prefix_count_[last_pos + 1] - prefix_count_[first_pos];
  }
  [[nodiscard]] const scratch::work_sample& gap_sample(std::uint32_t gap, std::uint32_t pos) const noexcept {
    return ordered_.samples[gap_samples_.order[gap_samples_.of_gap[gap].first + pos]];
  }

  const transaction_input* in_ = nullptr;
  const config* cfg_ = nullptr;
  filled_transaction* out_ = nullptr;
  std::int64_t nominal_ = 0;
  std::int64_t min_gap_ = 0;

  // Phase outputs, in the order the phases produce them; each later phase reads them const.
  scratch::frame_table frame_table_;
  scratch::span_tree span_tree_;
  scratch::context_timeline timeline_;
  scratch::gap_list gap_list_;

  scratch::ordered_samples ordered_;
  scratch::drop_table drops_;
  scratch::gap_samples gap_samples_;

  scratch::stack_trimmer trimmer_;
  std::vector<scratch::gap_state> gap_states_;
  std::vector<std::uint32_t> scratch_counts_;
  // Per gap being built:
  std::vector<std::uint64_t> prefix_weight_;
  std::vector<std::uint32_t> prefix_count_;
  std::vector<std::uint32_t> prefix_blocked_;
  std::vector<scratch::path_entry> path_;
  std::vector<std::uint32_t> offset_depth_;
  std::vector<std::size_t> depth_offset_;
  std::uint32_t open_len_ = 0;
  std::vector<scratch::tree_node> nodes_;
  std::vector<scratch::run_record> records_;
  std::vector<std::uint32_t> record_children_;
  std::uint32_t gap_record_first_ = 0;
  std::vector<scratch::candidate> candidates_;
  std::vector<std::uint32_t> candidate_order_;
  std::vector<std::uint32_t> candidate_final_;
  std::vector<std::uint32_t> node_output_;
};

}  // namespace spanprof::detail::gapfill
