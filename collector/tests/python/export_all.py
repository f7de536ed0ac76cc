"""Exports one trace, one log record and a few metrics with the official
OpenTelemetry Python SDK, then prints what it sent as JSON so the Rust test
can check that the collector gives the same data back.

Usage: export_all.py grpc|http ENDPOINT SERVICE
  grpc: ENDPOINT is http://host:port of the OTLP/gRPC receiver
  http: ENDPOINT is http://host:port of the OTLP/HTTP receiver (gzip is used)
"""

import json
import sys

from opentelemetry._logs import SeverityNumber
from opentelemetry.metrics import Observation
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context


def exporters(transport, endpoint):
    if transport == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return (
            OTLPSpanExporter(endpoint=endpoint, insecure=True),
            OTLPLogExporter(endpoint=endpoint, insecure=True),
            OTLPMetricExporter(endpoint=endpoint, insecure=True),
        )
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    gzip = Compression.Gzip
    return (
        OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", compression=gzip),
        OTLPLogExporter(endpoint=f"{endpoint}/v1/logs", compression=gzip),
        OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics", compression=gzip),
    )


def main():
    transport, endpoint, service = sys.argv[1:4]
    resource = Resource.create(
        {
            "service.name": service,
            "service.instance.id": f"{service}-1",
            "service.version": "3.1.4",
        }
    )
    span_exporter, log_exporter, metric_exporter = exporters(transport, endpoint)

    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    tracer = tracer_provider.get_tracer("firedrill.interop", "0.1")

    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    logger = logger_provider.get_logger("firedrill.interop")

    # A long interval: the only export is the one shutdown forces.
    reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=3_600_000)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    meter = meter_provider.get_meter("firedrill.interop")

    root = tracer.start_span(
        "GET /py",
        kind=SpanKind.SERVER,
        attributes={
            "http.request.method": "GET",
            "http.response.status_code": 200,
            "py.flag": True,
            "py.ratio": 0.5,
        },
    )
    context = set_span_in_context(root)
    child = tracer.start_span(
        "SELECT orders",
        kind=SpanKind.CLIENT,
        context=context,
        attributes={"db.system.name": "postgresql"},
    )
    child.add_event("retrying", {"attempt": 2})
    child.set_status(Status(StatusCode.ERROR, "deadlock"))
    child.end()
    logger.emit(
        context=set_span_in_context(child),
        severity_number=SeverityNumber.WARN,
        severity_text="WARN",
        body="python says the query deadlocked",
        attributes={"db.attempt": 2},
    )
    root.end()

    orders = meter.create_counter("py.orders", unit="{order}", description="Orders placed")
    orders.add(7, {"route": "/py"})
    latency = meter.create_histogram("py.latency", unit="s")
    latency.record(0.25, {"route": "/py"})
    queue = meter.create_up_down_counter("py.queue.depth")
    queue.add(5)
    queue.add(-2)
    meter.create_observable_gauge(
        "py.pool.usage", callbacks=[lambda _options: [Observation(0.75)]], unit="1"
    )

    tracer_provider.shutdown()
    logger_provider.shutdown()
    meter_provider.shutdown()

    root_context = root.get_span_context()
    print(
        json.dumps(
            {
                "trace_id": format(root_context.trace_id, "032x"),
                "root_span_id": format(root_context.span_id, "016x"),
                "child_span_id": format(child.get_span_context().span_id, "016x"),
                "root_start_ns": root.start_time,
                "root_end_ns": root.end_time,
                "child_start_ns": child.start_time,
                "child_end_ns": child.end_time,
            }
        )
    )


if __name__ == "__main__":
    main()
