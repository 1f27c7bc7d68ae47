// Every `ferry` subcommand registers itself on the root CLI11 app through one function
// declared here. A subcommand's callback stores its process exit code in `exit_code`;
// errors are printed as "ferry <cmd>: <message>" on stderr by the subcommand itself.
#pragma once

#include <CLI/CLI.hpp>

namespace ferry::tools {

void add_run_command(CLI::App& app, int& exit_code);
void add_ctl_command(CLI::App& app, int& exit_code);
void add_migrate_command(CLI::App& app, int& exit_code);
void add_demo_command(CLI::App& app, int& exit_code);
void add_model_command(CLI::App& app, int& exit_code);
void add_report_command(CLI::App& app, int& exit_code);
void add_tls_command(CLI::App& app, int& exit_code);
void add_agent_command(CLI::App& app, int& exit_code);
void add_fleet_command(CLI::App& app, int& exit_code);

}  // namespace ferry::tools
