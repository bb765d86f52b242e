//! `/`: the operator's dashboard, a page and its files compiled into the binary, so it loads on a
//! plant network with no internet and needs no front-end build to build the daemon.
//!
//! The page is plain HTML, one script and one style sheet (`dashboard/`), and uPlot, vendored as
//! its built files with its licence (`dashboard/vendor/`, from npm's `uplot`). It reads the API
//! like any client: `/limits`, `/readings`, `/alarms`, `/anomalies`, `/summary`, `/status`, and
//! follows `/events`.
//!
//! Its policy is stricter than the `/docs` page's: no inline script or style at all, and nothing
//! from another host, so text a device or the model wrote can never run as script even if the
//! page had a flaw.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The policy of the dashboard page. uPlot sizes its elements through the CSSOM
/// (`element.style`), which a policy does not govern, so no `'unsafe-inline'` is needed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Where the page's files are served.
const ASSETS: &str = "/dashboard";

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const FILES: [Asset; 6] = [
    Asset { path: "app.js", content_type: "text/javascript; charset=utf-8", body: include_bytes!("dashboard/app.js") },
    Asset { path: "style.css", content_type: "text/css; charset=utf-8", body: include_bytes!("dashboard/style.css") },
    Asset {
        path: "uPlot.iife.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("dashboard/vendor/uPlot.iife.min.js"),
    },
    Asset {
        path: "uPlot.min.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("dashboard/vendor/uPlot.min.css"),
    },
    Asset {
        path: "uPlot.LICENSE",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("dashboard/vendor/uPlot.LICENSE"),
    },
    Asset { path: "favicon.svg", content_type: "image/svg+xml", body: include_bytes!("dashboard/favicon.svg") },
];

const PAGE: &[u8] = include_bytes!("dashboard/index.html");

/// The page at `/` and its files under [`ASSETS`].
pub(super) fn routes() -> Router {
    let mut router = Router::new().route("/", get(|| std::future::ready(page())));
    for asset in &FILES {
        let (content_type, body) = (asset.content_type, asset.body);
        router = router
            .route(&format!("{ASSETS}/{}", asset.path), get(move || std::future::ready(file(content_type, body))));
    }
    router
}

fn page() -> Response {
    let mut response = file("text/html; charset=utf-8", PAGE);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

fn file(content_type: &'static str, body: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // The files change only with the binary; a browser checks again on each load, so an
            // upgraded daemon never runs with yesterday's script.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}
