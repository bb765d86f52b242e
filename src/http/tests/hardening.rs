//! What the API does with input it cannot serve, and the surface around the handlers: bad
//! queries, unknown paths, wrong methods, HEAD, the layers' 408 and 413, the documentation, CORS.

use super::*;

// --- bad input ----------------------------------------------------------------------------------

#[tokio::test]
async fn bad_input_is_a_400_naming_the_parameter_and_value() {
    let fixture = Fixture::new();
    record_spikes(&fixture, 3);
    let cases = [
        ("/anomalies?limit=abc", "limit", "\"abc\""),
        ("/anomalies?limit=0", "limit", "\"0\""),
        ("/anomalies?limit=1001", "limit", "\"1001\""),
        ("/anomalies?limit=100000", "limit", "\"100000\""),
        ("/anomalies?limit=-1", "limit", "\"-1\""),
        ("/anomalies?limit=2.5", "limit", "\"2.5\""),
        ("/anomalies?limit=99999999999999999999999", "limit", "from 1 to 1000"),
        ("/anomalies?limit=", "limit", "no value"),
        ("/anomalies?limit=5&limit=6", "limit", "more than once"),
        ("/anomalies?since=yesterday", "since", "\"yesterday\""),
        ("/anomalies?since=2025-05-19", "since", "RFC 3339"),
        ("/anomalies?parameter=humidity", "parameter", "\"humidity\""),
        ("/anomalies?parameter=Pressure", "parameter", "flow, pressure or temperature"),
        ("/anomalies?type=flood", "type", "\"flood\""),
        ("/anomalies?type=flood", "type", "spike, drift, dropout, low_spike"),
        ("/anomalies?sensor_id=", "sensor_id", "no value"),
        ("/anomalies?limt=5", "limt", "unknown parameter"),
        ("/anomalies?limit=5&foo=bar", "foo", "limit, sensor_id, parameter, type, since"),
        ("/summaries?limit=0", "limit", "from 1 to 1000"),
        ("/summaries?sensor_id=wtf-pipe-1", "sensor_id", "unknown parameter"),
        ("/metrics?limit=10", "limit", "takes no parameters"),
        ("/status?verbose=1", "verbose", "takes no parameters"),
        ("/summary?limit=1", "limit", "takes no parameters"),
    ];
    for (uri, parameter, says) in cases {
        let (status, body) = fixture.get(uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["parameter"], parameter, "{uri}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains(parameter) && error.contains(says),
            "{uri}: {error:?} should name {parameter} and say {says}"
        );
    }
}

#[tokio::test]
async fn health_ignores_a_query_string() {
    let fixture = Fixture::new();
    let (status, body) = fixture.get("/health?probe=lb-1").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
}

#[tokio::test]
async fn unknown_paths_are_a_404_naming_the_path() {
    let fixture = Fixture::new();
    for uri in ["/nope", "/anomalies/", "/anomalies/123", "/api/anomalies", "/docs/nope.js", "/summary/latest"] {
        let (status, body) = fixture.get(uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        let path = uri.split('?').next().unwrap();
        assert_eq!(body, json!({"error": format!("no such endpoint: {path}")}), "{uri}");
    }
}

#[tokio::test]
async fn fault_injection_is_not_served_unless_enabled() {
    let (status, body) = Fixture::new().get("/debug/fail/api").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "no such endpoint: /debug/fail/api");
    let (status, _, body) = Fixture::new().call(Method::POST, "/debug/fail/api").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(serde_json::from_slice::<Value>(&body).is_ok());
}

#[tokio::test]
async fn wrong_methods_are_a_405_that_lists_the_allowed_ones() {
    let fixture = Fixture::new();
    for uri in GET_ROUTES {
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH, Method::OPTIONS] {
            let (status, headers, body) = fixture.call(method.clone(), uri).await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
            assert_json(&format!("{method} {uri}"), &headers, &body);
            let body: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["error"], format!("method {method} is not allowed on {uri}"));
            assert_eq!(headers[header::ALLOW], "GET,HEAD", "{method} {uri}");
        }
    }
}

#[tokio::test]
async fn head_works_wherever_get_does() {
    let fixture = Fixture::new();
    record_spikes(&fixture, 3);
    fixture.store.record_summary(summary_at(t0()), t0());
    for uri in GET_ROUTES {
        let (get_status, get_headers, get_body) = fixture.call(Method::GET, uri).await;
        let (status, headers, body) = fixture.call(Method::HEAD, uri).await;
        assert_eq!(get_status, StatusCode::OK, "GET {uri}");
        assert_eq!(status, StatusCode::OK, "HEAD {uri}");
        assert!(body.is_empty(), "HEAD {uri} has a body");
        assert_eq!(headers[header::CONTENT_TYPE], get_headers[header::CONTENT_TYPE], "HEAD {uri}");
        assert!(!get_body.is_empty(), "GET {uri}");
    }
    // And an error answer to HEAD keeps its status.
    assert_eq!(fixture.call(Method::HEAD, "/anomalies?limit=0").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(fixture.call(Method::HEAD, "/nope").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413_in_json() {
    let fixture = Fixture::new();
    let request = Request::builder()
        .method(Method::GET)
        .uri("/health")
        .header(header::CONTENT_LENGTH, MAX_BODY_BYTES + 1)
        .body(Body::from(vec![b'x'; MAX_BODY_BYTES + 1]))
        .unwrap();
    let (status, headers, body) = fixture.send(request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_json("413", &headers, &body);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"], format!("request body larger than {MAX_BODY_BYTES} bytes"));
}

#[tokio::test(start_paused = true)]
async fn a_request_over_the_timeout_is_a_408_in_json() {
    let mut config = Config::default();
    config.api.request_timeout = Duration::from_secs(2);
    let slow = Router::new().route("/slow", get(|| tokio::time::sleep(Duration::from_secs(3600))));
    let app = harden(slow, &config.api);
    let response = app.oneshot(Request::get("/slow").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    assert_json("408", &parts.headers, &body);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body, json!({"error": "the request took longer than 2s and was abandoned"}));
}

#[tokio::test]
async fn other_non_json_errors_are_wrapped_with_their_text() {
    let config = Config::default();
    let plain = Router::new().route("/teapot", get(|| async { (StatusCode::IM_A_TEAPOT, "short and stout") }));
    let response =
        harden(plain, &config.api).oneshot(Request::get("/teapot").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::IM_A_TEAPOT);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), json!({"error": "short and stout"}));
}

// --- documentation ------------------------------------------------------------------------------

#[tokio::test]
async fn the_openapi_document_lists_every_route_with_examples() {
    let fixture = Fixture::new();
    let document = fixture.get_ok("/openapi.json").await;
    assert!(document["openapi"].as_str().unwrap().starts_with("3."), "{}", document["openapi"]);
    let paths = document["paths"].as_object().unwrap();
    let mut listed: Vec<String> = paths
        .iter()
        .flat_map(|(path, item)| item.as_object().unwrap().keys().map(move |method| format!("{method} {path}")))
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            "get /",
            "get /alarms",
            "get /alarms/{id}",
            "get /anomalies",
            "get /audit",
            "get /docs",
            "get /events",
            "get /health",
            "get /limits",
            "get /metrics",
            "get /metrics/prometheus",
            "get /openapi.json",
            "get /readings",
            "get /sensors",
            "get /status",
            "get /summaries",
            "get /summary",
            "post /alarms/{id}/ack",
            "post /alarms/{id}/shelve",
            "post /alarms/{id}/unshelve",
            "post /api/v2/write",
            "post /readings",
            "post /write",
        ]
    );
    let parameters: Vec<&str> = paths["/anomalies"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|parameter| parameter["name"].as_str().unwrap())
        .collect();
    assert_eq!(parameters, query::ANOMALY_PARAMETERS);
    let limit = &paths["/anomalies"]["get"]["parameters"][0]["schema"];
    assert_eq!((limit["minimum"].as_u64(), limit["maximum"].as_u64()), (Some(1), Some(1000)));
    let schemas = &document["components"]["schemas"];
    for schema in ["Anomaly", "Summary", "StatusBody", "ErrorBody"] {
        assert!(schemas[schema]["example"].is_object(), "{schema} has no example");
    }
    assert!(paths["/metrics"]["get"]["responses"]["200"]["content"]["application/json"]["example"].is_object());
    // Served from one serialisation: HEAD and GET agree, and it parses as the same document.
    assert_eq!(fixture.call(Method::HEAD, "/openapi.json").await.0, StatusCode::OK);
}

#[tokio::test]
async fn swagger_ui_is_served_from_the_binary_and_reads_our_document() {
    let fixture = Fixture::new();
    // The same page at /docs and /docs/, its files referred to by absolute path so both work.
    let (status, headers, page) = fixture.call(Method::GET, "/docs").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    assert_eq!(fixture.call(Method::GET, "/docs/").await.2, page);
    let page = String::from_utf8(page.to_vec()).unwrap();
    assert!(!page.contains("http://") && !page.contains("https://"), "the page loads something from the internet");
    assert!(!page.contains("\"./"), "a relative link would break at /docs: {page}");
    for asset in [
        "swagger-ui.css",
        "index.css",
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
        "swagger-initializer.js",
    ] {
        assert!(page.contains(&format!("\"/docs/{asset}\"")), "the page no longer loads /docs/{asset}");
        let (status, headers, body) = fixture.call(Method::GET, &format!("/docs/{asset}")).await;
        assert_eq!(status, StatusCode::OK, "/docs/{asset}");
        assert!(body.len() > 100 || asset == "index.css", "/docs/{asset} is nearly empty");
        let content_type = headers[header::CONTENT_TYPE].to_str().unwrap();
        let expected = if asset.ends_with(".css") { "text/css" } else { "javascript" };
        assert!(content_type.contains(expected), "/docs/{asset}: {content_type}");
    }
    let (_, _, initializer) = fixture.call(Method::GET, "/docs/swagger-initializer.js").await;
    let initializer = String::from_utf8(initializer.to_vec()).unwrap();
    assert!(initializer.contains(r#""url": "/openapi.json""#), "{initializer}");
    assert!(initializer.contains(r#""validatorUrl": "none""#), "{initializer}");
    assert!(!initializer.contains("petstore"), "{initializer}");
    // Other files of the distribution are there too; a file that is not is a JSON 404.
    assert_eq!(fixture.call(Method::GET, "/docs/favicon-32x32.png").await.0, StatusCode::OK);
    let (status, body) = fixture.get("/docs/../openapi.json").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

// --- CORS ---------------------------------------------------------------------------------------

fn with_origin(method: Method, uri: &str, origin: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn no_cors_headers_by_default() {
    let fixture = Fixture::new();
    let (status, headers, _) = fixture.send(with_origin(Method::GET, "/status", "https://evil.example")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!headers.keys().any(|name| name.as_str().starts_with("access-control-")), "{headers:?}");
    let (status, headers, _) = fixture.send(with_origin(Method::OPTIONS, "/status", "https://evil.example")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
}

#[tokio::test]
async fn cors_allows_only_the_configured_origins_without_credentials() {
    let fixture = Fixture::with(|config| {
        config.api.cors_allowed_origins = vec!["https://scada.example".into(), "http://hmi.local:8080".into()];
    });
    for origin in ["https://scada.example", "http://hmi.local:8080"] {
        let (status, headers, _) = fixture.send(with_origin(Method::GET, "/anomalies", origin)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], origin);
        assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS));
    }
    let (_, headers, _) = fixture.send(with_origin(Method::GET, "/anomalies", "https://evil.example")).await;
    assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));

    let (status, headers, _) = fixture.send(with_origin(Method::OPTIONS, "/anomalies", "https://scada.example")).await;
    assert_eq!(status, StatusCode::OK, "preflight");
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://scada.example");
    assert!(headers[header::ACCESS_CONTROL_ALLOW_METHODS].to_str().unwrap().contains("GET"));
    assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS));
    // Error answers carry the header too, so the page can read why.
    let (status, headers, _) =
        fixture.send(with_origin(Method::GET, "/anomalies?limit=0", "https://scada.example")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://scada.example");
}

// --- echoes and security headers ---------------------------------------------------------------

#[tokio::test]
async fn client_input_is_echoed_bounded() {
    let fixture = Fixture::new();
    let long_path = format!("/{}", "p".repeat(65_000));
    let long_name = "n".repeat(65_000);
    for uri in [long_path.clone(), format!("/anomalies?{long_name}=1"), format!("/status?{long_name}=1")] {
        let (status, headers, body) = fixture.call(Method::GET, &uri).await;
        assert!(status.is_client_error(), "{status}");
        assert!(body.len() < 1024, "{} bytes echoed for a {} byte request", body.len(), uri.len());
        assert!(headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("application/json"));
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert!(body["error"].as_str().unwrap().contains('…'), "cut, and says so: {body}");
    }
    let (status, _, body) = fixture.call(Method::DELETE, &format!("/health{long_path}")).await;
    assert!(status.is_client_error() && body.len() < 1024, "{status}: {} bytes", body.len());
}

#[tokio::test]
async fn every_answer_carries_the_security_headers_and_pages_a_policy() {
    let fixture = Fixture::new();
    for uri in ["/health", "/status", "/nope", "/anomalies?limit=0", "/docs", "/docs/swagger-ui.css"] {
        let (_, headers, _) = fixture.call(Method::GET, uri).await;
        assert_eq!(headers["x-content-type-options"], "nosniff", "{uri}");
        assert_eq!(headers["x-frame-options"], "DENY", "{uri}");
    }
    for uri in ["/docs", "/docs/"] {
        let (_, headers, _) = fixture.call(Method::GET, uri).await;
        let policy = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(policy.contains("default-src 'self'") && policy.contains("frame-ancestors 'none'"), "{policy}");
        assert!(!policy.contains("http"), "the page loads nothing from another host: {policy}");
    }
    let (_, headers, _) = fixture.call(Method::GET, "/health").await;
    assert!(headers.get(header::CONTENT_SECURITY_POLICY).is_none(), "a policy only where there is a page");
}
