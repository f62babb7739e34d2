// The OpenAPI 3.1 document of the public API: api/openapi.json, compiled into the binary at build
// time (api/CMakeLists.txt), so GET /v1/openapi.json needs no file at run time.
#pragma once

#include <string_view>

namespace meshwork::api {

// The document's JSON text, exactly as in api/openapi.json.
[[nodiscard]] std::string_view openapi_json();

}  // namespace meshwork::api
