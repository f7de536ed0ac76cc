//! Reading just enough of an encoded OTLP message to count its items, for
//! the refusal path: an export that will be refused anyway (queue full,
//! memory pressure, shutting down) must still have its items counted, but
//! should not be decoded into owned messages first. Counting walks the
//! protobuf wire format without allocating.

/// Field numbers from `ExportTraceServiceRequest` down to a span:
/// `resource_spans` (1) → `scope_spans` (2) → `spans` (2).
const SPANS_PATH: [u32; 3] = [1, 2, 2];

/// Spans in an encoded `ExportTraceServiceRequest`; `None` when the bytes
/// are not valid protobuf (the caller then decodes normally, and the
/// sender gets its 400 / INVALID_ARGUMENT from that).
pub fn count_spans(encoded: &[u8]) -> Option<u64> {
    count_nested(encoded, &SPANS_PATH)
}

/// Occurrences of the length-delimited field at `path` (field numbers, one
/// per nesting level) in `message`.
fn count_nested(mut message: &[u8], path: &[u32]) -> Option<u64> {
    let (&field, rest) = path.split_first()?;
    let mut count = 0;
    while !message.is_empty() {
        let key = varint(&mut message)?;
        let number = u32::try_from(key >> 3).ok()?;
        match key & 7 {
            0 => {
                varint(&mut message)?;
            }
            1 => message = message.get(8..)?,
            2 => {
                let len = usize::try_from(varint(&mut message)?).ok()?;
                let payload = message.get(..len)?;
                message = &message[len..];
                if number == field {
                    count += if rest.is_empty() {
                        1
                    } else {
                        count_nested(payload, rest)?
                    };
                }
            }
            5 => message = message.get(4..)?,
            // Groups (3, 4) are not used by OTLP; anything else is invalid.
            _ => return None,
        }
    }
    Some(count)
}

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first()?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::{
        collector::trace::v1::ExportTraceServiceRequest,
        common::v1::InstrumentationScope,
        resource::v1::Resource,
        trace::v1::{ResourceSpans, ScopeSpans, Span},
    };
    use prost::Message as _;

    use super::*;

    #[test]
    fn counts_spans_across_resources_and_scopes() {
        let spans = |n: usize| ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "lib".into(),
                ..Default::default()
            }),
            spans: vec![
                Span {
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    name: "GET /".into(),
                    start_time_unix_nano: 5,
                    kind: 2,
                    ..Default::default()
                };
                n
            ],
            ..Default::default()
        };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![
                ResourceSpans {
                    resource: Some(Resource::default()),
                    scope_spans: vec![spans(3), spans(0), spans(2)],
                    ..Default::default()
                },
                ResourceSpans {
                    scope_spans: vec![spans(4)],
                    ..Default::default()
                },
            ],
        };
        let encoded = request.encode_to_vec();
        assert_eq!(count_spans(&encoded), Some(9));
        assert_eq!(count_spans(&[]), Some(0));
        assert_eq!(count_spans(&encoded[..encoded.len() - 1]), None);
        assert_eq!(count_spans(&[0x0a, 0x05, 0x00]), None);
    }
}
