//! The dashboard's page, its files and `/limits`, which draws its limit lines.

use super::*;

#[tokio::test]
async fn the_page_carries_a_strict_policy_and_loads_only_its_own_files() {
    let fixture = Fixture::new();
    let (status, headers, body) = fixture.call(Method::GET, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    let policy = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(policy.contains("script-src 'self'") && policy.contains("default-src 'none'"), "{policy}");
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
    let page = String::from_utf8(body.to_vec()).unwrap();
    assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("//cdn"), "{page}");
    assert!(!page.contains("<script>") && !page.contains("style="), "no inline script or style");
    // Every file the page names is served, with its type.
    let referenced: Vec<&str> = page.split(['"', '\'']).filter(|part| part.starts_with("/dashboard/")).collect();
    assert!(referenced.len() >= 5, "{referenced:?}");
    for path in referenced {
        let (status, headers, body) = fixture.call(Method::GET, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(!body.is_empty(), "{path}");
        let kind = headers[header::CONTENT_TYPE].to_str().unwrap();
        let expected = match path.rsplit('.').next() {
            Some("js") => "text/javascript",
            Some("css") => "text/css",
            Some("svg") => "image/svg+xml",
            _ => "text/plain",
        };
        assert!(kind.starts_with(expected), "{path}: {kind}");
    }
    // The docs keep their own policy.
    let (_, headers, _) = fixture.call(Method::GET, "/docs").await;
    assert_eq!(headers[header::CONTENT_SECURITY_POLICY], security::CONTENT_SECURITY_POLICY);
}

#[tokio::test]
async fn the_script_never_writes_html() {
    let (_, _, body) = Fixture::new().call(Method::GET, "/dashboard/app.js").await;
    let script = String::from_utf8(body.to_vec()).unwrap();
    for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("] {
        assert!(!script.contains(sink), "app.js uses {sink}");
    }
}

#[tokio::test]
async fn limits_are_the_ones_in_force_per_sensor_with_overrides_and_units() {
    let fixture = Fixture::with(|config| {
        let own = config.detection.sensors.entry("wtf-pipe-2".into()).or_default();
        own.spike_thresholds.insert("pressure".into(), 5.5);
        own.low_spike_thresholds.insert("flow".into(), 5.0);
    });
    let body = fixture.get_ok("/limits").await;
    let sensors = body["sensors"].as_array().unwrap();
    let ids: Vec<&str> = sensors.iter().map(|sensor| sensor["sensor_id"].as_str().unwrap()).collect();
    assert_eq!(ids, SENSORS);
    let pipe1 = &sensors[0]["parameters"];
    assert_eq!(pipe1["pressure"]["spike"], 4.0);
    assert_eq!(pipe1["pressure"]["drift"], 3.5);
    assert_eq!(pipe1["pressure"]["unit"], "bar");
    assert_eq!(pipe1["temperature"]["unit"], "°C");
    assert_eq!(pipe1["flow"]["low_spike"], Value::Null);
    assert_eq!(pipe1["pressure"]["dropout_seconds"], 10.0);
    let pipe2 = &sensors[1]["parameters"];
    assert_eq!(pipe2["pressure"]["spike"], 5.5, "the sensor's own limit");
    assert_eq!(pipe2["pressure"]["drift"], 3.5, "the parameter's, where the sensor has none");
    assert_eq!(pipe2["flow"]["low_spike"], 5.0);
    let one = fixture.get_ok("/limits?sensor_id=wtf-pipe-2").await;
    assert_eq!(one["sensors"].as_array().unwrap().len(), 1);
    let (status, body) = fixture.get("/limits?sensor_id=pump-9").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["parameter"], "sensor_id");
}
