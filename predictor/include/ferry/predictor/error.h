// PredictorError: what every fallible predictor call returns. One PredictorErrc value per
// failing operation; `detail` carries the specifics (file:line, column, feature name) so a
// single log line says what was wrong with the input.
#pragma once

#include <string>

#include "ferry/kernel-interfaces/result.h"

namespace ferry::predictor {

enum class PredictorErrc {
  OpenData,         // a data file or directory could not be opened or decompressed
  MalformedCsv,     // a CSV row has the wrong field count or an unparsable value
  MissingColumn,    // a required CSV column is absent from the header
  NonFinite,        // NaN or infinity where a finite value is required
  EmptyDay,         // a day file or scoring round holds no rows
  EmptyHistory,     // a device history without any sample
  WrongFeatureSet,  // telemetry or model built for another schema / feature set
  CorruptModel,     // a model file that does not parse or fails validation
  Train,            // XGBoost refused to train (message from XGBGetLastError)
  Predict,          // XGBoost refused to predict
  BadArgument,      // an option out of range (horizon <= 0, empty split, ...)
  Io,               // writing an output file failed
};

struct PredictorError {
  PredictorErrc errc;
  std::string detail;

  /// "malformed CSV row: day.csv:17: expected 85 fields, got 12".
  std::string message() const;
};

template <class T>
using PResult = Result<T, PredictorError>;

/// Short helper: ferry::fail(PredictorError{errc, detail}).
inline Unexpected<PredictorError> perr(PredictorErrc errc, std::string detail) {
  return fail(PredictorError{errc, std::move(detail)});
}

/// Human name of an errc ("malformed CSV row").
const char* errc_name(PredictorErrc errc);

}  // namespace ferry::predictor
