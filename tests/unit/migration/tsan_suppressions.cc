// ThreadSanitizer: the fake guest thread writes guest RAM while the sender snapshots
// pages -- the race every live migration has by design (a real guest CPU is invisible to
// TSan; the dirty log resends the page). Suppress exactly that pair, nothing else, and
// keep enough history that TSan can name the guest-side stack the suppression matches.
extern "C" const char* __tsan_default_suppressions();
extern "C" const char* __tsan_default_suppressions() {
  return "race:ferry::testing::FakeVm::guest_write_page\n";
}
extern "C" const char* __tsan_default_options();
extern "C" const char* __tsan_default_options() { return "history_size=7"; }
