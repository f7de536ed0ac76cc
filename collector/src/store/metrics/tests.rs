use opentelemetry_proto::tonic::{
    common::v1::{AnyValue, any_value::Value as AnyKind},
    metrics::v1::{
        Gauge, Histogram, ResourceMetrics, ScopeMetrics, Sum, Summary, metric::Data,
        summary_data_point::ValueAtQuantile,
    },
    resource::v1::Resource as OtlpResource,
};

use super::*;

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(AnyKind::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn number(value: f64, time: u64, attributes: Vec<KeyValue>) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        time_unix_nano: time,
        value: Some(Number::AsDouble(value)),
        ..Default::default()
    }
}

fn export(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(OtlpResource {
                attributes: vec![
                    kv("service.name", "cart"),
                    kv("service.namespace", "shop"),
                    kv("service.instance.id", "cart-1"),
                    kv("service.version", "1.2.3"),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn metric(name: &str, unit: &str, data: Data) -> Metric {
    Metric {
        name: name.into(),
        unit: unit.into(),
        description: "what it is".into(),
        data: Some(data),
        ..Default::default()
    }
}

fn render(store: &MetricStore) -> String {
    let mut out = Writer::new();
    store.render(&mut out);
    out.into_text()
}

#[test]
fn names_follow_the_otlp_to_prometheus_translation() {
    let counter = Kind::Counter;
    assert_eq!(
        metric_name("http.server.request.duration", "s", Kind::Histogram),
        "http_server_request_duration_seconds"
    );
    assert_eq!(
        metric_name("app.cart.items", "{item}", counter),
        "app_cart_items_total"
    );
    assert_eq!(
        metric_name("requests_total", "1", counter),
        "requests_total"
    );
    assert_eq!(
        metric_name("cpu.utilization", "1", Kind::Gauge),
        "cpu_utilization_ratio"
    );
    assert_eq!(
        metric_name("net.io", "By/s", Kind::Gauge),
        "net_io_bytes_per_second"
    );
    assert_eq!(metric_name("memory", "By", Kind::Gauge), "memory_bytes");
    assert_eq!(
        metric_name("latency_seconds", "s", Kind::Gauge),
        "latency_seconds"
    );
    assert_eq!(metric_name("2xx.count", "", Kind::Gauge), "_2xx_count");
    assert_eq!(label_name("http.route"), "http_route");
    assert_eq!(label_name("1st"), "key_1st");
}

#[test]
fn sums_gauges_and_target_info_are_re_exposed() {
    let mut store = MetricStore::new(100);
    let sum = Data::Sum(Sum {
        data_points: vec![number(5.0, 10, vec![kv("http.route", "/cart")])],
        aggregation_temporality: AggregationTemporality::Cumulative as i32,
        is_monotonic: true,
    });
    let gauge = Data::Gauge(Gauge {
        data_points: vec![number(0.5, 10, vec![])],
    });
    let recorded = store.record(&export(vec![
        metric("cart.checkouts", "{checkout}", sum),
        metric("pool.usage", "1", gauge),
    ]));
    assert_eq!(
        recorded,
        PointsRecorded {
            accepted: 2,
            dropped: 0
        }
    );
    let text = render(&store);
    assert!(
        text.contains("# TYPE cart_checkouts counter\n# HELP cart_checkouts what it is\n"),
        "{text}"
    );
    assert!(
        text.contains(
            r#"cart_checkouts_total{http_route="/cart",instance="cart-1",job="shop/cart"} 5"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"pool_usage_ratio{instance="cart-1",job="shop/cart"} 0.5"#),
        "{text}"
    );
    assert!(text.contains("# TYPE target info"), "{text}");
    assert!(
        text.contains(
            r#"target_info{instance="cart-1",job="shop/cart",service_version="1.2.3"} 1"#
        ),
        "{text}"
    );
}

#[test]
fn histograms_and_summaries_render_their_parts_and_deltas_add_up() {
    let mut store = MetricStore::new(100);
    let histogram = |counts: Vec<u64>, time| {
        Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                time_unix_nano: time,
                count: counts.iter().sum(),
                sum: Some(1.5),
                bucket_counts: counts,
                explicit_bounds: vec![0.1, 1.0],
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Delta as i32,
        })
    };
    store.record(&export(vec![metric(
        "rpc.duration",
        "s",
        histogram(vec![1, 2, 0], 1),
    )]));
    store.record(&export(vec![metric(
        "rpc.duration",
        "s",
        histogram(vec![0, 1, 1], 2),
    )]));
    let summary = Data::Summary(Summary {
        data_points: vec![SummaryDataPoint {
            count: 4,
            sum: 2.0,
            quantile_values: vec![ValueAtQuantile {
                quantile: 0.99,
                value: 0.9,
            }],
            ..Default::default()
        }],
    });
    store.record(&export(vec![metric("gc.pause", "s", summary)]));
    let text = render(&store);
    let labels = r#"instance="cart-1",job="shop/cart""#;
    for expected in [
        format!(r#"rpc_duration_seconds_bucket{{{labels},le="0.1"}} 1"#),
        format!(r#"rpc_duration_seconds_bucket{{{labels},le="1"}} 4"#),
        format!(r#"rpc_duration_seconds_bucket{{{labels},le="+Inf"}} 5"#),
        format!(r#"rpc_duration_seconds_sum{{{labels}}} 3"#),
        format!(r#"rpc_duration_seconds_count{{{labels}}} 5"#),
        format!(r#"gc_pause_seconds{{{labels},quantile="0.99"}} 0.9"#),
        format!(r#"gc_pause_seconds_count{{{labels}}} 4"#),
    ] {
        assert!(text.contains(&expected), "{expected} in\n{text}");
    }
}

#[test]
fn full_store_drops_new_series_but_updates_known_ones() {
    let mut store = MetricStore::new(2);
    let gauge = |value, route| {
        Data::Gauge(Gauge {
            data_points: vec![number(value, value as u64, vec![kv("route", route)])],
        })
    };
    // One target_info series plus one metric series fill the store.
    store.record(&export(vec![metric("depth", "", gauge(1.0, "/a"))]));
    let recorded = store.record(&export(vec![
        metric("depth", "", gauge(2.0, "/b")),
        metric("depth", "", gauge(3.0, "/a")),
    ]));
    assert_eq!(
        recorded,
        PointsRecorded {
            accepted: 1,
            dropped: 1
        }
    );
    let text = render(&store);
    assert!(
        text.contains(r#"depth{instance="cart-1",job="shop/cart",route="/a"} 3"#),
        "{text}"
    );
    assert!(!text.contains("/b"));
    assert_eq!(store.len(), 2);
}
