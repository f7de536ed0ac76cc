"""The lab's Grafana dashboards.

Every query here runs against a real Prometheus scraping a live lab in
tests/prometheus.rs, with each variable at its default value, and must
return data. Counters that only appear after their first event (retries,
shed requests, breaker changes, dead letters) are written
`x or <a series that exists> * 0`, so a healthy system shows 0 rather
than "No data", which a learner would rightly distrust.

Queries on metrics that the collector derives from traces
(traces_span_metrics_*, traces_service_graph_*) are the exception: the test
accepts them empty only while the collector does not expose those families.
"""

from grafana import (annotation, bargauge, dashboard, gauge, heatmap, node_graph,
                     query, query_variable, row, stat, state_timeline, table,
                     thresholds, timeseries, value_mappings)
from slo import BURN_ALERTS

RATE = "$__rate_interval"
SERVER = "http_server_request_duration_seconds"
CLIENT = "http_client_request_duration_seconds"

RATIO_STEPS = thresholds((None, "green"), (0.01, "orange"), (0.05, "red"))
LATENCY_STEPS = thresholds((None, "green"), (0.25, "orange"), (1, "red"))
BUDGET_STEPS = thresholds((None, "red"), (0.25, "orange"), (0.5, "green"))
BURN_STEPS = thresholds((None, "green"), (1, "orange"), (6, "red"))
UP_MAPPINGS = value_mappings([(0, "down", "red"), (1, "up", "green")])
BREAKER_MAPPINGS = value_mappings([(0, "closed", "green"), (1, "half-open", "orange"),
                                   (2, "open", "red")])

SERVICE = 'job="$service", instance=~"$instance"'


def version_annotations(job_selector):
    """Markers where a new service.version or config version appears."""
    return [
        annotation(
            "Deploys (service.version)",
            f"count by (job, service_version) (target_info{{{job_selector}}})\n"
            f"unless count by (job, service_version) (target_info{{{job_selector}}} offset 1m)",
            "{{job}} {{service_version}}",
            "A process of {{job}} started reporting service.version {{service_version}}",
            "#5794F2",
        ),
        annotation(
            "Config pushes",
            f"count by (job, config_version) (firedrill_config_info{{{job_selector}}})\n"
            f"unless count by (job, config_version) (firedrill_config_info{{{job_selector}}} offset 1m)",
            "{{job}} config {{config_version}}",
            "A process of {{job}} loaded config version {{config_version}}",
            "#FF9830",
        ),
    ]


# === Shop overview ==========================================================

def shop_overview():
    nodes_expr = (
        'sum by (id, title) (label_replace(label_replace('
        'rate(traces_service_graph_request_total[5m]), '
        '"id", "$1", "server", "(.+)"), "title", "$1", "server", "(.+)"))\n'
        'or\n'
        'sum by (id, title) (label_replace(label_replace('
        'rate(traces_service_graph_request_total[5m]), '
        '"id", "$1", "client", "(.+)"), "title", "$1", "client", "(.+)")) * 0'
    )
    edges_expr = (
        'sum by (id, source, target) (label_replace(label_replace(label_join('
        'rate(traces_service_graph_request_total[5m]), "id", "->", "client", "server"), '
        '"source", "$1", "client", "(.+)"), "target", "$1", "server", "(.+)"))'
    )
    client_nodes = (
        f'sum by (id, title) (label_replace(label_replace('
        f'rate({CLIENT}_count[5m]), "id", "$1", "server_address", "(.+)"), '
        f'"title", "$1", "server_address", "(.+)"))\n'
        f'or\n'
        f'sum by (id, title) (label_replace(label_replace('
        f'rate({CLIENT}_count[5m]), "id", "$1", "job", "(.+)"), '
        f'"title", "$1", "job", "(.+)")) * 0'
    )
    client_edges = (
        f'sum by (id, source, target) (label_replace(label_replace(label_join('
        f'rate({CLIENT}_count[5m]), "id", "->", "job", "server_address"), '
        f'"source", "$1", "job", "(.+)"), "target", "$1", "server_address", "(.+)"))'
    )
    panels = [
        row("Golden signals at the edge (gateway)"),
        stat("Traffic", "Requests per second the gateway serves (5m rate).",
             [query('sum(job:http_server_requests:rate5m{job="gateway"})')], "reqps"),
        stat("Errors", "Share of gateway requests answered with a 5xx (5m).",
             [query('job:http_server_error_ratio:rate5m{job="gateway"}')], "percentunit",
             steps=RATIO_STEPS, decimals=2),
        stat("Latency p99", "99th percentile of gateway server latency (5m).",
             [query('job:http_server_request_duration_seconds:p99_5m{job="gateway"}')], "s",
             steps=LATENCY_STEPS),
        stat("Saturation: busiest process", "CPU of the busiest process of the lab, in cores.",
             [query(f"max(sum by (instance) (rate(process_cpu_time_seconds_total[{RATE}])))")],
             "percentunit", steps=thresholds((None, "green"), (0.7, "orange"), (0.9, "red"))),
        timeseries("Traffic by service", "Requests per second served by each service.",
                   [query("job:http_server_requests:rate5m", "{{job}}")], "reqps",
                   legend_table=True),
        timeseries("5xx ratio by service", "Share of each service's requests answered with a 5xx.",
                   [query("job:http_server_error_ratio:rate5m", "{{job}}")], "percentunit",
                   legend_table=True),
        timeseries("p99 latency by service", "99th percentile server latency per service (5m).",
                   [query("job:http_server_request_duration_seconds:p99_5m", "{{job}}")], "s",
                   legend_table=True),
        timeseries("CPU by service", "CPU used by all processes of each service, in cores.",
                   [query(f"sum by (job) (rate(process_cpu_time_seconds_total[{RATE}]))", "{{job}}")],
                   "percentunit", legend_table=True),

        row("SLOs"),
        bargauge("Burn rate over the last hour",
                 "How fast each SLO spends its 30-day error budget: 1 spends it exactly in "
                 "30 days; the fast page fires at 14.4 (with the 5m window agreeing).",
                 [query("slo:sli_error:ratio_rate1h / slo:error_budget:ratio", "{{slo}}",
                        instant=True, fmt="time_series")],
                 "suffix:x", steps=thresholds((None, "green"), (1, "orange"), (14.4, "red")),
                 minimum=0),
        bargauge("Error budget left (30 days)",
                 "Share of each SLO's 30-day error budget not yet spent.",
                 [query("clamp_min(1 - slo:sli_error:ratio_rate30d / slo:error_budget:ratio, 0)",
                        "{{slo}}", instant=True, fmt="time_series")],
                 "percentunit", steps=BUDGET_STEPS, minimum=0, maximum=1),

        row("Alerts"),
        table("Firing and pending alerts",
              "Every alert Prometheus holds right now (ALERTS). Watchdog always fires: "
              "if it is missing, alerting itself is broken.",
              [query('sort_desc(ALERTS{alertstate=~"firing|pending"})', instant=True)],
              "none", w=24, h=8,
              transformations=[{"id": "organize", "options": {
                  "excludeByName": {"Time": True, "Value": True, "__name__": True},
                  "indexByName": {"alertname": 0, "alertstate": 1, "severity": 2},
                  "renameByName": {}, "includeByName": {}}}]),

        row("Service graph"),
        node_graph("Service graph (from traces)",
                   "Calls between services per second, derived by the collector from spans "
                   "(traces_service_graph_request_total{client, server}).",
                   query(nodes_expr, instant=True), query(edges_expr, instant=True),
                   "reqps", w=12, h=14),
        node_graph("Service graph (from client metrics)",
                   "Calls between services per second, as each caller counts them "
                   "(http_client_request_duration_seconds by job and server_address). "
                   "It stays up when the trace pipeline is down.",
                   query(client_nodes, instant=True), query(client_edges, instant=True),
                   "reqps", w=12, h=14),
    ]
    return dashboard("firedrill-shop-overview", "Shop overview",
                     "The shop at a glance: golden signals, SLO burn, alerts, service graph.",
                     panels, tags=["overview"],
                     annotations=version_annotations('job=~".+"'))


# === Service detail ==========================================================

def service_detail():
    by_route = "http_request_method, http_route"
    panels = [
        row("RED by route"),
        timeseries("Requests by route", "Requests per second by method and route.",
                   [query(f"sum by ({by_route}) (rate({SERVER}_count{{{SERVICE}}}[{RATE}]))",
                          "{{http_request_method}} {{http_route}}")], "reqps", w=8),
        timeseries("5xx ratio by route", "Share of requests answered with a 5xx, by route.",
                   [query(f'(sum by ({by_route}) (rate({SERVER}_count{{{SERVICE}, http_response_status_code=~"5.."}}[{RATE}]))'
                          f" or sum by ({by_route}) (rate({SERVER}_count{{{SERVICE}}}[{RATE}])) * 0)\n"
                          f"/ sum by ({by_route}) (rate({SERVER}_count{{{SERVICE}}}[{RATE}]))",
                          "{{http_request_method}} {{http_route}}")], "percentunit", w=8),
        timeseries("p99 latency by route",
                   "99th percentile latency by route. Dots are exemplars: click one to open "
                   "the trace of that request.",
                   [query(f"histogram_quantile(0.99, sum by (le, {by_route}) (rate({SERVER}_bucket{{{SERVICE}}}[{RATE}])))",
                          "{{http_request_method}} {{http_route}}", exemplar=True)], "s", w=8),
        heatmap("Latency distribution",
                "Requests per latency bucket over time, with exemplars linking to traces.",
                query(f"sum by (le) (rate({SERVER}_bucket{{{SERVICE}}}[{RATE}]))", "{{le}}",
                      fmt="heatmap", exemplar=True), "s", w=12),
        timeseries("Responses by status code", "Responses per second by HTTP status code.",
                   [query(f"sum by (http_response_status_code) (rate({SERVER}_count{{{SERVICE}}}[{RATE}]))",
                          "{{http_response_status_code}}")], "reqps", w=12, stack=True),

        row("RED by instance"),
        timeseries("Requests by instance",
                   "Requests per second per instance: uneven lines mean uneven balancing.",
                   [query(f"sum by (instance) (rate({SERVER}_count{{{SERVICE}}}[{RATE}]))",
                          "{{instance}}")], "reqps", w=8),
        timeseries("5xx ratio by instance", "Share of 5xx answers per instance.",
                   [query(f'(sum by (instance) (rate({SERVER}_count{{{SERVICE}, http_response_status_code=~"5.."}}[{RATE}]))'
                          f" or sum by (instance) (rate({SERVER}_count{{{SERVICE}}}[{RATE}])) * 0)\n"
                          f"/ sum by (instance) (rate({SERVER}_count{{{SERVICE}}}[{RATE}]))",
                          "{{instance}}")], "percentunit", w=8),
        timeseries("p99 latency by instance", "99th percentile latency per instance, with exemplars.",
                   [query(f"histogram_quantile(0.99, sum by (le, instance) (rate({SERVER}_bucket{{{SERVICE}}}[{RATE}])))",
                          "{{instance}}", exemplar=True)], "s", w=8),

        row("Outbound dependencies"),
        timeseries("Calls by peer", "Calls per second this service makes to each peer service.",
                   [query(f"sum by (server_address) (rate({CLIENT}_count{{{SERVICE}}}[{RATE}]))",
                          "{{server_address}}")], "reqps", w=8),
        timeseries("Failed calls by peer",
                   "Calls per second that failed (timeout, refused, breaker open, error status), "
                   "by peer and error type. 404 from the cache is a miss, shown for completeness.",
                   [query(f'sum by (server_address, error_type) (rate({CLIENT}_count{{{SERVICE}, error_type!=""}}[{RATE}]))'
                          f" or sum by (server_address) (rate({CLIENT}_count{{{SERVICE}}}[{RATE}])) * 0",
                          "{{server_address}} {{error_type}}")], "reqps", w=8),
        timeseries("p99 call latency by peer", "99th percentile latency of calls to each peer, with exemplars.",
                   [query(f"histogram_quantile(0.99, sum by (le, server_address) (rate({CLIENT}_bucket{{{SERVICE}}}[{RATE}])))",
                          "{{server_address}}", exemplar=True)], "s", w=8),
        timeseries("Retries by peer", "Retried calls per second, by peer.",
                   [query(f"sum by (server_address) (rate(http_client_retries_total{{{SERVICE}}}[{RATE}]))"
                          f" or sum by (server_address) (rate({CLIENT}_count{{{SERVICE}}}[{RATE}])) * 0",
                          "{{server_address}}")], "reqps", w=12),
        state_timeline("Circuit breakers",
                       "Breaker state towards each peer instance: closed, half-open (probing), "
                       "open (no traffic). Peers whose breaker never changed are closed.",
                       [query(f"max by (server_address, server_instance) (circuit_breaker_state{{{SERVICE}}})"
                              f" or max by (server_address) ({CLIENT}_count{{{SERVICE}}}) * 0",
                              "{{server_address}} {{server_instance}}")],
                       "none", w=12, mappings=BREAKER_MAPPINGS,
                       steps=thresholds((None, "green"), (1, "orange"), (2, "red"))),

        row("Saturation"),
        timeseries("CPU", "CPU per instance, in cores.",
                   [query(f"sum by (instance) (rate(process_cpu_time_seconds_total{{{SERVICE}}}[{RATE}]))",
                          "{{instance}}")], "percentunit", w=8),
        timeseries("Memory", "Resident memory per instance.",
                   [query(f"process_memory_usage_bytes{{{SERVICE}}}", "{{instance}}")], "bytes", w=8),
        timeseries("Runtime: tasks and threads", "Live async tasks and OS threads per instance.",
                   [query(f"tokio_tasks_alive{{{SERVICE}}}", "{{instance}} tasks"),
                    query(f"process_thread_count{{{SERVICE}}}", "{{instance}} threads")],
                   "short", w=8),
        timeseries("Database pool in use",
                   "Connections in use over the pool size, per instance. At 100% requests queue.",
                   [query(f'sum by (instance) (db_client_connection_count{{{SERVICE}, db_client_connection_state="used"}})\n'
                          f"/ sum by (instance) (db_client_connection_max{{{SERVICE}}})",
                          "{{instance}}")], "percentunit", w=8, minimum=0, maximum=1),
        timeseries("Requests waiting for a connection", "Requests queued for a database connection.",
                   [query(f"sum by (instance) (db_client_connection_pending_requests{{{SERVICE}}})",
                          "{{instance}}")], "short", w=8),
        timeseries("Shed requests", "Requests rejected because too many were in flight.",
                   [query(f"sum by (instance) (rate(http_server_shed_requests_total{{{SERVICE}}}[{RATE}]))"
                          f" or sum by (instance) (rate({SERVER}_count{{{SERVICE}}}[{RATE}])) * 0",
                          "{{instance}}")], "reqps", w=8),
    ]
    variables = [
        query_variable("service", "Service", "label_values(http_server_request_duration_seconds_count, job)",
                       "catalog"),
        query_variable("instance", "Instance", 'label_values(up{job="$service"}, instance)', "",
                       include_all=True, multi=True),
    ]
    return dashboard("firedrill-service", "Service detail",
                     "One service: RED by route and instance, outbound calls, saturation. "
                     "Markers show deploys and config pushes.",
                     panels, variables=variables, tags=["service"],
                     annotations=version_annotations('job="$service"'))


# === SLOs and error budgets =================================================

def slo_dashboard():
    sel = 'slo=~"$slo"'
    burn_targets = [
        query(f"slo:sli_error:ratio_rate{window}{{{sel}}} / slo:error_budget:ratio{{{sel}}}",
              f"{{{{slo}}}} {window}")
        for window in ("5m", "1h", "6h", "1d")
    ]
    panels = [
        row("Objectives"),
        stat("Objective", "The share of good events each SLO promises over 30 days.",
             [query(f"slo:objective:ratio{{{sel}}}", "{{slo}}")], "percentunit", w=8,
             decimals=2, color_mode="none"),
        stat("Achieved (30 days)", "The share of good events over the last 30 days.",
             [query(f"1 - slo:sli_error:ratio_rate30d{{{sel}}}", "{{slo}}")], "percentunit",
             w=8, decimals=3,
             steps=thresholds((None, "red"), (0.99, "orange"), (0.995, "green"))),
        gauge("Error budget left (30 days)",
              "The share of the 30-day error budget not yet spent; 0 means the SLO is missed.",
              [query(f"clamp_min(1 - slo:sli_error:ratio_rate30d{{{sel}}} / slo:error_budget:ratio{{{sel}}}, 0)",
                     "{{slo}}")], "percentunit", w=8, h=4, steps=BUDGET_STEPS),

        row("Burn rate"),
        timeseries("Burn rate by window",
                   "Error-budget burn rate over 5m, 1h, 6h and 1d. The dashed lines are the "
                   "alert thresholds: 14.4 and 6 page, 3 and 1 open a ticket.",
                   burn_targets, "suffix:x", w=24, h=10, threshold_lines=True,
                   steps=thresholds((None, "green"),
                                    *((rate, color) for (_, _, rate, _, _, _), color in
                                      zip(reversed(BURN_ALERTS), ("yellow", "orange", "red", "dark-red")))),
                   legend_table=True),
        timeseries("Bad events (5m)", "Share of bad events over 5 minutes, against the error budget.",
                   [query(f"slo:sli_error:ratio_rate5m{{{sel}}}", "{{slo}}"),
                    query(f"slo:error_budget:ratio{{{sel}}}", "{{slo}} budget")],
                   "percentunit", w=12),
        timeseries("Budget spent (rolling 30 days)",
                   "The share of the 30-day error budget spent, as it evolves.",
                   [query(f"slo:sli_error:ratio_rate30d{{{sel}}} / slo:error_budget:ratio{{{sel}}}",
                          "{{slo}}")], "percentunit", w=12, minimum=0),
    ]
    variables = [
        query_variable("slo", "SLO", "label_values(slo:objective:ratio, slo)", "",
                       include_all=True, multi=True),
    ]
    return dashboard("firedrill-slo", "SLOs and error budgets",
                     "Each journey's SLO: objective, achievement, budget left, and burn rate "
                     "over the alerting windows (SRE workbook multi-window scheme).",
                     panels, variables=variables, tags=["slo"], time_from="now-6h")


# === Data stores ===============================================================

def data_stores():
    panels = [
        row("Database (SQLite, shared)"),
        timeseries("Operations by service", "Database operations per second, by service.",
                   [query(f"sum by (job) (rate(db_client_operation_duration_seconds_count[{RATE}]))",
                          "{{job}}")], "ops", w=8),
        timeseries("p99 operation latency", "99th percentile DB operation latency by service and operation.",
                   [query(f"histogram_quantile(0.99, sum by (le, job, db_operation_name) "
                          f"(rate(db_client_operation_duration_seconds_bucket[{RATE}])))",
                          "{{job}} {{db_operation_name}}")], "s", w=8),
        timeseries("Pool in use", "Connections in use over pool size, per instance.",
                   [query('sum by (instance) (db_client_connection_count{db_client_connection_state="used"})\n'
                          "/ sum by (instance) (db_client_connection_max)", "{{instance}}")],
                   "percentunit", w=8, minimum=0, maximum=1),
        timeseries("Waiting for a connection", "Requests queued for a connection, per instance.",
                   [query("sum by (instance) (db_client_connection_pending_requests)", "{{instance}}")],
                   "short", w=8),
        timeseries("p99 connection wait", "99th percentile time to get a connection from the pool.",
                   [query(f"histogram_quantile(0.99, sum by (le, job) "
                          f"(rate(db_client_connection_wait_time_seconds_bucket[{RATE}])))", "{{job}}")],
                   "s", w=8),
        timeseries("Connection timeouts", "Acquisitions that gave up waiting, per second.",
                   [query(f"sum by (job) (rate(db_client_connection_timeouts_total[{RATE}]))"
                          f" or sum by (job) (rate(db_client_operation_duration_seconds_count[{RATE}])) * 0",
                          "{{job}}")], "ops", w=8),

        row("Cache"),
        stat("Catalog cache hit ratio", "Share of catalog product reads served from the cache.",
             [query(f'sum(rate(cache_lookups_total{{cache_result="hit"}}[{RATE}])) / sum(rate(cache_lookups_total[{RATE}]))')],
             "percentunit", w=6, steps=thresholds((None, "red"), (0.5, "orange"), (0.8, "green"))),
        stat("Cache entries", "Keys held by the cache service.",
             [query("sum(cache_entries)")], "short", w=6),
        timeseries("Cache requests", "Requests per second to the cache service, by operation and result.",
                   [query(f"sum by (cache_operation, cache_result) (rate(cache_requests_total[{RATE}]))",
                          "{{cache_operation}} {{cache_result}}")], "reqps", w=12),
        timeseries("Hit ratio by reader", "Cache hit ratio of each reading service.",
                   [query(f'sum by (job) (rate(cache_lookups_total{{cache_result="hit"}}[{RATE}])) / '
                          f"sum by (job) (rate(cache_lookups_total[{RATE}]))", "{{job}}")],
                   "percentunit", w=12, minimum=0, maximum=1),
        timeseries("Evictions", "Keys evicted per second, by reason (capacity, expired).",
                   [query(f"sum by (cache_eviction_reason) (rate(cache_evictions_total[{RATE}]))"
                          f" or sum(rate(cache_requests_total[{RATE}])) * 0",
                          "{{cache_eviction_reason}}")], "ops", w=12),

        row("Queue"),
        timeseries("Depth", "Messages waiting per topic.",
                   [query("sum by (messaging_destination_name) (messaging_queue_depth)",
                          "{{messaging_destination_name}}")], "short", w=8),
        timeseries("Oldest message age", "Age of the oldest waiting message per topic.",
                   [query("max by (messaging_destination_name) (messaging_queue_oldest_message_age_seconds)",
                          "{{messaging_destination_name}}")], "s", w=8),
        timeseries("Consumer lag and in flight", "Messages not yet acknowledged, and delivered but unacked.",
                   [query("sum by (messaging_destination_name) (messaging_queue_consumer_lag)",
                          "{{messaging_destination_name}} lag"),
                    query("sum by (messaging_destination_name) (messaging_queue_in_flight)",
                          "{{messaging_destination_name}} in flight")], "short", w=8),
        timeseries("Throughput", "Messages sent, consumed and acknowledged per second.",
                   [query(f"sum by (messaging_destination_name) (rate(messaging_client_sent_messages_total[{RATE}]))",
                          "{{messaging_destination_name}} sent"),
                    query(f"sum by (messaging_destination_name) (rate(messaging_client_consumed_messages_total[{RATE}]))",
                          "{{messaging_destination_name}} consumed"),
                    query(f"sum by (messaging_destination_name) (rate(messaging_client_acked_messages_total[{RATE}]))",
                          "{{messaging_destination_name}} acked")], "ops", w=8),
        timeseries("Dead letters", "Dead-letter queue depth, and messages dead-lettered per second.",
                   [query("sum by (messaging_destination_name) (messaging_queue_dead_letter_depth)",
                          "{{messaging_destination_name}} depth"),
                    query(f"sum by (messaging_destination_name) (rate(messaging_queue_dead_lettered_messages_total[{RATE}]))"
                          f" or sum by (messaging_destination_name) (messaging_queue_dead_letter_depth) * 0",
                          "{{messaging_destination_name}} per second")], "short", w=8),
        timeseries("Consumer delay (p99)", "Time from publish to processing, per consumer.",
                   [query(f"histogram_quantile(0.99, sum by (le) (rate(notification_delivery_lag_seconds_bucket[{RATE}])))",
                          "notification"),
                    query(f"histogram_quantile(0.99, sum by (le, messaging_destination_name) (rate(projector_lag_seconds_bucket[{RATE}])))",
                          "projector {{messaging_destination_name}}")], "s", w=8),
    ]
    return dashboard("firedrill-data-stores", "Data stores",
                     "The shared database and its pools, the cache, and the message queue.",
                     panels, tags=["data"])


# === Telemetry pipeline =========================================================

def telemetry():
    panels = [
        row("Scrapes"),
        state_timeline("Targets up", "Whether Prometheus could scrape each process.",
                       [query("up", "{{instance}}")], "none", h=10, mappings=UP_MAPPINGS,
                       steps=thresholds((None, "red"), (1, "green"))),
        timeseries("Scrape duration", "How long each scrape took, per target.",
                   [query("scrape_duration_seconds", "{{instance}}")], "s", w=12),
        timeseries("Samples per scrape", "Series exposed by each target.",
                   [query("scrape_samples_scraped", "{{instance}}")], "short", w=12),

        row("Collector (OTLP)"),
        timeseries("Items by outcome", "Spans, log records and metric points per second, by outcome.",
                   [query(f"sum by (signal, outcome) (rate(firedrill_collector_items_total[{RATE}]))",
                          "{{signal}} {{outcome}}")], "short", w=12),
        timeseries("Export requests", "OTLP export requests per second by transport, signal and result.",
                   [query(f"sum by (transport, signal, result) (rate(firedrill_collector_export_requests_total[{RATE}]))",
                          "{{transport}} {{signal}} {{result}}")], "reqps", w=12),
        bargauge("Store fill", "Items held by each collector store over its capacity.",
                 [query("sum by (store) (firedrill_collector_store_items) / sum by (store) (firedrill_collector_store_capacity)",
                        "{{store}}", instant=True, fmt="time_series")],
                 "percentunit", w=12, minimum=0, maximum=1,
                 steps=thresholds((None, "green"), (0.8, "orange"), (0.95, "red"))),
        timeseries("Spans by service (span metrics)",
                   "Spans per second by service, derived by the collector "
                   "(traces_span_metrics_calls_total).",
                   [query(f"sum by (service_name) (rate(traces_span_metrics_calls_total[{RATE}]))",
                          "{{service_name}}")], "short", w=12),

        row("Prometheus"),
        stat("Head series", "Series in Prometheus's head block.",
             [query('prometheus_tsdb_head_series{job="prometheus"}')], "short", w=6),
        stat("Exemplars stored", "Exemplars held (trace links from histograms).",
             [query('prometheus_tsdb_exemplar_exemplars_in_storage{job="prometheus"}')], "short", w=6),
        timeseries("Rule evaluation", "Slowest rule group evaluation, and failed evaluations per second.",
                   [query('max(prometheus_rule_group_last_duration_seconds{job="prometheus"})', "slowest group"),
                    query(f'sum(rate(prometheus_rule_evaluation_failures_total{{job="prometheus"}}[{RATE}]))',
                          "failures/s")], "s", w=12),
    ]
    return dashboard("firedrill-telemetry", "Telemetry pipeline",
                     "Is the telemetry itself healthy? Scrapes, the OTLP collector, Prometheus.",
                     panels, tags=["telemetry"])


# === Load generator ==============================================================

def loadgen():
    done = 'outcome=~"success|failure"'
    panels = [
        row("What users experience"),
        stat("Target rate", "Journeys per second the load generator aims for.",
             [query("sum(loadgen_target_rate)")], "suffix: journeys/s", w=6),
        stat("Achieved rate", "Journeys per second started (any outcome).",
             [query(f"sum(rate(loadgen_journeys_total[{RATE}]))")], "suffix: journeys/s", w=6),
        stat("Journey success", "Share of finished journeys that succeeded end to end.",
             [query(f'sum(rate(loadgen_journeys_total{{outcome="success"}}[{RATE}])) / '
                    f"sum(rate(loadgen_journeys_total{{{done}}}[{RATE}]))")],
             "percentunit", w=6, decimals=2,
             steps=thresholds((None, "red"), (0.95, "orange"), (0.99, "green"))),
        stat("In flight", "Journeys started and not finished.",
             [query("sum(loadgen_in_flight)")], "short", w=6),
        timeseries("Journeys by kind and outcome", "Journeys per second by kind and outcome.",
                   [query(f"sum by (journey, outcome) (rate(loadgen_journeys_total[{RATE}]))",
                          "{{journey}} {{outcome}}")], "short", w=12),
        timeseries("Failure ratio by journey", "Share of finished journeys that failed, per kind.",
                   [query(f'sum by (journey) (rate(loadgen_journeys_total{{outcome="failure"}}[{RATE}])) / '
                          f"sum by (journey) (rate(loadgen_journeys_total{{{done}}}[{RATE}]))",
                          "{{journey}}")], "percentunit", w=12),
        timeseries("Journey latency p99",
                   "99th percentile journey latency, from the intended start (queueing "
                   "included). Exemplars link to the journey's trace.",
                   [query(f"histogram_quantile(0.99, sum by (le, journey) (rate(loadgen_journey_duration_seconds_bucket[{RATE}])))",
                          "{{journey}}", exemplar=True)], "s", w=12),
        heatmap("Journey latency distribution", "Journeys per latency bucket over time.",
                query(f"sum by (le) (rate(loadgen_journey_duration_seconds_bucket[{RATE}]))",
                      "{{le}}", fmt="heatmap", exemplar=True), "s", w=12),
        timeseries("Requests by step and status", "HTTP requests per second by journey step and answer.",
                   [query(f"sum by (step, status) (rate(loadgen_requests_total[{RATE}]))",
                          "{{step}} {{status}}")], "reqps", w=12),
        timeseries("Client view vs server view (p99)",
                   "The load generator's p99 against the gateway's: a gap is time spent "
                   "before the gateway measured anything (queueing, connection setup).",
                   [query(f"histogram_quantile(0.99, sum by (le) (rate(loadgen_journey_duration_seconds_bucket{{journey=\"browse\"}}[{RATE}])))",
                          "loadgen browse journey"),
                    query(f'histogram_quantile(0.99, sum by (le) (rate({SERVER}_bucket{{job="gateway", http_route="/api/products"}}[{RATE}])))',
                          "gateway GET /api/products")], "s", w=12),
    ]
    return dashboard("firedrill-loadgen", "Load generator",
                     "The client-side view: what the synthetic users asked for and what they got.",
                     panels, tags=["loadgen"])


def all_dashboards():
    return {
        "shop-overview": shop_overview(),
        "service-detail": service_detail(),
        "slo": slo_dashboard(),
        "data-stores": data_stores(),
        "telemetry-pipeline": telemetry(),
        "loadgen": loadgen(),
    }
