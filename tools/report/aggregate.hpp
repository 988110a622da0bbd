// spanprof-report: bounded aggregates over a stream of transactions, one at a time.
//
// Nothing here keeps a transaction after add() returns, except the N slowest (a bounded heap).
// Per endpoint it keeps every duration (8 bytes each: the percentiles are exact) and maps whose
// size is capped (flame graph nodes, descriptions, culprits), whatever the number of files.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_set>
#include <vector>

#include "reader.hpp"

namespace spanprof::report {

struct options {
  std::int64_t sample_rate_hz = 101;  // the configured rate (SPANPROF_SAMPLE_RATE_HZ) of the run
  std::size_t slowest = 10;           // how many of the slowest transactions get their own view
  std::size_t max_flame_nodes = 20000;         // per endpoint aggregate flame graph
  std::size_t max_descriptions = 1000;         // per endpoint, time by span description
  std::size_t max_culprits = 1000;             // per endpoint
  std::size_t max_endpoints = 1000;            // further names go to "[other]"
  double max_gap_intervals = 50;               // sample_weights(): the longest stretch one gap may charge
  [[nodiscard]] std::int64_t interval_ns() const noexcept { return 1'000'000'000 / (sample_rate_hz > 0 ? sample_rate_hz : 101); }
};

// Nearest-rank percentile of `sorted` (ascending, non-empty): the smallest value such that at
// least p % of the values are <= it, i.e. sorted[ceil(p/100 * n) - 1]. Always one of the inputs.
std::int64_t nearest_rank_percentile(const std::vector<std::int64_t>& sorted, double p);

// Time weight of each sample of `t`, in ns, in t.samples order: the time it stands for. Per
// thread (a fiber's samples are all on its own track), in time order, the stretch between two
// consecutive samples is split half to each; the stretch from the transaction's start to the
// first sample goes to the first, and from the last sample to the end to the last. Before that,
// each stretch loses the time gap filling found the fiber suspended there (profile.gap spans with
// reason "suspended": no sample can fall there, and none should be charged with it), and is capped
// at `max_gap_intervals` nominal intervals, so that a silence nothing explains (samples dropped, a
// thread that left the transaction) is not charged in full to the samples beside it. A starved
// sampler (delivering a fraction of the rate, in bursts) still adds up to the time it sampled.
// The cap is wide (50 intervals: 0.5 s at 101 Hz) because a transaction's samples all come from
// its own thread or fiber, which was inside the transaction all along except where it was
// suspended (taken out above): on this loaded 2-core VM the sampler went silent for 13-60 ms at
// 500 Hz, and a cap of 2 or 10 intervals read 30 % short.
std::vector<double> sample_weights(const transaction& t, std::int64_t interval_ns, double max_gap_intervals = 50);

struct flame_node {
  std::string name, file;
  std::int64_t line = 0;
  double weight_ns = 0;
  std::uint64_t samples = 0;
  std::vector<std::uint32_t> children;
};

// A call tree of weighted stacks (root first), capped at max_nodes: a stack that would need a
// node beyond the cap is charged to the deepest node it has.
class flame_tree {
 public:
  explicit flame_tree(std::size_t max_nodes = 20000);
  void add(const transaction& t, const std::vector<std::uint32_t>& leaf_first_stack, double weight_ns);
  [[nodiscard]] const std::vector<flame_node>& nodes() const noexcept { return nodes_; }
  [[nodiscard]] std::uint64_t over_cap() const noexcept { return over_cap_; }

 private:
  std::vector<flame_node> nodes_;
  std::size_t max_nodes_;
  std::uint64_t over_cap_ = 0;
};

// A function gap filling found between spans, across the transactions of one endpoint.
struct culprit {
  std::string function, call_site;  // call_site: "file.cpp:43", the line in the span's function that called it
  std::string hot_file;             // code.filepath:code.lineno, the hottest line inside it
  std::int64_t hot_line = 0;
  std::int64_t total_ns = 0;
  std::uint64_t occurrences = 0, transactions = 0;
  std::uint64_t last_transaction = 0;  // to count transactions once
  double confidence_sum = 0;
  std::int64_t samples = 0;
  std::map<std::string, std::uint64_t> positions;  // "after <op> <description>" → occurrences (capped)
  [[nodiscard]] std::string typical_position() const;
};

struct endpoint {
  std::string name, op;
  std::vector<std::int64_t> durations_ns;  // sorted by finish()
  std::uint64_t errors = 0;
  std::int64_t total_ns = 0;
  std::map<std::string, std::int64_t> by_op;           // exclusive time of instrumented spans per op; "(no span)"
  std::map<std::string, std::int64_t> by_description;  // "op description" → exclusive time (capped)
  std::map<std::string, culprit> culprits;             // key: function + call site
  std::map<std::string, std::int64_t> gap_reasons;     // profile.gap time by reason
  std::map<std::string, std::uint64_t> statuses;
  flame_tree flame;
  std::uint64_t samples = 0, profiled_transactions = 0;
  double sample_weight_ns = 0;
  std::int64_t profiled_ns = 0;  // the durations of the transactions with a profile
  explicit endpoint(std::size_t max_flame_nodes) : flame(max_flame_nodes) {}
  [[nodiscard]] std::int64_t percentile(double p) const { return durations_ns.empty() ? 0 : nearest_rank_percentile(durations_ns, p); }
  [[nodiscard]] std::vector<const culprit*> ranked_culprits() const;  // by total time, descending
};

struct waterfall_span {
  std::string op, description, status, kind, reason;  // kind: transaction, span, inferred, gap
  std::int64_t start_ns = 0, end_ns = 0, samples = 0;
  int depth = 0;
};

struct slow_transaction {
  std::string name, event_id, status;
  std::int64_t duration_ns = 0, start_epoch_ns = 0;
  std::vector<waterfall_span> spans;
  flame_tree flame{4000};
  std::vector<std::string> files;  // its own files, absolute
};

struct skipped_file {
  std::string path, problem;
};

struct run {
  explicit run(options o = {}) : opts(o) {}
  options opts;
  std::vector<std::string> inputs;
  std::map<std::string, endpoint> endpoints;
  std::vector<slow_transaction> slowest;  // a min-heap by duration until finish(), then slowest first
  std::uint64_t files_read = 0, files_skipped = 0, duplicates = 0, transactions = 0;
  std::vector<skipped_file> skipped;  // the first 100
  std::int64_t first_start_ns = 0, last_end_ns = 0;
  std::uint64_t transaction_serial = 0;
  std::unordered_set<std::string> event_ids;  // duplicates (the same file found twice) are not counted twice

  void add(const transaction& t);
  void skip(const std::string& path, const std::string& problem);
  void finish();
  [[nodiscard]] double wall_s() const noexcept {
    return last_end_ns > first_start_ns ? static_cast<double>(last_end_ns - first_start_ns) / 1e9 : 0;
  }
};

// Every `*.envelope` and `*.transaction.json` under `dirs` (recursively), a transaction.json
// left out when an envelope of the same stem is beside it. Sorted, so runs are reproducible.
std::vector<std::string> input_files(const std::vector<std::string>& dirs, std::vector<skipped_file>& unreadable_dirs);

// Reads every input file of `dirs` into `r` (one file at a time), reporting each skipped file
// on stderr (one line each).
void read_run(const std::vector<std::string>& dirs, run& r, bool quiet = false);

}  // namespace spanprof::report
