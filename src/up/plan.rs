//! Which processes the lab runs, where, and with which flags.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::Path;

use anyhow::{Context as _, bail};

use firedrill_loadgen::JourneyKind;

use super::UpArgs;

/// One process of the lab.
#[derive(Clone, Debug)]
pub struct Component {
    /// `catalog-2`, `collector`, `loadgen`.
    pub id: String,
    /// The service name (`catalog`), or the role for non-services.
    pub name: String,
    /// Arguments after the executable.
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Where `/health` answers.
    pub health_url: String,
    /// Where `/metrics` answers.
    pub metrics_url: String,
}

impl Component {
    /// Whether this is a shop service (`firedrill service <name>`), which
    /// reports a `service.version` and can be rolled to another one.
    pub fn is_service(&self) -> bool {
        self.argv.first().is_some_and(|a| a == "service")
    }
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub components: Vec<Component>,
    pub gateway_url: String,
    pub query_url: String,
    pub otlp_grpc: String,
    pub otlp_http: String,
    pub loadgen_url: Option<String>,
    pub controller_url: String,
    /// Where the instructor token is stored.
    pub instructor_token_file: String,
    pub database: String,
    /// The Prometheus `up` starts beside the lab (see `prometheus.rs`).
    pub prometheus_bin: Option<std::path::PathBuf>,
    pub prometheus_url: Option<String>,
}

/// The lab's secrets: the instructor's token (given or generated) and the
/// token fault agents present to the controller.
pub struct Tokens {
    pub instructor: String,
    pub instructor_file: std::path::PathBuf,
    pub agent: String,
}

impl Tokens {
    pub fn for_run(args: &UpArgs, run_dir: &Path) -> anyhow::Result<Tokens> {
        let instructor = match &args.instructor_token {
            Some(t) if t.trim().len() >= 8 => t.trim().to_string(),
            Some(_) => bail!("--instructor-token must be at least 8 characters"),
            None => random_token(),
        };
        let instructor_file = run_dir.join("instructor-token");
        write_secret(&instructor_file, &instructor)?;
        Ok(Tokens {
            instructor,
            instructor_file,
            agent: random_token(),
        })
    }
}

fn random_token() -> String {
    use rand::Rng as _;
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes a file only its owner can read.
fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(file, "{secret}")?;
    Ok(())
}

/// How many times the load's nominal charge rate the payment processor
/// admits (its merchant rate limit). Sized from the load so that the
/// processor runs at the same utilisation, about 40 % (not every checkout
/// journey gets as far as a charge), whatever `--load-rate` is: the
/// retry-storm scenario is calibrated to that utilisation, not to a number
/// of requests per second.
pub const MERCHANT_RATE_HEADROOM: f64 = 2.0;

/// The processor's merchant rate for `load_rate` journeys per second of the
/// load generator's default mix (one charge per checkout journey).
pub fn merchant_rate(load_rate: f64) -> f64 {
    let checkouts = load_rate * firedrill_loadgen::Mix::default().share(JourneyKind::Checkout);
    (checkouts * MERCHANT_RATE_HEADROOM).clamp(0.5, 10_000.0)
}

/// Services in start order, with what they need.
const SERVICES: &[(&str, Needs)] = &[
    ("queue", Needs::QueueDb),
    ("cache", Needs::Nothing),
    ("payment-provider", Needs::Nothing),
    ("auth", Needs::ShopDb),
    ("catalog", Needs::ShopDb),
    ("inventory", Needs::ShopDb),
    ("payment", Needs::ShopDb),
    ("shipping", Needs::ShopDb),
    ("cart", Needs::ShopDb),
    ("checkout", Needs::ShopDb),
    ("search", Needs::Nothing),
    ("notification", Needs::ShopDb),
    ("projector", Needs::ShopDb),
    ("gateway", Needs::Nothing),
];

#[derive(Clone, Copy, Debug)]
enum Needs {
    Nothing,
    ShopDb,
    QueueDb,
}

/// Hands out ports: fixed ones are checked free; with `--base-port 0`, free
/// ports are picked below the kernel's ephemeral range.
///
/// Asking the kernel for port 0 would hand out ephemeral ports, and between
/// the check here and the child's bind an outgoing connection (the lab makes
/// thousands) may take the same port. Ports below the ephemeral range are
/// only ever taken by an explicit bind, so the window cannot be hit by the
/// lab's own traffic.
struct Ports {
    bind: IpAddr,
    auto: bool,
    next: u16,
}

impl Ports {
    fn new(bind: IpAddr, base_port: u16) -> Ports {
        let auto = base_port == 0;
        let next = if auto {
            random_start(ephemeral_floor())
        } else {
            base_port
        };
        Ports { bind, auto, next }
    }

    fn take(&mut self, fixed: Option<u16>, what: &str, flag: &str) -> anyhow::Result<u16> {
        if self.auto {
            // `--base-port 0` picks every port, fixed defaults included.
            return self.take_free(what);
        }
        let port = match fixed {
            Some(p) => p,
            None => self.advance()?,
        };
        self.check(port, what, flag)
    }

    /// Auto mode: the next port from the cursor that is free right now.
    fn take_free(&mut self, what: &str) -> anyhow::Result<u16> {
        for _ in 0..2000 {
            let port = self.advance()?;
            if TcpListener::bind(SocketAddr::new(self.bind, port)).is_ok() {
                return Ok(port);
            }
        }
        bail!("no free port found for {what}; pass explicit ports with --base-port")
    }

    fn advance(&mut self) -> anyhow::Result<u16> {
        let port = self.next;
        self.next = self
            .next
            .checked_add(1)
            .context("ran out of ports above --base-port")?;
        Ok(port)
    }

    /// Binding proves the port is free now; the listener is released for the
    /// child, which binds it moments later.
    fn check(&self, port: u16, what: &str, flag: &str) -> anyhow::Result<u16> {
        match TcpListener::bind(SocketAddr::new(self.bind, port)) {
            Ok(l) => Ok(l.local_addr()?.port()),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                bail!(
                    "port {port} ({what}) is already in use; free it or choose another with {flag}"
                )
            }
            Err(e) => bail!("cannot use port {port} ({what}): {e}"),
        }
    }
}

/// The lowest port the kernel hands out for outgoing connections.
fn ephemeral_floor() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// A random starting point in [10000, floor - 500), so concurrent labs (tests
/// run several) rarely probe the same ports.
fn random_start(floor: u16) -> u16 {
    use rand::Rng as _;
    let low = 10_000u16;
    let high = floor.saturating_sub(500).max(low + 1000);
    rand::rng().random_range(low..high)
}

pub fn parse_instances(spec: &str) -> anyhow::Result<BTreeMap<String, u32>> {
    let mut map = BTreeMap::new();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, count) = entry
            .split_once('=')
            .with_context(|| format!("--instances: {entry:?} is not name=count"))?;
        if !SERVICES.iter().any(|(s, _)| *s == name) {
            bail!("--instances: unknown service {name:?}");
        }
        let count: u32 = count
            .parse()
            .ok()
            .filter(|c| (1..=8).contains(c))
            .with_context(|| {
                format!("--instances: count for {name} must be 1..=8, got {count:?}")
            })?;
        if name == "gateway" && count != 1 {
            bail!("--instances: the gateway runs exactly once (it owns the public port)");
        }
        map.insert(name.to_string(), count);
    }
    Ok(map)
}

impl Plan {
    pub fn new(args: &UpArgs, run_dir: &Path, tokens: &Tokens) -> anyhow::Result<Plan> {
        if !args.load_rate.is_finite() || args.load_rate < 0.0 {
            bail!(
                "--load-rate must be a non-negative number, got {}",
                args.load_rate
            );
        }
        let instances = parse_instances(&args.instances)?;
        let mut ports = Ports::new(args.bind, args.base_port);
        let host = args.bind.to_string();
        let url = |port: u16| format!("http://{host}:{port}");

        let grpc = ports.take(
            Some(args.otlp_grpc_port),
            "collector OTLP/gRPC",
            "--otlp-grpc-port",
        )?;
        let http = ports.take(
            Some(args.otlp_http_port),
            "collector OTLP/HTTP",
            "--otlp-http-port",
        )?;
        let query = ports.take(Some(args.query_port), "collector query API", "--query-port")?;
        let gateway_port = ports.take(Some(args.gateway_port), "gateway", "--gateway-port")?;
        let controller_port = ports.take(
            Some(args.controller_port),
            "fault controller",
            "--controller-port",
        )?;
        let prometheus_bin = super::prometheus::binary(&args.prometheus)?;
        let prometheus_url = match prometheus_bin {
            Some(_) => Some(url(ports.take(
                Some(args.prometheus_port),
                "Prometheus",
                "--prometheus-port",
            )?)),
            None => None,
        };

        // Every instance's port, decided before any process starts, so each
        // one can be told where all its peers are.
        let mut placed: Vec<(&str, Needs, u32, u16)> = Vec::new();
        for (name, needs) in SERVICES {
            let count = instances.get(*name).copied().unwrap_or(1);
            for i in 1..=count {
                let port = if *name == "gateway" {
                    gateway_port
                } else {
                    ports.take(None, &format!("{name}-{i}"), "--base-port")?
                };
                placed.push((name, *needs, i, port));
            }
        }
        let mut peers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, _, _, port) in &placed {
            peers.entry(name.to_string()).or_default().push(url(*port));
        }
        let peers = firedrill_runtime::config::format_peers(&peers);
        let shop_db = run_dir.join("shop.db").display().to_string();
        let queue_db = run_dir.join("queue.db").display().to_string();
        let otlp = if args.telemetry_export {
            match args.otlp_protocol {
                firedrill_runtime::config::OtlpProtocol::Grpc => url(grpc),
                firedrill_runtime::config::OtlpProtocol::Http => url(http),
            }
        } else {
            String::new()
        };
        let protocol = match args.otlp_protocol {
            firedrill_runtime::config::OtlpProtocol::Grpc => "grpc",
            firedrill_runtime::config::OtlpProtocol::Http => "http",
        };

        let mut components = vec![Component {
            id: "collector".into(),
            name: "collector".into(),
            argv: vec![
                "collector".into(),
                "--otlp-grpc-listen".into(),
                format!("{host}:{grpc}"),
                "--otlp-http-listen".into(),
                format!("{host}:{http}"),
                "--query-listen".into(),
                format!("{host}:{query}"),
            ],
            env: vec![],
            health_url: format!("{}/health", url(query)),
            metrics_url: format!("{}/metrics", url(query)),
        }];
        components.push(Component {
            id: "controller".into(),
            name: "controller".into(),
            argv: vec![
                "controller".into(),
                "--listen".into(),
                format!("{host}:{controller_port}"),
                "--state-dir".into(),
                run_dir.join("controller").display().to_string(),
                "--scenarios".into(),
                args.scenarios.display().to_string(),
                "--run-dir".into(),
                run_dir.display().to_string(),
                "--lease".into(),
                format!("{}ms", args.fault_lease.as_millis()),
            ],
            env: vec![
                (
                    "FIREDRILL_INSTRUCTOR_TOKEN".into(),
                    tokens.instructor.clone(),
                ),
                ("FIREDRILL_AGENT_TOKEN".into(), tokens.agent.clone()),
                // Which instances exist (drains) and where the queue is
                // (dead-letter ops).
                ("FIREDRILL_PEERS".into(), peers.clone()),
            ],
            health_url: format!("{}/health", url(controller_port)),
            metrics_url: format!("{}/metrics", url(controller_port)),
        });
        for (name, needs, instance, port) in &placed {
            let mut argv = vec![
                "service".to_string(),
                name.to_string(),
                "--listen".into(),
                format!("{host}:{port}"),
                "--instance".into(),
                instance.to_string(),
                "--seed".into(),
                (args.seed.wrapping_mul(1000) + components.len() as u64).to_string(),
            ];
            match needs {
                Needs::ShopDb => argv.extend(["--database".into(), shop_db.clone()]),
                Needs::QueueDb => argv.extend(["--database".into(), queue_db.clone()]),
                Needs::Nothing => {}
            }
            if *name == "gateway" {
                // The edge sheds earlier than the services behind it.
                argv.extend(["--max-in-flight".into(), "512".into()]);
            }
            let mut env = vec![
                ("FIREDRILL_PEERS".into(), peers.clone()),
                ("FIREDRILL_OTLP_ENDPOINT".into(), otlp.clone()),
                ("FIREDRILL_OTLP_PROTOCOL".into(), protocol.into()),
                ("FIREDRILL_CONTROLLER".into(), url(controller_port)),
                ("FIREDRILL_AGENT_TOKEN".into(), tokens.agent.clone()),
            ];
            if *name == "payment-provider" && args.load_rate > 0.0 {
                env.push((
                    "FIREDRILL_PROVIDER_RATE".into(),
                    merchant_rate(args.load_rate).to_string(),
                ));
            }
            components.push(Component {
                id: format!("{name}-{instance}"),
                name: name.to_string(),
                argv,
                env,
                health_url: format!("{}/health", url(*port)),
                metrics_url: format!("{}/metrics", url(*port)),
            });
        }
        let mut loadgen_url = None;
        if args.load_rate > 0.0 {
            let port = ports.take(None, "loadgen metrics", "--base-port")?;
            loadgen_url = Some(url(port));
            components.push(Component {
                id: "loadgen".into(),
                name: "loadgen".into(),
                argv: vec![
                    "loadgen".into(),
                    "--target".into(),
                    url(gateway_port),
                    "--rate".into(),
                    args.load_rate.to_string(),
                    "--seed".into(),
                    args.seed.to_string(),
                    "--metrics-listen".into(),
                    format!("{host}:{port}"),
                ],
                env: vec![
                    (
                        "FIREDRILL_OTLP_ENDPOINT".into(),
                        if args.telemetry_export {
                            url(grpc)
                        } else {
                            String::new()
                        },
                    ),
                    // Its fault agent (traffic-spike and process faults).
                    ("FIREDRILL_CONTROLLER".into(), url(controller_port)),
                    ("FIREDRILL_AGENT_TOKEN".into(), tokens.agent.clone()),
                ],
                health_url: format!("{}/health", url(port)),
                metrics_url: format!("{}/metrics", url(port)),
            });
        }
        Ok(Plan {
            components,
            gateway_url: url(gateway_port),
            query_url: url(query),
            otlp_grpc: url(grpc),
            otlp_http: url(http),
            loadgen_url,
            controller_url: url(controller_port),
            instructor_token_file: tokens.instructor_file.display().to_string(),
            database: shop_db,
            prometheus_bin,
            prometheus_url,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_merchant_rate_is_twice_the_loads_charge_rate() {
        // 20 journeys/s, a tenth of them checkouts: 2 charges/s.
        assert_eq!(merchant_rate(20.0), 4.0);
        assert_eq!(merchant_rate(5.0), 1.0);
        assert_eq!(merchant_rate(0.1), 0.5, "floored");
    }

    #[test]
    fn instances_are_validated_with_the_flag_named() {
        assert_eq!(
            parse_instances("catalog=2, payment=3").unwrap()["payment"],
            3
        );
        for (bad, needle) in [
            ("catalog", "name=count"),
            ("nope=2", "unknown service"),
            ("catalog=0", "1..=8"),
            ("catalog=x", "1..=8"),
            ("gateway=2", "exactly once"),
        ] {
            let err = parse_instances(bad).unwrap_err().to_string();
            assert!(
                err.contains(needle) && err.contains("--instances"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn a_busy_port_is_named_in_the_error() {
        let busy = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = busy.local_addr().unwrap().port();
        let mut ports = Ports::new("127.0.0.1".parse().unwrap(), 7100);
        let err = ports
            .take(Some(port), "gateway", "--gateway-port")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&port.to_string())
                && err.contains("gateway")
                && err.contains("--gateway-port"),
            "{err}"
        );
    }

    #[test]
    fn auto_ports_are_distinct_free_and_below_the_ephemeral_range() {
        let mut ports = Ports::new("127.0.0.1".parse().unwrap(), 0);
        let floor = ephemeral_floor();
        let taken: Vec<u16> = (0..30)
            .map(|i| ports.take(None, &format!("c{i}"), "--base-port").unwrap())
            .collect();
        let distinct: std::collections::BTreeSet<_> = taken.iter().collect();
        assert_eq!(distinct.len(), taken.len(), "{taken:?}");
        assert!(taken.iter().all(|&p| p >= 10_000 && p < floor), "{taken:?}");
        // Fixed defaults are ignored in auto mode rather than checked.
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = held.local_addr().unwrap().port();
        assert_ne!(
            ports.take(Some(busy), "gateway", "--gateway-port").unwrap(),
            busy
        );
    }
}
