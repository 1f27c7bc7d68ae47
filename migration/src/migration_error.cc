#include "ferry/migration/migration_error.h"

#include <fmt/format.h>

namespace ferry::migration {

const char* phase_name(MigrationPhase phase) {
  switch (phase) {
    case MigrationPhase::PreMigration:
      return "pre-migration";
    case MigrationPhase::Brownout:
      return "brownout";
    case MigrationPhase::Blackout:
      return "blackout";
    case MigrationPhase::Commit:
      return "commit";
    case MigrationPhase::Completed:
      return "completed";
    case MigrationPhase::Invalid:
      break;
  }
  return "invalid";
}

namespace {
const char* location_text(GuestLocation where) {
  switch (where) {
    case GuestLocation::RunningOnSource:
      return "guest keeps running on the source";
    case GuestLocation::PausedOnSource:
      return "commit outcome unknown: the source keeps the guest PAUSED and intact; "
             "check the destination, then resume or discard the source copy";
    case GuestLocation::NotStartedOnDestination:
      return "incoming guest discarded, it never ran here";
    case GuestLocation::Invalid:
      break;
  }
  return "guest location unknown";
}
}  // namespace

std::string MigrationError::message() const {
  return fmt::format("{}: {} ({})", phase_name(phase), detail, location_text(guest));
}

}  // namespace ferry::migration
