// MigrationError: what migrate_out / migrate_in return when a migration does not complete.
// It names the phase that failed, what failed, and -- the part an operator needs first --
// where the guest is now (running on the source, paused on the source awaiting a
// decision, or not started on the destination). See docs/migration.md, failure matrix.
#pragma once

#include <cstdint>
#include <string>

namespace ferry::migration {

/// The operator-facing phases of a live migration (DESIGN.md, "Live migration").
enum class MigrationPhase : uint16_t {
  Invalid = 0,
  PreMigration = 1,  // connect, hello, capacity check, destination VM built
  Brownout = 2,      // guest running; iterative pre-copy of memory and disk
  Blackout = 3,      // guest paused; final dirty set, machine state, digests
  Commit = 4,        // destination verified; Commit / Resumed handshake
  Completed = 5,
};

/// Lower-case phase name ("brownout").
const char* phase_name(MigrationPhase phase);

enum class MigrationErrc {
  Invalid = 0,
  Stream,          // a channel failed (closed, timed out, I/O error, TLS)
  Protocol,        // the peer sent a malformed, unexpected or out-of-range record
  Refused,         // the destination refused the hello (capacity, version, features)
  VmPort,          // the local VM failed (dirty log, pause, save/load state, disk)
  Codec,           // a page or extent failed to decode or its hash did not match
  DigestMismatch,  // whole-memory or disk digest differs between the two sides
  Timeout,         // the peer made no progress within the configured timeout
  PeerFailed,      // the peer reported an error (Error / Cancel record)
  Cancelled,       // the local caller cancelled
  CommitUnknown,   // Commit was sent but its outcome is unknown (see GuestLocation)
  BadOptions,      // invalid options (no channels, bad compression spec, ...)
};

/// Where the guest is after a failed migration, as seen by the side that returns.
enum class GuestLocation {
  Invalid = 0,
  RunningOnSource,          // source resumed (or never paused) its guest: the normal case
  PausedOnSource,           // the one ambiguous window: Commit sent, no answer (operator decides)
  NotStartedOnDestination,  // destination side: the incoming guest was discarded, never ran
};

struct MigrationError {
  MigrationErrc errc = MigrationErrc::Invalid;
  MigrationPhase phase = MigrationPhase::Invalid;
  GuestLocation guest = GuestLocation::Invalid;
  std::string detail;  // what failed, including the lower-level cause

  /// One line: "brownout: stream closed by peer: ... (guest keeps running on the source)".
  std::string message() const;
};

}  // namespace ferry::migration
