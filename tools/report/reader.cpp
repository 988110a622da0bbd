// spanprof-report: the Sentry transaction event and profile readers (reader.hpp).
#include "reader.hpp"

#include <charconv>
#include <fstream>
#include <iterator>

namespace spanprof::report {

namespace {

namespace od = simdjson::ondemand;

// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm, public domain description).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

bool digits(std::string_view s, std::size_t at, std::size_t n, int& out) {
  if (at + n > s.size()) return false;
  out = 0;
  for (std::size_t i = at; i < at + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

std::string_view string_or_empty(od::value v) {
  std::string_view s;
  if (v.get_string().get(s) != simdjson::SUCCESS) return {};
  return s;
}

// A number written as a JSON number or as a string of digits (Sentry's profile writes strings).
std::int64_t int_or_zero(od::value v) {
  std::int64_t n = 0;
  if (v.get_int64().get(n) == simdjson::SUCCESS) return n;
  double d = 0;
  if (v.get_double().get(d) == simdjson::SUCCESS) return static_cast<std::int64_t>(d);
  std::string_view s;
  if (v.get_string().get(s) == simdjson::SUCCESS) {
    std::from_chars(s.data(), s.data() + s.size(), n);
    return n;
  }
  return 0;
}

bool bool_or_false(od::value v) {
  bool b = false;
  return v.get_bool().get(b) == simdjson::SUCCESS && b;
}

struct raw_span {
  span s;
  std::string start, end;
};

void read_span_data(od::object data, span& s) {
  for (auto field : data) {
    const std::string_view key = field.unescaped_key();
    od::value v = field.value();
    if (key == "spanprof.inferred") s.inferred = bool_or_false(v);
    else if (key == "spanprof.gap") s.gap = bool_or_false(v);
    else if (key == "spanprof.gap_reason") s.gap_reason = string_or_empty(v);
    else if (key == "spanprof.sample_count") s.sample_count = int_or_zero(v);
    else if (key == "spanprof.duration_error_ns") s.duration_error_ns = int_or_zero(v);
    else if (key == "spanprof.low_confidence") s.low_confidence = bool_or_false(v);
    else if (key == "code.function") s.code_function = string_or_empty(v);
    else if (key == "code.filepath") s.code_filepath = string_or_empty(v);
    else if (key == "code.lineno") s.code_lineno = int_or_zero(v);
  }
}

void read_span(od::object obj, raw_span& r) {
  for (auto field : obj) {
    const std::string_view key = field.unescaped_key();
    od::value v = field.value();
    if (key == "span_id") r.s.span_id = string_or_empty(v);
    else if (key == "parent_span_id") r.s.parent_id = string_or_empty(v);
    else if (key == "op") r.s.op = string_or_empty(v);
    else if (key == "description") r.s.description = string_or_empty(v);
    else if (key == "status") r.s.status = string_or_empty(v);
    else if (key == "start_timestamp") r.start = string_or_empty(v);
    else if (key == "timestamp") r.end = string_or_empty(v);
    else if (key == "data") {
      od::object data;
      if (v.get_object().get(data) == simdjson::SUCCESS) read_span_data(data, r.s);
    }
  }
}

// The transaction event (type "transaction").
bool read_event(std::string_view json, od::parser& parser, transaction& t, std::string& problem) {
  simdjson::padded_string padded(json);
  od::document doc = parser.iterate(padded);
  od::object root = doc.get_object();
  std::string type, start, end;
  std::vector<raw_span> spans;
  for (auto field : root) {
    const std::string_view key = field.unescaped_key();
    od::value v = field.value();
    if (key == "type") type = string_or_empty(v);
    else if (key == "event_id") t.event_id = string_or_empty(v);
    else if (key == "transaction") t.name = string_or_empty(v);
    else if (key == "start_timestamp") start = string_or_empty(v);
    else if (key == "timestamp") end = string_or_empty(v);
    else if (key == "contexts") {
      for (auto ctx : v.get_object()) {
        if (std::string_view(ctx.unescaped_key()) != "trace") continue;
        for (auto tf : ctx.value().get_object()) {
          const std::string_view k = tf.unescaped_key();
          if (k == "op") t.op = string_or_empty(tf.value());
          else if (k == "status") t.status = string_or_empty(tf.value());
          else if (k == "span_id") t.root_span_id = string_or_empty(tf.value());
        }
      }
    } else if (key == "spans") {
      for (auto element : v.get_array()) {
        raw_span r;
        read_span(element.get_object(), r);
        spans.push_back(std::move(r));
      }
    }
  }
  if (type != "transaction") {
    problem = type.empty() ? "not a Sentry transaction event (no \"type\")" : "not a transaction event (type \"" + type + "\")";
    return false;
  }
  const auto start_ns = parse_rfc3339_ns(start), end_ns = parse_rfc3339_ns(end);
  if (!start_ns || !end_ns) {
    problem = "transaction without valid start_timestamp/timestamp";
    return false;
  }
  if (t.name.empty()) {
    problem = "transaction without a name";
    return false;
  }
  t.start_epoch_ns = *start_ns;
  t.end_epoch_ns = *end_ns;
  if (t.status.empty()) t.status = "ok";
  t.spans.reserve(spans.size());
  for (raw_span& r : spans) {
    const auto b = parse_rfc3339_ns(r.start), e = parse_rfc3339_ns(r.end);
    if (!b || !e) continue;  // a span without times cannot be placed; the rest still can
    r.s.start_ns = *b - t.start_epoch_ns;
    r.s.end_ns = *e - t.start_epoch_ns;
    t.spans.push_back(std::move(r.s));
  }
  return true;
}

// The profile (sample format v1): samples relative to the transaction's start.
bool read_profile(std::string_view json, od::parser& parser, transaction& t, std::string& problem) {
  simdjson::padded_string padded(json);
  od::document doc = parser.iterate(padded);
  std::int64_t relative_start_ns = 0;
  for (auto field : doc.get_object()) {
    const std::string_view key = field.unescaped_key();
    if (key == "transaction") {
      for (auto tf : field.value().get_object()) {
        if (std::string_view(tf.unescaped_key()) == "relative_start_ns") relative_start_ns = int_or_zero(tf.value());
      }
    } else if (key == "profile") {
      for (auto pf : field.value().get_object()) {
        const std::string_view k = pf.unescaped_key();
        if (k == "samples") {
          for (auto element : pf.value().get_array()) {
            sample s;
            for (auto sf : element.get_object()) {
              const std::string_view sk = sf.unescaped_key();
              if (sk == "stack_id") s.stack_id = static_cast<std::uint32_t>(int_or_zero(sf.value()));
              else if (sk == "thread_id") s.thread_id = string_or_empty(sf.value());
              else if (sk == "elapsed_since_start_ns") s.t_ns = int_or_zero(sf.value());
            }
            t.samples.push_back(std::move(s));
          }
        } else if (k == "stacks") {
          for (auto element : pf.value().get_array()) {
            std::vector<std::uint32_t> stack;
            for (auto index : element.get_array()) stack.push_back(static_cast<std::uint32_t>(index.get_uint64()));
            t.stacks.push_back(std::move(stack));
          }
        } else if (k == "frames") {
          for (auto element : pf.value().get_array()) {
            frame f;
            for (auto ff : element.get_object()) {
              const std::string_view fk = ff.unescaped_key();
              if (fk == "function") f.function = string_or_empty(ff.value());
              else if (fk == "abs_path") f.file = string_or_empty(ff.value());
              else if (fk == "filename" && f.file.empty()) f.file = string_or_empty(ff.value());
              else if (fk == "lineno") f.line = int_or_zero(ff.value());
            }
            t.frames.push_back(std::move(f));
          }
        }
      }
    }
  }
  for (sample& s : t.samples) s.t_ns -= relative_start_ns;
  // Indices must point somewhere: a profile that says otherwise is not ours.
  for (const auto& stack : t.stacks) {
    for (const std::uint32_t f : stack) {
      if (f >= t.frames.size()) {
        problem = "profile stack names a frame it does not have";
        return false;
      }
    }
  }
  for (const sample& s : t.samples) {
    if (s.stack_id >= t.stacks.size()) {
      problem = "profile sample names a stack it does not have";
      return false;
    }
  }
  t.has_profile = true;
  return true;
}

// An envelope: a header line, then items, each a header line with the payload's byte `length`.
bool read_envelope(std::string_view bytes, od::parser& parser, transaction& t, std::string& problem) {
  std::size_t at = bytes.find('\n');
  if (at == std::string_view::npos) {
    problem = "not an envelope (no header line)";
    return false;
  }
  ++at;
  bool have_event = false;
  std::string_view profile;
  while (at < bytes.size()) {
    const std::size_t eol = bytes.find('\n', at);
    const std::string_view header = bytes.substr(at, eol == std::string_view::npos ? std::string_view::npos : eol - at);
    if (header.empty()) break;
    std::string type;
    std::int64_t length = -1;
    {
      simdjson::padded_string padded(header);
      od::document doc = parser.iterate(padded);
      for (auto field : doc.get_object()) {
        const std::string_view key = field.unescaped_key();
        if (key == "type") type = string_or_empty(field.value());
        else if (key == "length") length = int_or_zero(field.value());
      }
    }
    if (eol == std::string_view::npos || length < 0 || eol + 1 + static_cast<std::size_t>(length) > bytes.size()) {
      problem = "envelope item \"" + type + "\" is truncated or has no length";
      return false;
    }
    const std::string_view payload = bytes.substr(eol + 1, static_cast<std::size_t>(length));
    if (type == "transaction") {
      if (!read_event(payload, parser, t, problem)) return false;
      have_event = true;
    } else if (type == "profile") {
      profile = payload;
    }
    at = eol + 1 + static_cast<std::size_t>(length);
    if (at < bytes.size() && bytes[at] == '\n') ++at;
  }
  if (!have_event) {
    problem = "envelope without a transaction item";
    return false;
  }
  if (!profile.empty()) return read_profile(profile, parser, t, problem);
  return true;
}

}  // namespace

std::optional<std::int64_t> parse_rfc3339_ns(std::string_view s) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  if (!digits(s, 0, 4, y) || s.size() < 20 || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' || !digits(s, 8, 2, d) ||
      (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(s, 11, 2, h) || s[13] != ':' || !digits(s, 14, 2, mi) ||
      s[16] != ':' || !digits(s, 17, 2, sec)) {
    return std::nullopt;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  std::size_t at = 19;
  std::int64_t frac_ns = 0;
  if (at < s.size() && s[at] == '.') {
    ++at;
    std::int64_t scale = 100'000'000;
    const std::size_t begin = at;
    while (at < s.size() && s[at] >= '0' && s[at] <= '9') {
      frac_ns += (s[at] - '0') * scale;
      scale /= 10;
      ++at;
    }
    if (at == begin) return std::nullopt;
  }
  std::int64_t offset_s = 0;
  if (at < s.size() && (s[at] == 'Z' || s[at] == 'z')) {
    ++at;
  } else if (at < s.size() && (s[at] == '+' || s[at] == '-')) {
    int oh = 0, om = 0;
    if (!digits(s, at + 1, 2, oh) || at + 3 >= s.size() || s[at + 3] != ':' || !digits(s, at + 4, 2, om)) return std::nullopt;
    offset_s = (s[at] == '+' ? 1 : -1) * (oh * 3600 + om * 60);
    at += 6;
  } else {
    return std::nullopt;
  }
  if (at != s.size()) return std::nullopt;
  const std::int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  const std::int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - offset_s;
  return secs * 1'000'000'000 + frac_ns;
}

bool read_transaction_file(const std::string& path, od::parser& parser, transaction& out, std::string& problem) {
  out = transaction{};
  out.path = path;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    problem = "cannot open";
    return false;
  }
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) {
    problem = "read error";
    return false;
  }
  if (bytes.empty()) {
    problem = "empty file";
    return false;
  }
  try {
    const bool envelope = path.size() >= 9 && path.compare(path.size() - 9, 9, ".envelope") == 0;
    return envelope ? read_envelope(bytes, parser, out, problem) : read_event(bytes, parser, out, problem);
  } catch (const simdjson::simdjson_error& e) {
    problem = std::string("invalid JSON: ") + e.what();
  } catch (const std::exception& e) {
    problem = e.what();
  }
  return false;
}

}  // namespace spanprof::report
