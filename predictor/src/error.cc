#include "ferry/predictor/error.h"

#include <fmt/format.h>

namespace ferry::predictor {

const char* errc_name(PredictorErrc errc) {
  switch (errc) {
    case PredictorErrc::OpenData: return "cannot read data";
    case PredictorErrc::MalformedCsv: return "malformed CSV row";
    case PredictorErrc::MissingColumn: return "missing CSV column";
    case PredictorErrc::NonFinite: return "non-finite value";
    case PredictorErrc::EmptyDay: return "empty day";
    case PredictorErrc::EmptyHistory: return "empty device history";
    case PredictorErrc::WrongFeatureSet: return "wrong feature set";
    case PredictorErrc::CorruptModel: return "corrupt model";
    case PredictorErrc::Train: return "training failed";
    case PredictorErrc::Predict: return "prediction failed";
    case PredictorErrc::BadArgument: return "bad argument";
    case PredictorErrc::Io: return "I/O error";
  }
  return "unknown predictor error";
}

std::string PredictorError::message() const {
  return detail.empty() ? std::string(errc_name(errc)) : fmt::format("{}: {}", errc_name(errc), detail);
}

}  // namespace ferry::predictor
