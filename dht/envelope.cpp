// Signed job envelopes: the pure parts; see envelope.h.
#include "dht/envelope.h"

namespace meshwork {

nlohmann::json Envelope::to_json() const {
  return {{"job", job}, {"public_key", to_base64(public_key)}, {"signature", to_base64(signature)}};
}

bool is_job_id(std::string_view s) {
  if (s.size() != 2 * kHashBytes) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

}  // namespace meshwork
