// `ferry tls gen`: makes a test CA and a host certificate in the --tls-dir layout
// (ca.pem, cert.pem, key.pem) with OpenSSL's C API, so no `openssl` CLI is needed.
#include <fmt/format.h>

#include "commands.h"
#include "ferry/migration/tls_config.h"

namespace ferry::tools {

namespace {

struct TlsGenOptions {
  std::string out, ca_dir, name;
  std::vector<std::string> alt_names;
  int64_t days = 825;
};

int run_gen(const TlsGenOptions& o) {
  migration::CertificateSpec spec;
  spec.name = o.name;
  spec.alt_names = o.alt_names;
  spec.valid_until_s = o.days * 86400;
  auto made = migration::generate_certificate(o.ca_dir, o.out, spec);
  if (!made) {
    fmt::print(stderr, "ferry tls gen: {}\n", made.error().message());
    return 1;
  }
  // Load it back the way `ferry run/migrate --tls-dir` will, so a broken result is
  // reported here rather than at migration time.
  auto check = migration::TlsConfig::load_dir(o.out);
  if (!check) {
    fmt::print(stderr, "ferry tls gen: generated files do not load: {}\n", check.error().message());
    return 1;
  }
  fmt::print("wrote {0}/ca.pem, {0}/cert.pem, {0}/key.pem for {1} (CA in {2}, {3} days)\n", o.out,
             check->own_subject(), o.ca_dir, o.days);
  return 0;
}

}  // namespace

void add_tls_command(CLI::App& app, int& exit_code) {
  CLI::App* tls = app.add_subcommand("tls", "TLS helpers for migration (test certificates)");
  tls->require_subcommand(1);
  auto o = std::make_shared<TlsGenOptions>();
  CLI::App* gen = tls->add_subcommand(
      "gen", "Make a test CA (reused if CA_DIR has one) and a certificate for one host");
  gen->add_option("--out", o->out, "Directory for ca.pem, cert.pem, key.pem (the --tls-dir)")
      ->required();
  gen->add_option("--ca-dir", o->ca_dir, "Directory holding the CA's ca.pem and ca-key.pem")
      ->required();
  gen->add_option("--name", o->name, "Host name (CN and subjectAltName; an IP works too)")
      ->required();
  gen->add_option("--alt-name", o->alt_names, "Extra subjectAltNames (repeatable)");
  gen->add_option("--days", o->days, "Validity in days (default 825)");
  gen->callback([o, &exit_code] { exit_code = run_gen(*o); });
}

}  // namespace ferry::tools
