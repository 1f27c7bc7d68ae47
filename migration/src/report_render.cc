#include "ferry/migration/report_render.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

namespace ferry::migration {

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (std::fabs(bytes) >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} {}", bytes, units[u])
                : fmt::format("{:.1f} {}", bytes, units[u]);
}

std::string format_ns(double ns) {
  if (ns >= 1e9) {
    return fmt::format("{:.2f} s", ns / 1e9);
  }
  if (ns >= 1e6) {
    return fmt::format("{:.1f} ms", ns / 1e6);
  }
  return fmt::format("{:.0f} us", ns / 1e3);
}

namespace {

double num(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : 0.0;
}

std::string str(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

const nlohmann::json& arr(const nlohmann::json& j, const char* key) {
  static const nlohmann::json kEmpty = nlohmann::json::array();  // constant, no state
  auto it = j.find(key);
  return it != j.end() && it->is_array() ? *it : kEmpty;
}

std::string escape_xml(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

void summary_table(const nlohmann::json& r, std::string& out) {
  out += fmt::format("Migration report ({}), outcome: {}\n", str(r, "role"), str(r, "outcome"));
  if (!str(r, "error").empty()) {
    out += fmt::format("  error: {}\n", str(r, "error"));
  }
  auto row = [&](const char* k, const std::string& v) { out += fmt::format("  {:<26}{}\n", k, v); };
  row("peer", str(r, "peer"));
  row("total time", format_ns(num(r, "total_ns")));
  row("blackout (dest)", format_ns(num(r, "blackout_ns")));
  row("blackout (source)", format_ns(num(r, "source_blackout_ns")));
  row("downtime target", format_ns(num(r, "downtime_target_ns")));
  row("memory", format_bytes(num(r, "memory_bytes")));
  row("vcpus", fmt::format("{}", num(r, "vcpus")));
  row("channels", fmt::format("{}", num(r, "channels")));
  row("compression", str(r, "compression"));
  row("guest bytes moved", format_bytes(num(r, "guest_bytes")));
  row("disk bytes moved", format_bytes(num(r, "disk_bytes")));
  row("bytes on the wire", format_bytes(num(r, "wire_bytes")));
  row("compression ratio", fmt::format("{:.2f}", num(r, "compression_ratio")));
  row("max throttle", fmt::format("{}%", num(r, "max_throttle_percent")));
  row("digest time", format_ns(num(r, "digest_ns")));
  row("machine state", format_bytes(num(r, "machine_state_bytes")));
  if (auto c = r.find("codecs"); c != r.end() && c->is_object()) {
    row("pages zero/same/raw/zstd", fmt::format("{}/{}/{}/{}", num(*c, "zero"), num(*c, "same"),
                                                num(*c, "raw"), num(*c, "zstd")));
  }
}

}  // namespace

std::string render_progress_line(const nlohmann::json& e) {
  const double eta = num(e, "eta_s");
  std::string line = fmt::format(
      "{:<13} round {:>3}  remaining {:>10}  rate {:>10}/s  ETA {:>8}", str(e, "phase"),
      num(e, "round"), format_bytes(num(e, "remaining_bytes")),
      format_bytes(num(e, "rate_bytes_per_s")), eta < 0 ? std::string("?") : format_ns(eta * 1e9));
  if (num(e, "throttle_percent") > 0) {
    line += fmt::format("  throttle {}%", num(e, "throttle_percent"));
  }
  return line;
}

std::string render_report_table(const nlohmann::json& r) {
  std::string out;
  summary_table(r, out);
  out += "\nPhases\n";
  out += fmt::format("  {:<15}{:>12}\n", "phase", "duration");
  for (const auto& p : arr(r, "phases")) {
    out += fmt::format("  {:<15}{:>12}\n", str(p, "phase"), format_ns(num(p, "duration_ns")));
  }
  out += "\nRounds\n";
  out += fmt::format("  {:>5} {:>9} {:>9} {:>7} {:>9} {:>10} {:>10} {:>11} {:>12} {:>10} {:>9}\n",
                     "round", "pages", "zero", "same", "zstd", "disk", "wire", "dirty found",
                     "throughput", "duration", "throttle");
  for (const auto& rd : arr(r, "rounds")) {
    const nlohmann::json& c = rd.contains("codecs") ? rd["codecs"] : nlohmann::json::object();
    out += fmt::format(
        "  {:>4}{} {:>9} {:>9} {:>7} {:>9} {:>10} {:>10} {:>11} {:>10}/s {:>10} {:>8}%\n",
        num(rd, "round"), rd.value("blackout", false) ? "*" : " ", num(rd, "pages_sent"),
        num(c, "zero"), num(c, "same"), num(c, "zstd"), format_bytes(num(rd, "disk_bytes_sent")),
        format_bytes(num(rd, "wire_bytes")), num(rd, "dirty_pages_found"),
        format_bytes(num(rd, "throughput_bytes_per_s")), format_ns(num(rd, "duration_ns")),
        num(rd, "throttle_percent"));
  }
  out += "  (* = blackout round, guest paused)\n";
  const auto& decisions = arr(r, "decisions");
  if (!decisions.empty()) {
    out += "\nConvergence decisions\n";
    for (const auto& d : decisions) {
      out += fmt::format("  after round {:>3}: {:<11} throttle {:>2}%  predicted {:>9}  {}\n",
                         num(d, "iteration"), str(d, "action"), num(d, "throttle_percent"),
                         format_ns(num(d, "predicted_downtime_ms") * 1e6), str(d, "reason"));
    }
  }
  return out;
}

namespace {

// Horizontal mapping of CLOCK_REALTIME ns onto the plot area.
struct TimeAxis {
  static constexpr double kW = 960, kLeft = 110, kRight = 30, kPlotW = kW - kLeft - kRight;
  double t0 = 0;
  double total = 1;
  double x(double t) const { return kLeft + kPlotW * std::clamp((t - t0) / total, 0.0, 1.0); }
};

void svg_phases(const nlohmann::json& r, const TimeAxis& ax, std::string& s) {
  auto x = [&](double t) { return ax.x(t); };
  // Phase lane.
  const char* colors[] = {"#9e9e9e", "#9e9e9e", "#f5b041", "#e74c3c", "#5dade2", "#58d68d"};
  s += "<text x=\"10\" y=\"62\">phases</text>\n";
  for (const auto& p : arr(r, "phases")) {
    const std::string name = str(p, "phase");
    int idx = name == "pre-migration" ? 1
              : name == "brownout"    ? 2
              : name == "blackout"    ? 3
              : name == "commit"      ? 4
                                      : 5;
    double x0 = x(num(p, "start_ns")), x1 = std::max(x0 + 1, x(num(p, "end_ns")));
    s += fmt::format(
        "<rect x=\"{:.1f}\" y=\"45\" width=\"{:.1f}\" height=\"26\" fill=\"{}\">"
        "<title>{} {}</title></rect>\n",
        x0, x1 - x0, colors[idx], escape_xml(name), format_ns(num(p, "duration_ns")));
    if (x1 - x0 > 60) {
      s += fmt::format("<text x=\"{:.1f}\" y=\"62\" fill=\"black\">{}</text>\n", x0 + 4,
                       escape_xml(name));
    }
  }
}

void svg_rounds(const nlohmann::json& r, const TimeAxis& ax, std::string& s) {
  constexpr double kLeft = TimeAxis::kLeft, kPlotW = TimeAxis::kPlotW;
  auto x = [&](double t) { return ax.x(t); };
  const auto& rounds = arr(r, "rounds");
  // Round lane: one rectangle per round; height of the bars below = guest and wire bytes.
  s += "<text x=\"10\" y=\"100\">rounds</text>\n";
  double max_bytes = 1;
  for (const auto& rd : rounds) {
    max_bytes = std::max({max_bytes, num(rd, "pages_sent") * 4096 + num(rd, "disk_bytes_sent"),
                          num(rd, "wire_bytes")});
  }
  const double bar_base = 320, bar_h = 160;
  s += "<text x=\"10\" y=\"245\">bytes/round</text>\n";
  s += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"black\"/>\n", kLeft,
                   bar_base, kLeft + kPlotW);
  const double slot = kPlotW / std::max<size_t>(1, rounds.size());
  for (size_t i = 0; i < rounds.size(); ++i) {
    const auto& rd = rounds[i];
    const bool blackout = rd.value("blackout", false);
    if (num(rd, "start_ns") > 0) {
      double x0 = x(num(rd, "start_ns"));
      double x1 = std::max(x0 + 2, x(num(rd, "start_ns") + num(rd, "duration_ns")));
      s += fmt::format(
          "<rect x=\"{:.1f}\" y=\"85\" width=\"{:.1f}\" height=\"20\" fill=\"{}\" "
          "stroke=\"white\"><title>round {} {}: {} pages</title></rect>\n",
          x0, x1 - x0, blackout ? "#e74c3c" : "#2e86c1", num(rd, "round"),
          format_ns(num(rd, "duration_ns")), num(rd, "pages_sent"));
    }
    double guest = num(rd, "pages_sent") * 4096 + num(rd, "disk_bytes_sent");
    double wire = num(rd, "wire_bytes");
    double gx = kLeft + slot * i + slot * 0.1, bw = slot * 0.38;
    double gh = bar_h * guest / max_bytes, wh = bar_h * wire / max_bytes;
    s += fmt::format(
        "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" "
        "fill=\"#85c1e9\"><title>round {} guest {}</title></rect>\n",
        gx, bar_base - gh, bw, gh, num(rd, "round"), format_bytes(guest));
    s += fmt::format(
        "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" "
        "fill=\"#1b4f72\"><title>round {} wire {}</title></rect>\n",
        gx + bw, bar_base - wh, bw, wh, num(rd, "round"), format_bytes(wire));
    if (slot > 18) {
      s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}{}</text>\n",
                       gx + bw, bar_base + 14, num(rd, "round"), blackout ? "*" : "");
    }
  }
}

void svg_blackout_and_axis(const nlohmann::json& r, const TimeAxis& ax, std::string& s) {
  constexpr double kLeft = TimeAxis::kLeft, kPlotW = TimeAxis::kPlotW;
  auto x = [&](double t) { return ax.x(t); };
  const double total = ax.total;
  // Blackout marker: source pause -> destination resume.
  if (num(r, "pause_ns") > 0 && num(r, "resume_ns") > 0) {
    double x0 = x(num(r, "pause_ns")), x1 = std::max(x0 + 2, x(num(r, "resume_ns")));
    s += fmt::format(
        "<rect x=\"{:.1f}\" y=\"40\" width=\"{:.1f}\" height=\"70\" fill=\"none\" "
        "stroke=\"#c0392b\" stroke-width=\"2\"><title>blackout {}</title></rect>\n",
        x0, x1 - x0, format_ns(num(r, "blackout_ns")));
  }
  // Time axis.
  s += fmt::format("<line x1=\"{0}\" y1=\"120\" x2=\"{1}\" y2=\"120\" stroke=\"black\"/>\n", kLeft,
                   kLeft + kPlotW);
  for (int i = 0; i <= 5; ++i) {
    double t = total * i / 5;
    double px = kLeft + kPlotW * i / 5;
    s += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"117\" x2=\"{0:.1f}\" y2=\"123\" stroke=\"black\"/>"
        "<text x=\"{0:.1f}\" y=\"136\" text-anchor=\"middle\">{1}</text>\n",
        px, format_ns(t));
  }
}

}  // namespace

std::string render_report_svg(const nlohmann::json& r) {
  TimeAxis ax;
  ax.t0 = num(r, "start_ns");
  ax.total = std::max(1.0, num(r, "end_ns") - ax.t0);
  constexpr double kW = TimeAxis::kW, kLeft = TimeAxis::kLeft;
  const double h = 360;
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" "
      "viewBox=\"0 0 {0} {1}\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">Ferry migration ({2}, {3}): "
      "total {4}, blackout {5}</text>\n",
      kW, h, escape_xml(str(r, "role")), escape_xml(str(r, "outcome")),
      format_ns(num(r, "total_ns")), format_ns(num(r, "blackout_ns")));
  svg_phases(r, ax, s);
  svg_rounds(r, ax, s);
  svg_blackout_and_axis(r, ax, s);
  s += fmt::format(
      "<text x=\"{}\" y=\"352\" fill=\"#555\">light: guest bytes, dark: wire bytes; "
      "* = blackout round; red box = blackout (pause to resume)</text>\n",
      kLeft);
  s += "</svg>\n";
  return s;
}

}  // namespace ferry::migration
