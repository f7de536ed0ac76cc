//! Service-graph metrics as the contrib `servicegraph` connector names them:
//! `traces_service_graph_request_total`, `..._failed_total`, and the
//! `..._server_seconds` / `..._client_seconds` histograms, labelled
//! `client`, `server` and `connection_type`.
//!
//! An edge is a client span (kind CLIENT or PRODUCER) and the server span
//! (SERVER or CONSUMER) whose parent it is. The two halves come from
//! different processes, in either order, often in different exports, so
//! the first to arrive waits in a bounded map keyed by (trace id, client
//! span id). A half that waits too long is resolved without its peer:
//! a client span naming a database (`db.system.name`, or the older
//! `db.system`) becomes an edge to that database (`connection_type`
//! `database`); one naming its peer (`peer.service`, `server.address`)
//! becomes an edge to a virtual node; anything else is given up and
//! counted. A root server span is an edge from the virtual client `user`.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
};

use super::{DerivedLimits, SpanFacts};
use crate::{
    hashing::FastHash,
    model::{SpanId, TraceId},
    openmetrics::{Exemplar, Histogram, Writer},
    otlp::traces::{SpanView, string_attributes},
};

/// The connector's default buckets, in seconds.
const BOUNDS: [f64; 12] = [
    0.002, 0.004, 0.006, 0.008, 0.01, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.4,
];

const SERVER_KINDS: [i32; 2] = [2, 5];
const CLIENT_KINDS: [i32; 2] = [3, 4];
const MESSAGING_KINDS: [i32; 2] = [4, 5];

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct EdgeKey {
    client: Arc<str>,
    server: Arc<str>,
    connection_type: &'static str,
}

#[derive(Debug)]
struct Edge {
    total: u64,
    failed: u64,
    latest: Exemplar,
    server_seconds: Histogram,
    client_seconds: Histogram,
}

/// One side of an edge, waiting for the other.
#[derive(Debug)]
struct Half {
    client_side: bool,
    service: Arc<str>,
    seconds: f64,
    failed: bool,
    messaging: bool,
    exemplar: Exemplar,
    /// Where a client span says it goes, for resolving it alone.
    peer: Option<(Arc<str>, &'static str)>,
    expires_at: u64,
}

type PendingKey = (TraceId, SpanId);

#[derive(Debug)]
pub struct ServiceGraph {
    limits: DerivedLimits,
    pending: HashMap<PendingKey, Half, FastHash>,
    /// Pending keys in arrival order, for expiry; stale keys (already
    /// paired) are skipped when popped.
    arrivals: VecDeque<(u64, PendingKey)>,
    edges: HashMap<EdgeKey, Edge, FastHash>,
    dropped: u64,
    /// The virtual client of root server spans.
    user: Arc<str>,
}

impl ServiceGraph {
    pub fn new(limits: DerivedLimits) -> Self {
        Self {
            limits,
            pending: HashMap::default(),
            arrivals: VecDeque::new(),
            edges: HashMap::default(),
            dropped: 0,
            user: "user".into(),
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn observe(&mut self, facts: &SpanFacts<'_>, span: &SpanView<'_>) {
        let client_side = CLIENT_KINDS.contains(&facts.kind);
        if !client_side && !SERVER_KINDS.contains(&facts.kind) {
            return;
        }
        let key = if client_side {
            (facts.trace_id, facts.span_id)
        } else {
            match facts.parent {
                Some(parent) => (facts.trace_id, parent),
                None => {
                    // A root server span: its caller is outside the mesh.
                    let half = self.half(facts, span, false);
                    let user = Arc::clone(&self.user);
                    self.record(
                        user,
                        Arc::clone(&half.service),
                        "virtual_node",
                        None,
                        Some(&half),
                    );
                    return;
                }
            }
        };
        let half = self.half(facts, span, client_side);
        match self.pending.remove(&key) {
            Some(other) if other.client_side != client_side => {
                let (client, server) = if client_side {
                    (&half, &other)
                } else {
                    (&other, &half)
                };
                let connection_type = if client.messaging || server.messaging {
                    "messaging_system"
                } else {
                    ""
                };
                self.record(
                    Arc::clone(&client.service),
                    Arc::clone(&server.service),
                    connection_type,
                    Some(client),
                    Some(server),
                );
            }
            // Same side twice (a duplicate span): keep the newer one.
            _ => self.wait(key, half),
        }
    }

    fn half(&self, facts: &SpanFacts<'_>, span: &SpanView<'_>, client_side: bool) -> Half {
        let peer = client_side.then(|| peer_of(span)).flatten();
        Half {
            client_side,
            service: Arc::clone(facts.service),
            seconds: facts.seconds,
            failed: facts.failed(),
            messaging: MESSAGING_KINDS.contains(&facts.kind),
            exemplar: facts.exemplar(),
            peer,
            expires_at: facts.end_unix_nano.max(1) + self.limits.edge_wait_nanos,
        }
    }

    fn wait(&mut self, key: PendingKey, half: Half) {
        if self.pending.len() >= self.limits.max_pending_edges {
            // Make room by resolving the oldest waiter early.
            while let Some((_, oldest)) = self.arrivals.pop_front() {
                if let Some(old) = self.pending.remove(&oldest) {
                    self.resolve_alone(old);
                    break;
                }
            }
        }
        self.arrivals.push_back((half.expires_at, key));
        self.pending.insert(key, half);
    }

    /// Resolves every half whose wait ended before `now`.
    pub fn expire(&mut self, now_unix_nano: u64) {
        while let Some(&(expires_at, key)) = self.arrivals.front() {
            if expires_at > now_unix_nano {
                break;
            }
            self.arrivals.pop_front();
            if let Some(half) = self.pending.remove(&key) {
                if half.expires_at <= now_unix_nano {
                    self.resolve_alone(half);
                } else {
                    // Replaced by a newer half under the same key; it has
                    // its own, later arrival entry.
                    self.pending.insert(key, half);
                }
            }
        }
    }

    fn resolve_alone(&mut self, half: Half) {
        match (&half.peer, half.client_side) {
            (Some((peer, connection_type)), true) => {
                let (peer, connection_type) = (Arc::clone(peer), *connection_type);
                let client = Arc::clone(&half.service);
                self.record(client, peer, connection_type, Some(&half), None);
            }
            _ => self.dropped += 1,
        }
    }

    fn record(
        &mut self,
        client: Arc<str>,
        server: Arc<str>,
        connection_type: &'static str,
        client_half: Option<&Half>,
        server_half: Option<&Half>,
    ) {
        let key = EdgeKey {
            client,
            server,
            connection_type,
        };
        if !self.edges.contains_key(&key) && self.edges.len() >= self.limits.max_series {
            self.dropped += 1;
            return;
        }
        let Some(exemplar) = client_half.or(server_half).map(|h| h.exemplar) else {
            return;
        };
        let edge = self.edges.entry(key).or_insert_with(|| Edge {
            total: 0,
            failed: 0,
            latest: exemplar,
            server_seconds: Histogram::new(&BOUNDS),
            client_seconds: Histogram::new(&BOUNDS),
        });
        edge.total += 1;
        edge.latest = exemplar;
        if client_half.is_some_and(|h| h.failed) || server_half.is_some_and(|h| h.failed) {
            edge.failed += 1;
        }
        if let Some(h) = client_half {
            let e = Exemplar {
                value: h.seconds,
                ..h.exemplar
            };
            edge.client_seconds.observe(&BOUNDS, h.seconds, Some(e));
        }
        if let Some(h) = server_half {
            let e = Exemplar {
                value: h.seconds,
                ..h.exemplar
            };
            edge.server_seconds.observe(&BOUNDS, h.seconds, Some(e));
        }
    }

    pub fn render(&self, out: &mut Writer) {
        let mut edges: Vec<_> = self.edges.iter().collect();
        edges.sort_by(|a, b| a.0.cmp(b.0));
        let labels = |key: &'_ EdgeKey| {
            [
                ("client", key.client.to_string()),
                ("server", key.server.to_string()),
                ("connection_type", key.connection_type.to_owned()),
            ]
        };
        let counters = [
            (
                "traces_service_graph_request",
                "Requests between two services",
                false,
            ),
            (
                "traces_service_graph_request_failed",
                "Failed requests between two services",
                true,
            ),
        ];
        for (name, help, failed) in counters {
            out.family(name, "counter", help, "");
            for (key, edge) in &edges {
                let owned = labels(key);
                let pairs = owned.each_ref().map(|(k, v)| (*k, v.as_str()));
                let value = if failed { edge.failed } else { edge.total };
                let exemplar = Exemplar {
                    value: 1.0,
                    ..edge.latest
                };
                let exemplar = (value > 0).then_some(exemplar);
                out.sample_with(
                    name,
                    "_total",
                    &pairs,
                    None,
                    value as f64,
                    exemplar.as_ref(),
                );
            }
        }
        let histograms = [
            (
                "traces_service_graph_request_server_seconds",
                "Server-side durations of requests between two services",
                true,
            ),
            (
                "traces_service_graph_request_client_seconds",
                "Client-side durations of requests between two services",
                false,
            ),
        ];
        for (name, help, server) in histograms {
            out.family(name, "histogram", help, "seconds");
            for (key, edge) in &edges {
                let owned = labels(key);
                let pairs = owned.each_ref().map(|(k, v)| (*k, v.as_str()));
                let histogram = if server {
                    &edge.server_seconds
                } else {
                    &edge.client_seconds
                };
                histogram.write(out, name, &pairs, &BOUNDS);
            }
        }
    }
}

/// Where a client span goes when no server span answers it: a database,
/// a messaging system, or a peer, from the first of these attributes it
/// carries as a string.
fn peer_of(span: &SpanView<'_>) -> Option<(Arc<str>, &'static str)> {
    const PEERS: [(&str, &str); 5] = [
        ("db.system.name", "database"),
        ("db.system", "database"),
        ("messaging.system", "messaging_system"),
        ("peer.service", "virtual_node"),
        ("server.address", "virtual_node"),
    ];
    let values = string_attributes(span.attributes(), PEERS.map(|(key, _)| key));
    values
        .into_iter()
        .zip(PEERS)
        .find_map(|(value, (_, connection_type))| Some((Arc::from(&*value?), connection_type)))
}
