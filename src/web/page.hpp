// The web UI's single page: HTML with its CSS and script inlined (one request, nothing from
// elsewhere, works offline), built from src/web/assets/ at configure time.
#pragma once

#include <string>

namespace upframe::web {

// The page, carrying `token` for its state-changing requests.
std::string page_html(const std::string& token);

}  // namespace upframe::web
