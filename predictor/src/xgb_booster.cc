#include "ferry/predictor/xgb_booster.h"

#include <fmt/format.h>
#include <xgboost/c_api.h>

#include <cmath>

namespace ferry::predictor {

namespace {

Unexpected<PredictorError> xgb_error(PredictorErrc errc, const char* op) {
  return perr(errc, fmt::format("{}: {}", op, XGBGetLastError()));
}

}  // namespace

PResult<XgbMatrix> XgbMatrix::create(const float* data, std::size_t rows, std::size_t cols) {
  DMatrixHandle h = nullptr;
  if (XGDMatrixCreateFromMat(data, rows, cols, std::nanf(""), &h) != 0) {
    return xgb_error(PredictorErrc::Train, "XGDMatrixCreateFromMat");
  }
  return XgbMatrix(h);
}

XgbMatrix& XgbMatrix::operator=(XgbMatrix&& o) noexcept {
  if (this != &o) {
    if (handle_ != nullptr) {
      XGDMatrixFree(handle_);
    }
    handle_ = std::exchange(o.handle_, nullptr);
  }
  return *this;
}

XgbMatrix::~XgbMatrix() {
  if (handle_ != nullptr) {
    XGDMatrixFree(handle_);
  }
}

PResult<void> XgbMatrix::set_labels(const std::vector<float>& labels) {
  if (XGDMatrixSetFloatInfo(handle_, "label", labels.data(), labels.size()) != 0) {
    return xgb_error(PredictorErrc::Train, "XGDMatrixSetFloatInfo(label)");
  }
  return {};
}

PResult<void> XgbMatrix::set_groups(const std::vector<uint32_t>& sizes) {
  if (XGDMatrixSetUIntInfo(handle_, "group", sizes.data(), sizes.size()) != 0) {
    return xgb_error(PredictorErrc::Train, "XGDMatrixSetUIntInfo(group)");
  }
  return {};
}

PResult<XgbBooster> XgbBooster::create(const XgbMatrix& train) {
  BoosterHandle h = nullptr;
  DMatrixHandle m = train.handle();
  if (XGBoosterCreate(&m, 1, &h) != 0) {
    return xgb_error(PredictorErrc::Train, "XGBoosterCreate");
  }
  return XgbBooster(h);
}

PResult<XgbBooster> XgbBooster::from_json(const std::string& model_json) {
  BoosterHandle h = nullptr;
  if (XGBoosterCreate(nullptr, 0, &h) != 0) {
    return xgb_error(PredictorErrc::CorruptModel, "XGBoosterCreate");
  }
  XgbBooster b(h);
  if (XGBoosterLoadModelFromBuffer(h, model_json.data(), model_json.size()) != 0) {
    return xgb_error(PredictorErrc::CorruptModel, "XGBoosterLoadModelFromBuffer");
  }
  return b;
}

XgbBooster& XgbBooster::operator=(XgbBooster&& o) noexcept {
  if (this != &o) {
    if (handle_ != nullptr) {
      XGBoosterFree(handle_);
    }
    handle_ = std::exchange(o.handle_, nullptr);
  }
  return *this;
}

XgbBooster::~XgbBooster() {
  if (handle_ != nullptr) {
    XGBoosterFree(handle_);
  }
}

PResult<void> XgbBooster::set_param(const std::string& name, const std::string& value) {
  if (XGBoosterSetParam(handle_, name.c_str(), value.c_str()) != 0) {
    return perr(PredictorErrc::Train,
                fmt::format("XGBoosterSetParam({}={}): {}", name, value, XGBGetLastError()));
  }
  return {};
}

PResult<void> XgbBooster::update(int iteration, const XgbMatrix& train) {
  if (XGBoosterUpdateOneIter(handle_, iteration, train.handle()) != 0) {
    return xgb_error(PredictorErrc::Train, "XGBoosterUpdateOneIter");
  }
  return {};
}

PResult<std::string> XgbBooster::save_json() const {
  bst_ulong len = 0;
  const char* buf = nullptr;
  if (XGBoosterSaveModelToBuffer(handle_, R"({"format": "json"})", &len, &buf) != 0) {
    return xgb_error(PredictorErrc::Io, "XGBoosterSaveModelToBuffer");
  }
  return std::string(buf, len);
}

PResult<std::vector<float>> XgbBooster::predict_type(const XgbMatrix& data,
                                                     const char* config) const {
  const bst_ulong* shape = nullptr;
  bst_ulong dim = 0;
  const float* out = nullptr;
  if (XGBoosterPredictFromDMatrix(handle_, data.handle(), config, &shape, &dim, &out) != 0) {
    return xgb_error(PredictorErrc::Predict, "XGBoosterPredictFromDMatrix");
  }
  std::size_t n = 1;
  for (bst_ulong i = 0; i < dim; ++i) {
    n *= shape[i];
  }
  return std::vector<float>(out, out + n);
}

PResult<std::vector<float>> XgbBooster::predict(const XgbMatrix& data) const {
  return predict_type(data, R"({"type": 0, "training": false, "iteration_begin": 0,
                              "iteration_end": 0, "strict_shape": false})");
}

PResult<std::vector<float>> XgbBooster::predict_contributions(const XgbMatrix& data) const {
  return predict_type(data, R"({"type": 3, "training": false, "iteration_begin": 0,
                              "iteration_end": 0, "strict_shape": false})");
}

}  // namespace ferry::predictor
