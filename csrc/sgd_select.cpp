// Run-time choice among the builds of sgd.cpp: the best instruction set this CPU runs.
#include <stdexcept>

#include "sgd.h"

namespace fp {

std::vector<std::string> supported_isas() {
  std::vector<std::string> isas{"baseline"};
#ifdef FP_SGD_X86_ISAS
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) isas.emplace_back("avx2");
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) isas.emplace_back("avx512");
#endif
  return isas;
}

UpdateFn select_update(const std::string& isa) {
  const std::vector<std::string> isas = supported_isas();
  const std::string pick = isa == "auto" ? isas.back() : isa;
  std::string names;
  for (const std::string& name : isas) {
    if (name != pick) {
      names += (names.empty() ? "" : ", ") + name;
      continue;
    }
#ifdef FP_SGD_X86_ISAS
    if (name == "avx512") return &avx512::update;
    if (name == "avx2") return &avx2::update;
#endif
    return &baseline::update;
  }
  throw std::invalid_argument("isa: expected 'auto' or one this CPU runs (" + names + "), got '" + isa + "'");
}

}  // namespace fp
