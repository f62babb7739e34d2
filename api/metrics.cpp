// Prometheus metrics: registry and text exposition; see metrics.h.
#include "api/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "node/check.h"

namespace meshwork::api::metrics {
namespace {

bool name_char(char c, bool first, bool colon) {
  const bool alpha =
      (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
  return alpha || (!first && c >= '0' && c <= '9');
}

bool valid_name(std::string_view name, bool colon) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i)
    if (!name_char(name[i], i == 0, colon)) return false;
  return true;
}

// FNV-1a over the label values, each ended by a separator (a collision only costs a probe).
size_t hash_values(std::initializer_list<std::string_view> values) {
  uint64_t h = 1469598103934665603ull;
  for (std::string_view v : values) {
    for (char c : v) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
    h = (h ^ 0xffu) * 1099511628211ull;
  }
  return static_cast<size_t>(h);
}

// A backslash before backslashes (and double quotes, in a label value); newlines as \n.
std::string escape(std::string_view text, bool quotes) {
  std::string out;
  out.reserve(text.size());
  for (const char& c : text) {
    if (c == '\\' || (quotes && c == '"')) out += '\\';
    out += c == '\n' ? std::string_view("\\n") : std::string_view(&c, 1);
  }
  return out;
}

}  // namespace

bool valid_metric_name(std::string_view name) {
  return valid_name(name, true);
}

bool valid_label_name(std::string_view name) {
  return valid_name(name, false) && !name.starts_with("__");
}

std::string escape_label_value(std::string_view value) {
  return escape(value, /*quotes=*/true);
}

std::string escape_help(std::string_view help) {
  return escape(help, /*quotes=*/false);
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // The shortest form that reads back exactly; plain decimals where they stay short, so that a
  // bucket bound reads "0.0005", not "5e-04".
  const double a = std::fabs(v);
  const auto format =
      a == 0 || (a >= 1e-6 && a < 1e15) ? std::chars_format::fixed : std::chars_format::general;
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, format);
  MESHWORK_CHECK(ec == std::errc());
  return std::string(buf, end);
}

// ---- Histogram ----

Histogram::Histogram(std::span<const double> bounds) : bounds_(bounds.begin(), bounds.end()) {
  MESHWORK_CHECK(bounds_.size() <= kBucketsMax);
  for (size_t i = 0; i < bounds_.size(); ++i) {
    MESHWORK_CHECK(std::isfinite(bounds_[i]));
    MESHWORK_CHECK(i == 0 || bounds_[i - 1] < bounds_[i]);
  }
}

void Histogram::observe(double v) {
  const size_t i = size_t(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.bounds = bounds_;
  s.cumulative.reserve(bounds_.size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += counts_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(total);
  }
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

// ---- Writer ----

void Writer::family(std::string_view name, std::string_view help, Type type) {
  MESHWORK_CHECK(valid_metric_name(name) && !help.empty());
  MESHWORK_CHECK(type != Type::counter || name.ends_with("_total"));
  MESHWORK_CHECK(std::find(names_.begin(), names_.end(), name) == names_.end());
  names_.emplace_back(name);
  name_ = name;
  type_ = type;
  static constexpr std::string_view kTypes[] = {"counter", "gauge", "histogram"};
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  out_ += escape_help(help);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += kTypes[static_cast<size_t>(type)];
  out_ += '\n';
}

void Writer::line(std::string_view suffix, std::span<const Label> labels, const Label* extra,
                  std::string_view value) {
  out_ += name_;
  out_ += suffix;
  if (!labels.empty() || extra) {
    out_ += '{';
    bool first = true;
    auto add = [&](const Label& l) {
      MESHWORK_CHECK(valid_label_name(l.name));
      if (!first) out_ += ',';
      first = false;
      out_ += l.name;
      out_ += "=\"";
      out_ += escape_label_value(l.value);
      out_ += '"';
    };
    for (const Label& l : labels) add(l);
    if (extra) add(*extra);
    out_ += '}';
  }
  out_ += ' ';
  out_ += value;
  out_ += '\n';
}

void Writer::sample(std::span<const Label> labels, double value) {
  MESHWORK_CHECK(!name_.empty() && type_ != Type::histogram);
  line("", labels, nullptr, format_value(value));
}

void Writer::sample(std::span<const Label> labels, uint64_t value) {
  MESHWORK_CHECK(!name_.empty() && type_ != Type::histogram);
  line("", labels, nullptr, std::to_string(value));
}

void Writer::sample(std::span<const Label> labels, const Histogram::Snapshot& h) {
  MESHWORK_CHECK(type_ == Type::histogram && h.cumulative.size() == h.bounds.size() + 1);
  for (const Label& l : labels) MESHWORK_CHECK(l.name != "le");
  for (size_t i = 0; i <= h.bounds.size(); ++i) {
    const std::string le = i < h.bounds.size() ? format_value(h.bounds[i]) : "+Inf";
    const Label bucket{"le", le};
    line("_bucket", labels, &bucket, std::to_string(h.cumulative[i]));
  }
  line("_sum", labels, nullptr, format_value(h.sum));
  line("_count", labels, nullptr, std::to_string(h.cumulative.back()));
}

void Writer::single(std::string_view name, std::string_view help, Type type, uint64_t value) {
  family(name, help, type);
  sample({}, value);
}

// ---- Family ----

template <typename T>
Family<T>::Family(std::vector<std::string> label_names, Make make,
                  std::atomic<uint64_t>& overflowed)
    : label_names_(std::move(label_names)),
      make_(std::move(make)),
      overflow_(make_()),
      overflowed_(overflowed) {}

template <typename T>
Family<T>::~Family() {
  for (auto& slot : slots_) delete slot.load();
}

template <typename T>
bool Family<T>::matches(const Child& c, std::initializer_list<std::string_view> v) const {
  return std::equal(c.values.begin(), c.values.end(), v.begin(), v.end());
}

// Open addressing with linear probing. A slot goes from null to a child once (CAS) and never
// changes again, so a reader that sees a child may use it without a lock.
template <typename T>
T& Family<T>::with(std::initializer_list<std::string_view> values) {
  MESHWORK_CHECK(values.size() == label_names_.size());
  const size_t start = hash_values(values) % kSeriesMax;
  std::unique_ptr<Child> made;
  for (size_t k = 0; k < kSeriesMax; ++k) {
    std::atomic<Child*>& slot = slots_[(start + k) % kSeriesMax];
    Child* c = slot.load(std::memory_order_acquire);
    if (!c) {
      if (!made)
        made.reset(new Child{std::vector<std::string>(values.begin(), values.end()), make_()});
      if (slot.compare_exchange_strong(c, made.get(), std::memory_order_acq_rel))
        return *made.release()->metric;
      // Another thread filled the slot first; `c` is its child.
    }
    if (matches(*c, values)) return *c->metric;
  }
  overflowed_.fetch_add(1, std::memory_order_relaxed);
  return *overflow_;
}

template <typename T>
void Family<T>::each(const std::function<void(std::span<const Label>, const T&)>& fn) const {
  std::vector<const Child*> children;
  for (const auto& slot : slots_)
    if (const Child* c = slot.load(std::memory_order_acquire)) children.push_back(c);
  std::sort(children.begin(), children.end(),
            [](const Child* a, const Child* b) { return a->values < b->values; });
  std::vector<Label> labels(label_names_.size());
  for (const Child* c : children) {
    for (size_t i = 0; i < labels.size(); ++i) labels[i] = {label_names_[i], c->values[i]};
    fn(labels, *c->metric);
  }
}

template class Family<Counter>;
template class Family<Histogram>;

// ---- Registry ----

void Registry::check_new(const std::string& name,
                         const std::vector<std::string>& label_names) const {
  MESHWORK_CHECK(valid_metric_name(name) && label_names.size() <= kLabelsMax);
  for (const std::string& l : label_names) MESHWORK_CHECK(valid_label_name(l) && l != "le");
  for (const Entry& e : entries_) MESHWORK_CHECK(e.name != name);
}

Family<Counter>& Registry::counter(std::string name, std::string help,
                                   std::vector<std::string> label_names) {
  std::lock_guard lock(mu_);
  check_new(name, label_names);
  MESHWORK_CHECK(name.ends_with("_total"));
  auto family = std::make_unique<Family<Counter>>(
      std::move(label_names), [] { return std::make_unique<Counter>(); }, overflowed_);
  Family<Counter>& ref = *family;
  entries_.push_back(Entry{std::move(name), std::move(help), std::move(family), nullptr});
  return ref;
}

Family<Histogram>& Registry::histogram(std::string name, std::string help,
                                       std::vector<double> bounds,
                                       std::vector<std::string> label_names) {
  std::lock_guard lock(mu_);
  check_new(name, label_names);
  (void)Histogram(bounds);  // checks the bounds now, not at the first observation
  auto family = std::make_unique<Family<Histogram>>(
      std::move(label_names), [b = std::move(bounds)] { return std::make_unique<Histogram>(b); },
      overflowed_);
  Family<Histogram>& ref = *family;
  entries_.push_back(Entry{std::move(name), std::move(help), nullptr, std::move(family)});
  return ref;
}

void Registry::add_collector(Collector c) {
  std::lock_guard lock(mu_);
  collectors_.push_back(std::move(c));
}

std::string Registry::render() const {
  std::lock_guard lock(mu_);
  Writer w;
  for (const Entry& e : entries_) {
    if (e.counters) {
      w.family(e.name, e.help, Type::counter);
      e.counters->each([&](std::span<const Label> l, const Counter& c) { w.sample(l, c.value()); });
    } else {
      w.family(e.name, e.help, Type::histogram);
      e.histograms->each(
          [&](std::span<const Label> l, const Histogram& h) { w.sample(l, h.snapshot()); });
    }
  }
  for (const Collector& c : collectors_) c(w);
  return w.take();
}

}  // namespace meshwork::api::metrics
