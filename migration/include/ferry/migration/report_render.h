// Renders a migration report (the JSON written by `ferry migrate --report`) for a person:
// a plain-text table for the terminal and an SVG timeline (phases, rounds, blackout,
// per-round throughput). Used by `ferry report`; works from JSON so older reports render.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>

namespace ferry::migration {

/// Summary, phases, rounds and convergence decisions as aligned text tables.
std::string render_report_table(const nlohmann::json& report);

/// A self-contained SVG document: phase timeline with rounds and blackout marked, and
/// bars of guest bytes and wire bytes per round.
std::string render_report_svg(const nlohmann::json& report);

/// One terminal line for a progress event (`ferry migrate` redraws it in place):
/// "brownout  round 3  remaining 12.0 MiB  rate 450.0 MiB/s  ETA 0.03 s  throttle 20%".
std::string render_progress_line(const nlohmann::json& e);

/// Human units: "1.5 GiB", "12.0 ms".
std::string format_bytes(double bytes);
std::string format_ns(double ns);

}  // namespace ferry::migration
