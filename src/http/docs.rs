//! `/docs`: the interactive documentation (Swagger UI), every file served from the binary, so it
//! loads on a plant network with no internet.
//!
//! The files come from utoipa-swagger-ui's `vendored` copy. They are served here rather than
//! through its `SwaggerUi` router for two reasons: that router answers `/docs` with a 303 to
//! `/docs/` (a bookmark or a script checking for 200 sees a redirect), and it re-renders the
//! configuration script on every request. Here the page refers to its files by absolute path,
//! so `/docs` and `/docs/` both answer 200 with it, and the page and the script are prepared
//! once at start.

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use utoipa_swagger_ui::{Config, SwaggerFile};

use super::errors::ApiError;

/// Where the page is served.
pub const DOCS_PATH: &str = "/docs";

/// The routes of the page and its files, reading the OpenAPI document at `openapi_url`.
pub(super) fn routes(openapi_url: &str) -> Router {
    let config = Arc::new(
        Config::new([openapi_url.to_owned()])
            // Swagger UI would otherwise send the document to validator.swagger.io for a badge:
            // a request to the internet from a plant network, and a broken image offline.
            .validator_url("none"),
    );
    let page = prepare("index.html", &config).map(|page| Asset { body: absolute_links(&page.body), ..page });
    let script = prepare("swagger-initializer.js", &config);
    let index = move || std::future::ready(answer(page.clone()));
    Router::new()
        .route(DOCS_PATH, get(index.clone()))
        .route(&format!("{DOCS_PATH}/"), get(index))
        .route(&format!("{DOCS_PATH}/swagger-initializer.js"), get(move || std::future::ready(answer(script.clone()))))
        .route(
            &format!("{DOCS_PATH}/{{*file}}"),
            get(move |Path(file): Path<String>| static_file(file, Arc::clone(&config))),
        )
}

/// One file of the distribution, ready to send.
#[derive(Clone)]
struct Asset {
    body: Bytes,
    content_type: HeaderValue,
    /// Only with utoipa-swagger-ui's `gzip` feature, which this build does not turn on.
    gzipped: bool,
}

impl IntoResponse for Asset {
    fn into_response(self) -> Response {
        let mut response = ([(header::CONTENT_TYPE, self.content_type)], self.body).into_response();
        if self.gzipped {
            response.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    }
}

/// A file ready to send, or why it cannot be served.
type Prepared = Result<Asset, String>;

/// Reads one file of the distribution, with `config` written into the configuration script.
fn prepare(file: &str, config: &Arc<Config<'static>>) -> Prepared {
    match utoipa_swagger_ui::serve(file, Arc::clone(config)) {
        Ok(Some(found)) => Ok(asset(found)),
        Ok(None) => Err(format!("{file} is missing from the Swagger UI distribution")),
        Err(err) => Err(format!("cannot prepare {file}: {err}")),
    }
}

fn asset(file: SwaggerFile<'static>) -> Asset {
    let body = match file.bytes {
        std::borrow::Cow::Borrowed(bytes) => Bytes::from_static(bytes),
        std::borrow::Cow::Owned(bytes) => Bytes::from(bytes),
    };
    let content_type =
        HeaderValue::try_from(file.content_type).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Asset { body, content_type, gzipped: file.gzpipped }
}

/// The page refers to its files relatively (`./swagger-ui.css`), which from `/docs` would mean
/// `/swagger-ui.css`; absolute paths work from both `/docs` and `/docs/`.
fn absolute_links(page: &Bytes) -> Bytes {
    let page = String::from_utf8_lossy(page);
    let page = page
        .replace("href=\"./", &format!("href=\"{DOCS_PATH}/"))
        .replace("src=\"./", &format!("src=\"{DOCS_PATH}/"))
        .replace("href=\"index.css\"", &format!("href=\"{DOCS_PATH}/index.css\""));
    Bytes::from(page)
}

fn answer(prepared: Prepared) -> Response {
    match prepared {
        Ok(asset) => asset.into_response(),
        // The vendored files are compiled in, so this is a build defect, not a client's error.
        Err(reason) => ApiError::Unavailable(reason).into_response(),
    }
}

/// Any other file of the distribution (scripts, styles, icons), borrowed from the binary.
async fn static_file(file: String, config: Arc<Config<'static>>) -> Response {
    match utoipa_swagger_ui::serve(&file, config) {
        Ok(Some(found)) => asset(found).into_response(),
        _ => ApiError::no_route(&format!("{DOCS_PATH}/{file}")).into_response(),
    }
}
