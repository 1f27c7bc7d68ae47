// ferry: one binary, one subcommand per job (run, migrate, model, agent, ...).
#include <CLI/CLI.hpp>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{
      "Ferry: a KVM virtual machine monitor that live-migrates its guests off a host "
      "before the host fails.",
      "ferry"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "ferry 0.1.0");
  int exit_code = 0;
  ferry::tools::add_run_command(app, exit_code);
  ferry::tools::add_ctl_command(app, exit_code);
  ferry::tools::add_migrate_command(app, exit_code);
  ferry::tools::add_demo_command(app, exit_code);
  ferry::tools::add_model_command(app, exit_code);
  ferry::tools::add_report_command(app, exit_code);
  ferry::tools::add_tls_command(app, exit_code);
  ferry::tools::add_agent_command(app, exit_code);
  ferry::tools::add_fleet_command(app, exit_code);
  CLI11_PARSE(app, argc, argv);
  return exit_code;
}
