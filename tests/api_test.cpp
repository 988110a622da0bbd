// The public API end to end: macros → records → the Sentry transaction JSON the collector writes,
// read back with nlohmann::json after spanprof::shutdown() (which joins the collector).
#include <doctest/doctest.h>
#include <spanprof/spanprof.hpp>

#include "support/error_log.hpp"
#include "support/test_support.hpp"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace spanprof_test;

namespace {

// A site for spans opened through the constructor, as SPANPROF_SPAN_NAMED does.
constexpr spanprof::detail::span_site manual_site{"manual_site", __FILE__, __LINE__};

void make_span(std::optional<spanprof::scoped_span>& span, const char* description) {
  span.emplace("test.op", description, &manual_site, __builtin_frame_address(0));
}

int function_with_span() {
  SPANPROF_FUNCTION();
  return SPANPROF_IS_RECORDING() ? 1 : 0;
}

// Opens a span and returns the line of the macro (both on one line on purpose).
int open_site_span() {
  SPANPROF_SPAN("site.op", "site span"); const int line = __LINE__;
  return line;
}

// Every macro without a transaction to attach to. Returns whether anything claimed to record.
bool use_every_macro() {
  bool recording = SPANPROF_IS_RECORDING();
  SPANPROF_SET_STATUS(spanprof::status::internal_error);
  SPANPROF_SET_DATA("key", 1);
  SPANPROF_SET_DATA("key", "text");
  SPANPROF_SPAN("op", "span without transaction");
  SPANPROF_SPAN_NAMED(named, "op", "named span without transaction");
  named.set_status(spanprof::status::aborted);
  named.set_data("key", 2.5);
  recording = recording || named.is_recording() || SPANPROF_IS_RECORDING();
  SPANPROF_SET_STATUS(spanprof::status::internal_error);
  SPANPROF_SET_DATA("key", std::string("value"));
  recording = recording || function_with_span() != 0;
  return recording;
}
}  // namespace

TEST_CASE("api: without init every macro is a no-op") {
  spanprof::shutdown();  // whatever an earlier test case left running
  REQUIRE_FALSE(spanprof::is_running());

  // On a fresh thread, so we can also see that nothing registered it.
  bool recording = true;
  bool registered = true;
  std::thread([&] {
    recording = use_every_macro();
    {
      SPANPROF_TRANSACTION("transaction without init");
      SPANPROF_TRANSACTION_OP("transaction op without init", "task");
      SPANPROF_TRANSACTION_NAMED(txn, "named transaction without init", "task");
      txn.set_status(spanprof::status::not_found);
      txn.set_data("key", true);
      recording = recording || txn.is_recording();
      recording = recording || use_every_macro();
    }
    registered = spanprof::detail::current_context() != nullptr;
  }).join();
  CHECK_FALSE(recording);
  CHECK_FALSE(registered);
  CHECK_FALSE(spanprof::register_thread());
}

TEST_CASE("api: with init, spans and data outside any transaction are no-ops") {
  temp_dir dir;
  {
    session s(config_for(dir));
    CHECK_FALSE(use_every_macro());
    std::thread([] { CHECK_FALSE(use_every_macro()); }).join();
  }
  CHECK(count_files(dir.path()) == 0);
  const spanprof::counters c = spanprof::stats();
  CHECK(c.transactions_started == 0);
  CHECK(c.errors == 0);
}

TEST_CASE("api: a second init while running returns ok and changes nothing") {
  temp_dir first_dir;
  temp_dir other_root;
  const std::string second_dir = other_root / "never-created";
  {
    session s(config_for(first_dir));
    { SPANPROF_TRANSACTION("before second init"); }

    spanprof::config other;
    other.output_dir = second_dir;
    other.formats = spanprof::output_format::chrome_trace;
    other.traces_sample_rate = 0.0;
    const spanprof::init_result again = spanprof::init(other);
    CHECK(again.ok);
    CHECK(again.error.empty());
    CHECK(spanprof::is_running());

    { SPANPROF_TRANSACTION("after second init"); }  // still sampled, still both formats, same folder
  }
  CHECK_FALSE(std::filesystem::exists(second_dir));
  CHECK(files_ending_with(first_dir.path(), ".transaction.json").size() == 2);
  CHECK(files_ending_with(first_dir.path(), ".trace.json").size() == 2);
  auto txns = read_transactions(first_dir.path());
  (void)transaction_named(txns, "before second init");
  (void)transaction_named(txns, "after second init");
  // The counters were not reset by the second init().
  CHECK(spanprof::stats().transactions_finished == 2);
}

TEST_CASE("api: nested spans link to their parents") {
  temp_dir dir;
  {
    session s(config_for(dir));
    SPANPROF_TRANSACTION_OP("nesting", "test.txn");
    {
      SPANPROF_SPAN("level", "a");
      {
        SPANPROF_SPAN("level", "a.b");
        { SPANPROF_SPAN("level", "a.b.c"); }
        { SPANPROF_SPAN("level", "a.b.d"); }
      }
    }
    { SPANPROF_SPAN("level", "e"); }
    CHECK(function_with_span() == 1);
  }
  auto txns = read_transactions(dir.path());
  REQUIRE(txns.size() == 1);
  json& txn = txns[0];
  CHECK(txn["transaction"] == "nesting");
  CHECK(txn["contexts"]["trace"]["op"] == "test.txn");
  CHECK(txn["contexts"]["trace"]["status"] == "ok");
  CHECK_FALSE(txn["contexts"]["trace"].contains("parent_span_id"));
  CHECK(txn["spans"].size() == 6);

  const std::string root = root_span_id(txn);
  json a = span_described(txn, "a");
  json ab = span_described(txn, "a.b");
  json abc = span_described(txn, "a.b.c");
  json abd = span_described(txn, "a.b.d");
  json e = span_described(txn, "e");
  CHECK(a["parent_span_id"] == root);
  CHECK(ab["parent_span_id"] == a["span_id"]);
  CHECK(abc["parent_span_id"] == ab["span_id"]);
  CHECK(abd["parent_span_id"] == ab["span_id"]);
  CHECK(e["parent_span_id"] == root);
  for (json& span : txn["spans"]) {
    CHECK(span["trace_id"] == trace_id_of(txn));
    CHECK(span["status"] == "ok");
    CHECK_FALSE(span["data"].contains("spanprof.auto_closed"));
    CHECK(span["start_timestamp"] <= span["timestamp"]);  // same-length RFC 3339 strings
  }
  // Every span id is distinct.
  std::vector<std::string> ids{root};
  for (json& span : txn["spans"]) ids.push_back(span["span_id"]);
  std::sort(ids.begin(), ids.end());
  CHECK(std::adjacent_find(ids.begin(), ids.end()) == ids.end());
}

// Macros expanded on one line (as another macro of the user's would do) must not clash.
#define TEST_TWO_SPANS_ONE_LINE() SPANPROF_SPAN("pair", "first"); SPANPROF_SPAN("pair", "second")

TEST_CASE("api: several macros on one line each make their own span") {
  temp_dir dir;
  {
    session s(config_for(dir));
    SPANPROF_TRANSACTION("one line"); TEST_TWO_SPANS_ONE_LINE();
  }
  auto txns = read_transactions(dir.path());
  REQUIRE(txns.size() == 1);
  const json first = span_described(txns[0], "first");
  const json second = span_described(txns[0], "second");
  CHECK(first["parent_span_id"] == root_span_id(txns[0]));
  CHECK(second["parent_span_id"] == first["span_id"]);
}

TEST_CASE("api: SPANPROF_FUNCTION is named after the enclosing function; spans carry their call site") {
  temp_dir dir;
  int site_line = 0;
  {
    session s(config_for(dir));
    SPANPROF_TRANSACTION("sites");
    CHECK(function_with_span() == 1);
    site_line = open_site_span();
  }
  auto txns = read_transactions(dir.path());
  REQUIRE(txns.size() == 1);
  json function_span = span_described(txns[0], "function_with_span");
  CHECK(function_span["op"] == "function");
  CHECK(function_span["data"]["code.function"].get<std::string>().find("function_with_span") != std::string::npos);

  json site = span_described(txns[0], "site span");
  CHECK(site["op"] == "site.op");
  CHECK(site["data"]["code.lineno"] == site_line);
  CHECK(site["data"]["code.filepath"] == __FILE__);
  CHECK(site["data"]["code.function"].get<std::string>().find("open_site_span") != std::string::npos);
  CHECK(site["data"]["thread.id"].is_string());
}

TEST_CASE("api: set_data keeps each value's JSON type") {
  temp_dir dir;
  {
    session s(config_for(dir));
    SPANPROF_TRANSACTION_NAMED(txn, "data", "test.txn");
    txn.set_data("txn.int", 7);
    SPANPROF_SET_DATA("txn.macro", "on the root");  // no span open: goes to the transaction
    {
      SPANPROF_SPAN_NAMED(span, "test.op", "typed");
      const char* pointer = "const char*";
      const std::string owned = "std::string";
      span.set_data("literal", "string literal");
      span.set_data("pointer", pointer);
      span.set_data("null pointer", static_cast<const char*>(nullptr));
      span.set_data("std_string", owned);
      span.set_data("string_view", std::string_view("view"));
      span.set_data("int", -42);
      span.set_data("int64", std::int64_t{-1099511627781});
      span.set_data("double", 2.5);
      span.set_data("float", 0.25f);
      span.set_data("true", true);
      span.set_data("false", false);
      span.set_data("replaced", 1);
      span.set_data("replaced", "second value wins");
      SPANPROF_SET_DATA("macro", 3);  // the innermost open span is `span`
      SPANPROF_SET_STATUS(spanprof::status::not_found);
    }
  }
  auto txns = read_transactions(dir.path());
  REQUIRE(txns.size() == 1);
  json& root_data = txns[0]["contexts"]["trace"]["data"];
  CHECK(root_data["txn.int"] == 7);
  CHECK(root_data["txn.macro"] == "on the root");

  json span = span_described(txns[0], "typed");
  CHECK(span["status"] == "not_found");
  json& d = span["data"];
  CHECK(d["literal"].is_string());
  CHECK(d["literal"] == "string literal");
  CHECK(d["pointer"] == "const char*");
  CHECK(d["null pointer"] == "");
  CHECK(d["std_string"] == "std::string");
  CHECK(d["string_view"] == "view");
  CHECK(d["int"].is_number_integer());
  CHECK(d["int"].get<std::int64_t>() == -42);
  CHECK(d["int64"].is_number_integer());
  CHECK(d["int64"].get<std::int64_t>() == -1099511627781);
  CHECK(d["double"].is_number_float());
  CHECK(d["double"].get<double>() == 2.5);
  CHECK(d["float"].is_number_float());
  CHECK(d["float"].get<double>() == 0.25);
  CHECK(d["true"].is_boolean());
  CHECK(d["true"] == true);
  CHECK(d["false"].is_boolean());
  CHECK(d["false"] == false);
  CHECK(d["replaced"] == "second value wins");
  CHECK(d["macro"] == 3);
}

// A transaction opened while another is open on the same thread is its own transaction (its own
// file) in the same trace, a child of the outer's active span. Spans go to the innermost open
// transaction; once it finishes, new spans go to the outer again.
TEST_CASE("api: a nested transaction is its own transaction in the outer's trace") {
  temp_dir dir;
  {
    session s(config_for(dir));
    SPANPROF_TRANSACTION("outer");
    {
      SPANPROF_SPAN("test.op", "outer span");
      {
        SPANPROF_TRANSACTION_OP("inner", "test.inner");
        SPANPROF_SPAN("test.op", "inner span");
      }
      SPANPROF_SPAN("test.op", "outer span after inner");
    }
    CHECK(spanprof::stats().nested_transactions == 1);
  }
  auto txns = read_transactions(dir.path());
  REQUIRE(txns.size() == 2);
  json outer = transaction_named(txns, "outer");
  json inner = transaction_named(txns, "inner");
  CHECK(trace_id_of(inner) == trace_id_of(outer));
  CHECK(inner["event_id"] != outer["event_id"]);
  json outer_span = span_described(outer, "outer span");
  CHECK(inner["contexts"]["trace"]["parent_span_id"] == outer_span["span_id"]);
  CHECK(inner["contexts"]["trace"]["op"] == "test.inner");

  REQUIRE(inner["spans"].size() == 1);
  CHECK(span_described(inner, "inner span")["parent_span_id"] == root_span_id(inner));
  CHECK_FALSE(has_span_described(outer, "inner span"));

  CHECK(outer["spans"].size() == 2);
  CHECK(span_described(outer, "outer span after inner")["parent_span_id"] == outer_span["span_id"]);
  CHECK(spanprof::stats().nested_transactions == 1);
}

TEST_CASE("api: closing a parent before its child auto-closes the child") {
  temp_dir dir;
  {
    session s(config_for(dir));
    SPANPROF_TRANSACTION("out of order");
    std::optional<spanprof::scoped_span> parent;
    std::optional<spanprof::scoped_span> child;
    make_span(parent, "parent");
    make_span(child, "child");
    parent.reset();  // the child is still open
    child.reset();   // already auto-closed: a no-op
    SPANPROF_SPAN("test.op", "after");  // the parent's parent (the root) is active again
  }
  auto txns = read_transactions(dir.path());
  REQUIRE(txns.size() == 1);
  json& txn = txns[0];
  json parent = span_described(txn, "parent");
  json child = span_described(txn, "child");
  CHECK(child["parent_span_id"] == parent["span_id"]);
  CHECK(child["status"] == "cancelled");
  CHECK(child["data"]["spanprof.auto_closed"] == true);
  CHECK_FALSE(child["data"].contains("spanprof.closed_out_of_order"));
  CHECK(parent["status"] == "ok");
  CHECK(parent["data"]["spanprof.closed_out_of_order"] == true);
  CHECK_FALSE(parent["data"].contains("spanprof.auto_closed"));
  // The child was closed no later than its parent.
  CHECK(child["timestamp"] <= parent["timestamp"]);
  CHECK(span_described(txn, "after")["parent_span_id"] == root_span_id(txn));
  CHECK(txn["contexts"]["spanprof"]["spans_closed_out_of_order"] == 1);
  CHECK(txn["contexts"]["spanprof"]["spans_auto_closed"] == 1);

  const spanprof::counters c = spanprof::stats();
  CHECK(c.spans_closed_out_of_order == 1);
  CHECK(c.spans_auto_closed == 1);
}

TEST_CASE("api: a span outliving its transaction is closed with it; its late end does nothing") {
  temp_dir dir;
  {
    session s(config_for(dir));
    std::optional<spanprof::scoped_span> survivor;
    {
      SPANPROF_TRANSACTION("short");
      make_span(survivor, "survivor");
    }
    {
      // The next transaction on this thread may even reuse the same record.
      SPANPROF_TRANSACTION("next");
      SPANPROF_SPAN("test.op", "next span");
      survivor.reset();  // must not touch "next"
      SPANPROF_SPAN("test.op", "next span 2");
    }
  }
  auto txns = read_transactions(dir.path());
  REQUIRE(txns.size() == 2);
  json short_txn = transaction_named(txns, "short");
  json survivor = span_described(short_txn, "survivor");
  CHECK(survivor["status"] == "deadline_exceeded");
  CHECK(survivor["data"]["spanprof.auto_closed"] == true);
  CHECK(short_txn["contexts"]["trace"]["status"] == "ok");
  CHECK(short_txn["contexts"]["spanprof"]["spans_auto_closed"] == 1);

  json next = transaction_named(txns, "next");
  REQUIRE(next["spans"].size() == 2);
  json next_span = span_described(next, "next span");
  CHECK(next_span["status"] == "ok");
  CHECK_FALSE(next_span["data"].contains("spanprof.auto_closed"));
  CHECK(span_described(next, "next span 2")["parent_span_id"] == next_span["span_id"]);
  CHECK(next["contexts"]["spanprof"]["spans_auto_closed"] == 0);
  CHECK(spanprof::stats().spans_auto_closed == 1);
}

// The hard case of the above: the next transaction reuses the very record the late span
// pointed into (records are pooled), so only the record's serial tells them apart. We force the
// reuse: a "hoarder" thread keeps every other pooled record in its own cache, and
// shutdown()+init() (which join the collector) put the one record back in the pool in between.
TEST_CASE("api: a span's late end does not touch a later transaction that reuses its record") {
  temp_dir dir;
  const spanprof::config cfg = config_for(dir);
  session s(cfg);
  std::latch hoarding(1);
  std::latch done(1);
  std::thread hoarder([&] {
    { SPANPROF_TRANSACTION("hoarder"); }  // takes the whole pool into this thread's cache
    hoarding.count_down();
    done.wait();
  });
  hoarding.wait();
  spanprof::shutdown();  // the hoarder's one record is back in the (otherwise empty) pool
  REQUIRE(spanprof::init(cfg).ok);

  const void* short_record = nullptr;
  const void* next_record = nullptr;
  std::thread([&] {
    std::optional<spanprof::scoped_span> survivor;
    {
      SPANPROF_TRANSACTION("short");
      short_record = spanprof::detail::current_context()->open[0].load();
      make_span(survivor, "survivor");
    }
    spanprof::shutdown();  // the record is back in the pool, and this thread's cache is empty
    CHECK(spanprof::init(cfg).ok);
    {
      SPANPROF_TRANSACTION("next");
      next_record = spanprof::detail::current_context()->open[0].load();
      SPANPROF_SPAN("test.op", "next span");  // the same index the survivor had
      survivor.reset();                        // must not close "next span"
      SPANPROF_SPAN("test.op", "next span 2");
    }
  }).join();
  done.count_down();
  hoarder.join();
  spanprof::shutdown();

  REQUIRE_MESSAGE(short_record == next_record, "the setup did not make the second transaction reuse the record");
  auto txns = read_transactions(dir.path());
  json short_txn = transaction_named(txns, "short");
  CHECK(span_described(short_txn, "survivor")["status"] == "deadline_exceeded");
  json next = transaction_named(txns, "next");
  json next_span = span_described(next, "next span");
  CHECK(next_span["status"] == "ok");
  CHECK_FALSE(next_span["data"].contains("spanprof.auto_closed"));
  CHECK(span_described(next, "next span 2")["parent_span_id"] == next_span["span_id"]);
  CHECK(next_span["timestamp"] >= span_described(next, "next span 2")["timestamp"]);
}

TEST_CASE("api: a span ended on another thread is counted and auto-closed at finish") {
  temp_dir dir;
  {
    session s(config_for(dir));
    SPANPROF_TRANSACTION("cross thread");
    auto* span = new spanprof::scoped_span("test.op", "ended elsewhere", &manual_site, __builtin_frame_address(0));
    std::thread([span] { delete span; }).join();
    CHECK(spanprof::stats().cross_context_ends == 1);
  }
  auto txns = read_transactions(dir.path());
  REQUIRE(txns.size() == 1);
  json span = span_described(txns[0], "ended elsewhere");
  CHECK(span["status"] == "deadline_exceeded");
  CHECK(span["data"]["spanprof.auto_closed"] == true);
  const spanprof::counters c = spanprof::stats();
  CHECK(c.cross_context_ends == 1);
  CHECK(c.spans_auto_closed == 1);
}

TEST_CASE("api: traces_sample_rate 0 records nothing") {
  temp_dir dir;
  {
    spanprof::config cfg = config_for(dir);
    cfg.traces_sample_rate = 0.0;
    session s(cfg);
    for (int i = 0; i < 20; ++i) {
      SPANPROF_TRANSACTION_NAMED(txn, "unsampled", "test.txn");
      CHECK_FALSE(txn.is_recording());
      SPANPROF_SPAN_NAMED(span, "test.op", "in unsampled");
      CHECK_FALSE(span.is_recording());
      CHECK_FALSE(SPANPROF_IS_RECORDING());
    }
  }
  CHECK(count_files(dir.path()) == 0);
  const spanprof::counters c = spanprof::stats();
  CHECK(c.transactions_started == 20);
  CHECK(c.transactions_not_sampled == 20);
  CHECK(c.transactions_finished == 0);
  CHECK(c.transactions_collected == 0);
}

TEST_CASE("api: spans inside an unsampled nested transaction do not attach to the sampled outer") {
  temp_dir dir;
  bool found = false;
  {
    spanprof::config cfg = config_for(dir);
    cfg.traces_sample_rate = 0.5;
    session s(cfg);
    // Sampling is random: retry until the outer is sampled and an inner is not (p = 0.5 each;
    // failing 200 times in a row has probability 2^-200).
    for (int outer_try = 0; outer_try < 200 && !found; ++outer_try) {
      SPANPROF_TRANSACTION_NAMED(outer, "sampled outer", "test.txn");
      if (!outer.is_recording()) continue;
      for (int inner_try = 0; inner_try < 200 && !found; ++inner_try) {
        SPANPROF_TRANSACTION_NAMED(inner, "inner", "test.txn");
        if (inner.is_recording()) continue;
        found = true;
        SPANPROF_SPAN_NAMED(span, "test.op", "in unsampled inner");
        CHECK_FALSE(span.is_recording());
        CHECK_FALSE(SPANPROF_IS_RECORDING());
        SPANPROF_SET_DATA("set in unsampled inner", 1);
        SPANPROF_SET_STATUS(spanprof::status::internal_error);
      }
      SPANPROF_SPAN("test.op", "after inner");
    }
  }
  REQUIRE(found);
  auto txns = read_transactions(dir.path());
  json outer = transaction_named(txns, "sampled outer");
  CHECK_FALSE(has_span_described(outer, "in unsampled inner"));
  CHECK(outer["contexts"]["trace"]["status"] == "ok");
  CHECK_FALSE(outer["contexts"]["trace"]["data"].contains("set in unsampled inner"));
  CHECK(span_described(outer, "after inner")["parent_span_id"] == root_span_id(outer));
  for (const json& txn : txns) CHECK_FALSE(has_span_described(txn, "in unsampled inner"));
  CHECK(spanprof::stats().transactions_not_sampled >= 1);
}

namespace {

// Opens `remaining` nested transactions, one per recursion level.
void nest_transactions(int level, int levels, std::vector<bool>& recording) {
  const std::string name = "level " + std::to_string(level);
  SPANPROF_TRANSACTION_NAMED(txn, name, "test.txn");
  recording.push_back(txn.is_recording());
  if (level < levels) nest_transactions(level + 1, levels, recording);
  SPANPROF_SPAN("test.op", "after the level below");
}

}  // namespace

TEST_CASE("api: more than 8 nested transactions is reported as api_misuse") {
  temp_dir dir;
  error_log log;
  std::vector<bool> recording;
  {
    spanprof::config cfg = config_for(dir);
    cfg.on_error = log.callback();
    cfg.log_errors_to_stderr = false;
    session s(cfg);
    nest_transactions(1, 9, recording);
  }
  REQUIRE(recording.size() == 9);
  for (int i = 0; i < 8; ++i) CHECK(recording[static_cast<std::size_t>(i)]);
  CHECK_FALSE(recording[8]);
  {
    std::lock_guard lock(log.mutex);
    REQUIRE(log.errors.size() == 1);
    CHECK(log.errors[0].kind == spanprof::error_kind::api_misuse);
    CHECK(log.errors[0].message.rfind("spanprof: ", 0) == 0);
  }
  auto txns = read_transactions(dir.path());
  CHECK(txns.size() == 8);
  // The refused 9th level's span went to level 8, and closing the 9th did not close level 8.
  json level8 = transaction_named(txns, "level 8");
  CHECK(level8["contexts"]["trace"]["status"] == "ok");
  CHECK(level8["spans"].size() == 2);
  const spanprof::counters c = spanprof::stats();
  CHECK(c.api_misuse == 1);
  CHECK(c.errors == 1);
  CHECK(c.nested_transactions == 7);
  CHECK(c.transactions_finished == 8);
}

TEST_CASE("api: max_spans_per_transaction caps the spans and counts the rest") {
  temp_dir dir;
  {
    spanprof::config cfg = config_for(dir);
    cfg.max_spans_per_transaction = 10;
    session s(cfg);
    SPANPROF_TRANSACTION("capped");
    for (int i = 0; i < 50; ++i) {
      SPANPROF_SPAN_NAMED(span, "test.op", "span " + std::to_string(i));
      CHECK(span.is_recording() == (i < 10));
    }
  }
  auto txns = read_transactions(dir.path());
  REQUIRE(txns.size() == 1);
  CHECK(txns[0]["spans"].size() == 10);
  CHECK(has_span_described(txns[0], "span 9"));
  CHECK_FALSE(has_span_described(txns[0], "span 10"));
  CHECK(txns[0]["contexts"]["spanprof"]["spans_dropped"] == 40);
  const auto traces = files_ending_with(dir.path(), ".trace.json");
  REQUIRE(traces.size() == 1);
  json trace = read_json(traces[0]);
  CHECK(trace["otherData"]["spans_dropped"] == 40);
  const spanprof::counters c = spanprof::stats();
  CHECK(c.spans_dropped == 40);
  CHECK(c.spans_started == 10);
}
