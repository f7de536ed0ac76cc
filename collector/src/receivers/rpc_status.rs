//! `google.rpc.Status` and `google.rpc.RetryInfo`, the two error messages
//! OTLP uses: in OTLP/HTTP error bodies, and (encoded) in gRPC's
//! `grpc-status-details-bin` trailer. opentelemetry-proto does not ship
//! them, and these few fields are all an OTLP client reads.

use std::time::Duration;

use serde::Serialize;

const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Any>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct Any {
    #[prost(string, tag = "1")]
    #[serde(rename = "@type")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    #[serde(skip)]
    pub value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    pub retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoDuration {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl RpcStatus {
    pub fn new(code: tonic::Code, message: String) -> Self {
        Self {
            code: code as i32,
            message,
            details: Vec::new(),
        }
    }

    /// A status carrying a `RetryInfo` detail with `delay`.
    pub fn retry_after(code: tonic::Code, message: &str, delay: Duration) -> Self {
        use prost::Message as _;
        let retry = RetryInfo {
            retry_delay: Some(ProtoDuration {
                seconds: i64::try_from(delay.as_secs()).unwrap_or(i64::MAX),
                nanos: i32::try_from(delay.subsec_nanos()).unwrap_or(0),
            }),
        };
        Self {
            code: code as i32,
            message: message.to_owned(),
            details: vec![Any {
                type_url: RETRY_INFO_TYPE.to_owned(),
                value: retry.encode_to_vec(),
            }],
        }
    }

    /// The `RetryInfo` delay, if this status carries one.
    #[cfg(test)]
    pub fn retry_delay(&self) -> Option<Duration> {
        use prost::Message as _;
        let detail = self
            .details
            .iter()
            .find(|d| d.type_url == RETRY_INFO_TYPE)?;
        let delay = RetryInfo::decode(detail.value.as_slice())
            .ok()?
            .retry_delay?;
        Some(Duration::new(
            u64::try_from(delay.seconds).ok()?,
            u32::try_from(delay.nanos).ok()?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn retry_info_round_trips_through_protobuf() {
        let status = RpcStatus::retry_after(
            tonic::Code::Unavailable,
            "busy",
            Duration::from_millis(1500),
        );
        let decoded = RpcStatus::decode(status.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded.code, tonic::Code::Unavailable as i32);
        assert_eq!(decoded.retry_delay(), Some(Duration::from_millis(1500)));
    }
}
