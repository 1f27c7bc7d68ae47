// Move-only RAII wrappers over XGBoost 1.7's C API (DMatrixHandle, BoosterHandle): dense
// float matrices with labels and query groups, training one round at a time, JSON
// save/load, and prediction (values, or approximate per-feature contributions). Every
// failing call becomes a PredictorError carrying XGBGetLastError().
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ferry/predictor/error.h"

namespace ferry::predictor {

class XgbMatrix {
 public:
  /// Row-major dense matrix; NaN cells are "missing".
  static PResult<XgbMatrix> create(const float* data, std::size_t rows, std::size_t cols);
  XgbMatrix(XgbMatrix&& o) noexcept : handle_(std::exchange(o.handle_, nullptr)) {}
  XgbMatrix& operator=(XgbMatrix&& o) noexcept;
  XgbMatrix(const XgbMatrix&) = delete;
  XgbMatrix& operator=(const XgbMatrix&) = delete;
  ~XgbMatrix();

  PResult<void> set_labels(const std::vector<float>& labels);
  /// Query groups as sizes of consecutive row blocks (one group per scoring round).
  PResult<void> set_groups(const std::vector<uint32_t>& sizes);
  void* handle() const { return handle_; }

 private:
  explicit XgbMatrix(void* h) : handle_(h) {}
  void* handle_ = nullptr;
};

class XgbBooster {
 public:
  static PResult<XgbBooster> create(const XgbMatrix& train);
  /// An empty booster to load a saved model into.
  static PResult<XgbBooster> from_json(const std::string& model_json);
  XgbBooster(XgbBooster&& o) noexcept : handle_(std::exchange(o.handle_, nullptr)) {}
  XgbBooster& operator=(XgbBooster&& o) noexcept;
  XgbBooster(const XgbBooster&) = delete;
  XgbBooster& operator=(const XgbBooster&) = delete;
  ~XgbBooster();

  PResult<void> set_param(const std::string& name, const std::string& value);
  PResult<void> update(int iteration, const XgbMatrix& train);
  PResult<std::string> save_json() const;
  /// Predictions (transformed by the objective, e.g. sigmoid for binary:logistic).
  PResult<std::vector<float>> predict(const XgbMatrix& data) const;
  /// Saabas-style approximate contributions: rows x (features + 1), last column = bias.
  PResult<std::vector<float>> predict_contributions(const XgbMatrix& data) const;

 private:
  explicit XgbBooster(void* h) : handle_(h) {}
  PResult<std::vector<float>> predict_type(const XgbMatrix& data, const char* config) const;
  void* handle_ = nullptr;
};

}  // namespace ferry::predictor
