// The live dashboard served at GET /: api/dashboard.html, embedded in the binary when it is built
// (api/CMakeLists.txt generates dashboard.cpp from dashboard.cpp.in). Thread-safety: the page is
// an immutable string built on first use.
#pragma once

#include <string>

namespace meshwork::api {

[[nodiscard]] const std::string& dashboard_html();

}  // namespace meshwork::api
