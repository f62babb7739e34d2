// Prometheus metrics: a small registry of counters and histograms, and the renderer of the text
// exposition format 0.0.4 that GET /metrics answers with (docs/operations.md, "Metrics").
//
// Two kinds of values end up in one exposition:
//   - instruments, updated on hot paths: Counter and Histogram, grouped in a Family by the values
//     of its labels ({"route", "code"}). An update is a relaxed atomic add: no lock, no allocation.
//     Looking a labelled child up (Family::with) is lock-free too (an open-addressed table of
//     atomic pointers); callers with fixed label values look up once and keep the reference.
//   - values read at scrape time (job counts, membership, the core's counters): a collector given
//     to Registry::add_collector writes them through a Writer when render() runs.
//
// Pure: no sockets, threads or clocks; the caller measures the durations it observes.
// Thread-safety: Counter, Histogram and Family::with from any thread at any time. Registering
// families and collectors and render() from any thread (a mutex orders them; updates never take
// it). A Writer belongs to one render.
// Invariants:
//   1. Every family has a valid, unique metric name and HELP text; a counter's name ends in
//      `_total`; label names are valid and never `le` (histograms own it).
//   2. A family never holds more than kSeriesMax children; updates for more label sets go to an
//      unrendered overflow child and are counted in Registry::overflowed().
//   3. A histogram's bounds are finite and strictly increasing; its rendered buckets are
//      cumulative and the `+Inf` bucket equals `_count`, whatever updates race with the render.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace meshwork::api::metrics {

inline constexpr size_t kSeriesMax = 256;  // children (label sets) per family
inline constexpr size_t kLabelsMax = 4;    // labels per family
inline constexpr size_t kBucketsMax = 32;  // finite bounds per histogram
inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

enum class Type { counter, gauge, histogram };

struct Label {
  std::string_view name;
  std::string_view value;
};

// True for [a-zA-Z_:][a-zA-Z0-9_:]* (metric names) and [a-zA-Z_][a-zA-Z0-9_]* (label names).
[[nodiscard]] bool valid_metric_name(std::string_view name);
[[nodiscard]] bool valid_label_name(std::string_view name);
// Escapes a label value (\\, \", \n) and HELP text (\\, \n) as the text format wants them.
[[nodiscard]] std::string escape_label_value(std::string_view value);
[[nodiscard]] std::string escape_help(std::string_view help);
// A sample value as Go's ParseFloat reads it back exactly: "3", "0.25", "+Inf", "NaN".
[[nodiscard]] std::string format_value(double v);

class Counter {
 public:
  void inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  [[nodiscard]] uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Histogram {
 public:
  // `bounds`: the upper bounds of the finite buckets (checked: invariant 3).
  explicit Histogram(std::span<const double> bounds);

  // Counts `v` in the first bucket whose bound is >= v (else in +Inf) and adds it to the sum.
  void observe(double v);

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf (== count)
    double sum = 0;
  };
  [[nodiscard]] Snapshot snapshot() const;

 private:
  std::vector<double> bounds_;
  std::array<std::atomic<uint64_t>, kBucketsMax + 1> counts_{};  // per bucket, not cumulative
  std::atomic<double> sum_{0};
};

// Writes one exposition. Families in the order begun; each sample belongs to the last family
// begun. Checks what it is given (invariant 1): a bad name is a programming error and stops.
class Writer {
 public:
  void family(std::string_view name, std::string_view help, Type type);
  void sample(std::span<const Label> labels, double value);
  void sample(std::span<const Label> labels, uint64_t value);
  void sample(std::span<const Label> labels, const Histogram::Snapshot& h);
  // Convenience for a family of one sample without labels.
  void single(std::string_view name, std::string_view help, Type type, uint64_t value);

  [[nodiscard]] std::string take() { return std::move(out_); }

 private:
  void line(std::string_view suffix, std::span<const Label> labels, const Label* extra,
            std::string_view value);

  std::string out_;
  std::string name_;  // the current family
  Type type_ = Type::gauge;
  std::vector<std::string> names_;  // every family so far, to refuse a second one
};

// Children of a family, one per set of label values (invariant 2).
template <typename T>
class Family {
 public:
  using Make = std::function<std::unique_ptr<T>()>;
  Family(std::vector<std::string> label_names, Make make, std::atomic<uint64_t>& overflowed);
  ~Family();
  Family(const Family&) = delete;
  Family& operator=(const Family&) = delete;

  // The child for these label values (as many as label names), made on first use. The reference
  // stays valid as long as the family.
  [[nodiscard]] T& with(std::initializer_list<std::string_view> values);

  // Every child (not the overflow), ordered by label values.
  void each(const std::function<void(std::span<const Label>, const T&)>& fn) const;

 private:
  struct Child {
    std::vector<std::string> values;
    std::unique_ptr<T> metric;
  };
  [[nodiscard]] bool matches(const Child& c, std::initializer_list<std::string_view> v) const;

  std::vector<std::string> label_names_;
  Make make_;
  std::array<std::atomic<Child*>, kSeriesMax> slots_{};
  std::unique_ptr<T> overflow_;
  std::atomic<uint64_t>& overflowed_;
};

class Registry {
 public:
  using Collector = std::function<void(Writer&)>;

  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Registers a family of instruments; rendered in registration order, before the collectors.
  Family<Counter>& counter(std::string name, std::string help,
                           std::vector<std::string> label_names = {});
  Family<Histogram>& histogram(std::string name, std::string help, std::vector<double> bounds,
                               std::vector<std::string> label_names = {});
  // Runs on every render(), in the order added, after the instruments.
  void add_collector(Collector c);

  // The whole exposition (UTF-8 text, kContentType).
  [[nodiscard]] std::string render() const;
  // Updates that found their family full (invariant 2).
  [[nodiscard]] uint64_t overflowed() const { return overflowed_.load(); }

 private:
  struct Entry {
    std::string name, help;
    std::unique_ptr<Family<Counter>> counters;
    std::unique_ptr<Family<Histogram>> histograms;
  };
  void check_new(const std::string& name, const std::vector<std::string>& label_names) const;

  mutable std::mutex mu_;  // guards entries_ and collectors_ (never taken by an update)
  std::vector<Entry> entries_;
  std::vector<Collector> collectors_;
  std::atomic<uint64_t> overflowed_{0};
};

}  // namespace meshwork::api::metrics
