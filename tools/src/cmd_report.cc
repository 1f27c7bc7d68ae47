// `ferry report FILE [--svg OUT]`: renders a migration report JSON for a person -- a table
// on stdout and, with --svg, a timeline picture.
#include <fmt/format.h>

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "ferry/migration/report_render.h"

namespace ferry::tools {

void add_report_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("report", "Render a migration report (JSON) as a table and SVG");
  auto file = std::make_shared<std::string>();
  auto svg = std::make_shared<std::string>();
  cmd->add_option("file", *file, "report JSON written by `ferry migrate --report`")->required();
  cmd->add_option("--svg", *svg, "also write a timeline picture (SVG) to this path");
  cmd->callback([file, svg, &exit_code] {
    std::ifstream in(*file);
    if (!in) {
      fmt::print(stderr, "ferry report: cannot open {}\n", *file);
      exit_code = 1;
      return;
    }
    nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      fmt::print(stderr, "ferry report: {} is not a JSON object\n", *file);
      exit_code = 1;
      return;
    }
    std::cout << migration::render_report_table(j);
    if (!svg->empty()) {
      std::ofstream out(*svg);
      out << migration::render_report_svg(j);
      if (!out) {
        fmt::print(stderr, "ferry report: cannot write {}\n", *svg);
        exit_code = 1;
        return;
      }
      fmt::print("timeline written to {}\n", *svg);
    }
    exit_code = 0;
  });
}

}  // namespace ferry::tools
