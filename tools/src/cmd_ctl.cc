// `ferry ctl`: send one request to a running VMM's control socket and print the reply.
#include <cstdio>

#include "commands.h"
#include "ferry/vmm/control_server.h"
#include "vm_session.h"

namespace ferry::tools {

void add_ctl_command(CLI::App& app, int& exit_code) {
  struct Options {
    std::string control, command, raw;
  };
  auto o = std::make_shared<Options>();
  CLI::App* ctl = app.add_subcommand(
      "ctl", "Send a request to a running VMM's control socket and print the JSON reply.");
  ctl->add_option("--control", o->control, "Control socket of the VMM")->required();
  ctl->add_option("command", o->command, "status | pause | resume | quit");
  ctl->add_option("--raw", o->raw, "Send this JSON line verbatim instead of a command");
  ctl->callback([o, &exit_code] {
    nlohmann::json request;
    if (!o->raw.empty()) {
      request = nlohmann::json::parse(o->raw, nullptr, false);
      if (request.is_discarded()) {
        request = o->raw;  // let the VMM say what is wrong with it
      }
    } else if (!o->command.empty()) {
      request = {{"cmd", o->command}};
    } else {
      print_error("ctl", "give a command (status, pause, resume, quit) or --raw JSON");
      exit_code = 2;
      return;
    }
    // A JSON string that is not an object is sent as its raw text, to test the VMM.
    const nlohmann::json to_send = request;
    auto reply = vmm::control_request(o->control, to_send, [](const nlohmann::json& line) {
      std::printf("%s\n", line.dump().c_str());
    });
    if (!reply) {
      print_error("ctl", reply.error().message());
      exit_code = 1;
      return;
    }
    std::printf("%s\n", reply->dump(2).c_str());
    exit_code = (*reply)["ok"] == true ? 0 : 1;
  });
}

}  // namespace ferry::tools
