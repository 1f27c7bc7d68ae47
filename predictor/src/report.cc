#include "ferry/predictor/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>

namespace ferry::predictor {

namespace {

std::size_t column(const FeatureSpec& spec, const std::string& name) {
  const auto names = feature_names(spec);
  return static_cast<std::size_t>(std::find(names.begin(), names.end(), name) - names.begin());
}

float at(const FeatureMatrix& m, std::size_t r, std::size_t c) {
  return c < m.cols ? m.row(r)[c] : kMissing;
}

}  // namespace

std::vector<float> rule_scores(const FeatureMatrix& m, const FeatureSpec& spec) {
  if (spec.schema.kind == DeviceKind::Disk) {
    return smart_rule_scores(m, spec);
  }
  // CPU: how far the slowest core sits below 75 % of its maximum, plus new throttle events.
  const std::size_t cmin = column(spec, "freq_ratio_min"), cthr = column(spec, "throttle_count.d1");
  std::vector<float> s(m.rows(), 0.0f);
  for (std::size_t r = 0; r < m.rows(); ++r) {
    const float mn = at(m, r, cmin), thr = at(m, r, cthr);
    s[r] = (std::isnan(mn) ? 0.0f : std::max(0.0f, 0.75f - mn)) +
           (std::isnan(thr) ? 0.0f : std::max(0.0f, thr));
  }
  return s;
}

std::vector<uint8_t> rule_flags(const FeatureMatrix& m, const FeatureSpec& spec) {
  const auto s = rule_scores(m, spec);
  std::vector<uint8_t> f(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    f[i] = s[i] > 0.0f ? 1 : 0;
  }
  return f;
}

namespace {

using Clock = std::chrono::steady_clock;

PResult<std::pair<RiskModel, double>> timed_train(const Dataset& data, const TimeSplit& split,
                                                  const TrainParams& p) {
  const auto t0 = Clock::now();
  auto model = train_risk_model(data, split, p);
  if (!model) {
    return fail(model.error());
  }
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  return std::pair<RiskModel, double>(std::move(*model), secs);
}

MethodMetrics evaluate_model(const std::string& name, const RiskModel& model,
                             const FeatureMatrix& m, const EvalConfig& config) {
  std::vector<float> scores(m.rows());
  std::vector<double> prob(m.rows());
  for (std::size_t r = 0; r < m.rows(); ++r) {
    scores[r] = model.score_row(m.row(r));
    prob[r] = model.calibration().probability(scores[r]);
  }
  return evaluate_method(name, m, scores, flag_by_cost(m, prob, config.costs), config.eval);
}

}  // namespace

PResult<EvalReport> run_evaluation(const Dataset& data, const EvalConfig& config) {
  auto split = split_by_days(data, config.train_days);
  if (!split) {
    return fail(split.error());
  }
  EvalReport rep;
  rep.split = *split;
  auto ranker = timed_train(data, *split, config.params);
  if (!ranker) {
    return fail(ranker.error());
  }
  rep.ranker_train_seconds = ranker->second;
  const RiskModel& model = ranker->first;
  // Evaluation rows use the normaliser fit on training days (inside the model).
  FeatureMatrix m;
  {
    ModelNormaliser norm = ModelNormaliser::fit(data, split->train_first, split->train_last);
    m = build_matrix(data, model.spec(), norm, split->eval_first, split->eval_last,
                     config.params.horizon);
  }
  if (m.rows() == 0) {
    return perr(PredictorErrc::EmptyDay, "no evaluation rows");
  }
  rep.eval_rows = m.rows();
  rep.eval_positives = static_cast<std::size_t>(std::count(m.label.begin(), m.label.end(), 1.0f));
  rep.methods.push_back(evaluate_model(fmt::format("XGBoost {}", config.params.objective), model, m, config));
  if (config.with_classifier) {
    TrainParams cp = config.params;
    cp.objective = "binary:logistic";
    auto clf = timed_train(data, *split, cp);
    if (!clf) {
      return fail(clf.error());
    }
    rep.classifier_train_seconds = clf->second;
    rep.methods.push_back(evaluate_model("XGBoost binary:logistic", clf->first, m, config));
  }
  const char* rule = data.schema.kind == DeviceKind::Disk ? "SMART rule (5 or 197 > 0)"
                                                          : "rule (min core < 75% or throttle)";
  rep.methods.push_back(
      evaluate_method(rule, m, rule_scores(m, model.spec()), rule_flags(m, model.spec()), config.eval));
  rep.ranker = std::move(ranker->first);
  return rep;
}

std::vector<DeviceTelemetryHistory> histories_as_of(const Dataset& data, int32_t day) {
  std::vector<DeviceTelemetryHistory> out;
  for (const auto& dev : data.devices) {
    const auto& s = dev.history.samples;
    auto end = std::upper_bound(s.begin(), s.end(), day,
                                [](int32_t d, const TelemetrySample& x) { return d < x.day; });
    if (end == s.begin() || std::prev(end)->day != day) {
      continue;
    }
    DeviceTelemetryHistory h{dev.history.device_id, dev.history.host, dev.history.model, {},
                             dev.history.kind};
    h.samples.assign(s.begin(), end);
    out.push_back(std::move(h));
  }
  return out;
}

namespace {

constexpr const char* kColours[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd"};

std::string xml_escape(const std::string& in) {
  std::string out;
  for (char c : in) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

struct Panel {
  double x0, y0, w, h;        // pixel box
  double xmin, xmax, ymin, ymax;
  bool logx = false;
  double px(double x) const {
    const double t = logx ? (std::log10(x) - std::log10(xmin)) / (std::log10(xmax) - std::log10(xmin))
                          : (x - xmin) / (xmax - xmin);
    return x0 + std::clamp(t, 0.0, 1.0) * w;
  }
  double py(double y) const { return y0 + h - std::clamp((y - ymin) / (ymax - ymin), 0.0, 1.0) * h; }
};

std::string axes(const Panel& p, const std::string& title, const std::string& xl, const std::string& yl,
                 const std::vector<double>& xticks, const std::vector<double>& yticks) {
  std::string s = fmt::format(
      "<rect x='{}' y='{}' width='{}' height='{}' fill='none' stroke='#333'/>\n"
      "<text x='{}' y='{}' text-anchor='middle' font-weight='bold'>{}</text>\n"
      "<text x='{}' y='{}' text-anchor='middle'>{}</text>\n"
      "<text transform='translate({},{}) rotate(-90)' text-anchor='middle'>{}</text>\n",
      p.x0, p.y0, p.w, p.h, p.x0 + p.w / 2, p.y0 - 10, title, p.x0 + p.w / 2, p.y0 + p.h + 36, xl,
      p.x0 - 42, p.y0 + p.h / 2, yl);
  for (double t : xticks) {
    s += fmt::format("<text x='{:.1f}' y='{}' text-anchor='middle' font-size='11'>{:g}</text>\n",
                     p.px(t), p.y0 + p.h + 16, t);
  }
  for (double t : yticks) {
    s += fmt::format("<text x='{}' y='{:.1f}' text-anchor='end' font-size='11'>{:g}</text>\n"
                     "<line x1='{}' x2='{}' y1='{:.1f}' y2='{:.1f}' stroke='#ddd'/>\n",
                     p.x0 - 4, p.py(t) + 4, t, p.x0, p.x0 + p.w, p.py(t), p.py(t));
  }
  return s;
}

std::string polyline(const Panel& p, const std::vector<CurvePoint>& pts, const char* colour,
                     bool dashed) {
  std::string s = fmt::format("<polyline fill='none' stroke='{}' stroke-width='2'{} points='",
                              colour, dashed ? " stroke-dasharray='5,4'" : "");
  for (const auto& pt : pts) {
    s += fmt::format("{:.1f},{:.1f} ", p.px(pt.x), p.py(pt.y));
  }
  return s + "'/>\n";
}

}  // namespace

std::string render_svg(const EvalReport& rep, const std::string& title) {
  std::string s =
      "<svg xmlns='http://www.w3.org/2000/svg' width='960' height='440' "
      "font-family='sans-serif' font-size='13'>\n<rect width='100%' height='100%' fill='white'/>\n";
  s += fmt::format("<text x='480' y='22' text-anchor='middle' font-size='15'>{}</text>\n",
                   xml_escape(title));
  const Panel pr{70, 60, 360, 300, 0, 1, 0, 1};
  s += axes(pr, "Precision-recall (drive-days, pooled)", "recall", "precision",
            {0, 0.2, 0.4, 0.6, 0.8, 1}, {0, 0.2, 0.4, 0.6, 0.8, 1});
  double max_lead = 1;
  for (const auto& m : rep.methods) {
    for (const auto& pt : m.lead_curve) {
      max_lead = std::max(max_lead, pt.y);
    }
  }
  const Panel cc{540, 60, 360, 300, 1, 200, 0, 1, true};
  const Panel lc{540, 60, 360, 300, 1, 200, 0, std::ceil(max_lead), true};
  s += axes(cc, "Failures caught (solid) and lead time (dashed)", "flags per day (top N)",
            "failure recall", {1, 2, 5, 10, 20, 50, 100, 200}, {0, 0.25, 0.5, 0.75, 1});
  s += fmt::format("<text transform='translate({},{}) rotate(90)' text-anchor='middle'>mean lead "
                   "(days, 0-{:g})</text>\n",
                   lc.x0 + lc.w + 18, lc.y0 + lc.h / 2, std::ceil(max_lead));
  for (std::size_t i = 0; i < rep.methods.size(); ++i) {
    const auto& m = rep.methods[i];
    const char* colour = kColours[i % 4];
    s += polyline(pr, m.pr_curve, colour, false);
    s += polyline(cc, m.caught_curve, colour, false);
    s += polyline(lc, m.lead_curve, colour, true);
    s += fmt::format("<rect x='{}' y='{}' width='14' height='4' fill='{}'/>"
                     "<text x='{}' y='{}'>{}</text>\n",
                     80 + 300 * i, 410, colour, 100 + 300 * i, 416, xml_escape(m.name));
  }
  return s + "</svg>\n";
}

}  // namespace ferry::predictor
