//! Which processes the lab runs, where, and with which flags.
//!
//! [`Plan::new`] decides every process `up` starts: the collector, the
//! controller, each planned service instance (`--instances`) and the load
//! generator, with their ports, flags and environment. Service instances
//! are built in one place, [`Plan::service_instance`], which the
//! supervisor also calls when a service is scaled out: a scaled instance
//! is started exactly like a planned one, on a new free port from the same
//! allocator (which the plan keeps for that).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use parking_lot::Mutex;

use firedrill_loadgen::JourneyKind;
use firedrill_rundir::RunDir;
use firedrill_rundir::formats::MAX_REPLICAS;

use super::args::UpArgs;

/// One process of the lab.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// Where its output goes when not `logs/<id>.log`: the controller's
    /// names scenarios and faults, so it is kept out of learners' sight.
    pub private_log: Option<PathBuf>,
}

impl Component {
    /// Whether this is a shop service (`firedrill service <name>`), which
    /// reports a `service.version` and can be rolled to another one.
    pub fn is_service(&self) -> bool {
        self.argv.first().is_some_and(|a| a == "service")
    }

    /// Where a service listens (its `--listen` flag), for log lines.
    pub fn listen(&self) -> Option<&str> {
        self.argv
            .windows(2)
            .find(|w| w[0] == "--listen")
            .map(|w| w[1].as_str())
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
    /// What every service instance is started with.
    services: InstanceTemplate,
    /// The allocator the planned ports came from; scaled-out instances take
    /// theirs from it too, so no two processes are handed the same port.
    ports: Arc<Mutex<Ports>>,
}

/// What the service instances of a run share, and where each planned one
/// was placed: everything [`Plan::service_instance`] needs.
#[derive(Clone, Debug)]
struct InstanceTemplate {
    host: String,
    seed: u64,
    /// `catalog-2` → its port and ordinal, for every planned instance.
    planned: BTreeMap<String, Placed>,
    /// Ordinals of scaled instances start here, past every planned one.
    scaled_ordinals: u64,
    /// `FIREDRILL_PEERS`: the planned instances, fixed for the run (callers
    /// learn scaled instances from the controller).
    peers: String,
    otlp: String,
    protocol: &'static str,
    controller_url: String,
    agent_token: String,
    shop_db: String,
    queue_db: String,
    /// The payment provider's merchant rate, when there is load.
    provider_rate: Option<f64>,
}

/// Where a planned instance was placed.
#[derive(Clone, Copy, Debug)]
struct Placed {
    port: u16,
    /// Its place among the plan's processes, which fixes its seed.
    ordinal: u64,
}

/// The lab's secrets: the instructor's token (given or generated, kept in
/// the run directory's instructor part), the lab's own learner's token
/// (kept where learners are sent), and the token fault agents present to
/// the controller.
pub struct Tokens {
    pub instructor: String,
    pub instructor_file: PathBuf,
    pub learner: String,
    pub agent: String,
    /// What Prometheus presents when it posts alerts to the controller
    /// (from a file only the lab's owner reads).
    pub alerts: String,
    pub alerts_file: PathBuf,
}

impl Tokens {
    pub fn for_run(args: &UpArgs, run_dir: &RunDir) -> anyhow::Result<Tokens> {
        let instructor = match &args.instructor_token {
            Some(t) if t.trim().len() >= 8 => t.trim().to_string(),
            Some(_) => bail!("--instructor-token must be at least 8 characters"),
            None => random_token(),
        };
        let instructor_file = run_dir.instructor_token();
        firedrill_rundir::write_secret(&instructor_file, &instructor)?;
        let learner = random_token();
        firedrill_rundir::write_secret(&run_dir.learner_token(), &learner)?;
        let alerts = random_token();
        let alerts_file = run_dir.secret("alerts-token");
        firedrill_rundir::write_secret(&alerts_file, &alerts)?;
        Ok(Tokens {
            instructor,
            instructor_file,
            learner,
            agent: random_token(),
            alerts,
            alerts_file,
        })
    }
}

fn random_token() -> String {
    use rand::Rng as _;
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
#[derive(Debug)]
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
    pub fn new(args: &UpArgs, run_dir: &RunDir, tokens: &Tokens) -> anyhow::Result<Plan> {
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
        let mut placed: Vec<(&str, u32)> = Vec::new();
        let mut planned = BTreeMap::new();
        let mut peers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, _) in SERVICES {
            let count = instances.get(*name).copied().unwrap_or(1);
            for i in 1..=count {
                let id = format!("{name}-{i}");
                let port = if *name == "gateway" {
                    gateway_port
                } else {
                    ports.take(None, &id, "--base-port")?
                };
                // The collector and the controller come first in the plan.
                let ordinal = 2 + placed.len() as u64;
                planned.insert(id, Placed { port, ordinal });
                peers.entry(name.to_string()).or_default().push(url(port));
                placed.push((name, i));
            }
        }
        let loadgen_port = if args.load_rate > 0.0 {
            Some(ports.take(None, "loadgen metrics", "--base-port")?)
        } else {
            None
        };
        let peers = firedrill_runtime::config::format_peers(&peers);
        let shop_db = run_dir.shop_db().display().to_string();
        let queue_db = run_dir.queue_db().display().to_string();
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

        let mut plan = Plan {
            components: Vec::new(),
            gateway_url: url(gateway_port),
            query_url: url(query),
            otlp_grpc: url(grpc),
            otlp_http: url(http),
            loadgen_url: loadgen_port.map(url),
            controller_url: url(controller_port),
            instructor_token_file: tokens.instructor_file.display().to_string(),
            database: shop_db.clone(),
            prometheus_bin,
            prometheus_url,
            services: InstanceTemplate {
                host: host.clone(),
                seed: args.seed,
                scaled_ordinals: 2 + planned.len() as u64,
                planned,
                peers: peers.clone(),
                otlp,
                protocol,
                controller_url: url(controller_port),
                agent_token: tokens.agent.clone(),
                shop_db,
                queue_db,
                provider_rate: (args.load_rate > 0.0).then(|| merchant_rate(args.load_rate)),
            },
            ports: Arc::new(Mutex::new(ports)),
        };

        plan.components.push(Component {
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
            private_log: None,
        });
        let alerting = plan.prometheus_url.is_some();
        // A scenario directory only when one is given: the catalogue is
        // built into the binary.
        let scenarios = args
            .scenarios
            .as_ref()
            .map(|dir| {
                let dir = dir
                    .canonicalize()
                    .with_context(|| format!("--scenarios: cannot read {}", dir.display()))?;
                Ok::<_, anyhow::Error>(["--scenarios".to_string(), dir.display().to_string()])
            })
            .transpose()?
            .into_iter()
            .flatten();
        plan.components.push(Component {
            id: "controller".into(),
            name: "controller".into(),
            argv: vec![
                "controller".into(),
                "--listen".into(),
                format!("{host}:{controller_port}"),
                "--state-dir".into(),
                run_dir.controller_state().display().to_string(),
                "--run-dir".into(),
                run_dir.root().display().to_string(),
                "--lease".into(),
                format!("{}ms", args.fault_lease.as_millis()),
            ]
            .into_iter()
            .chain(scenarios)
            .collect(),
            env: vec![
                (
                    "FIREDRILL_INSTRUCTOR_TOKEN".into(),
                    tokens.instructor.clone(),
                ),
                ("FIREDRILL_AGENT_TOKEN".into(), tokens.agent.clone()),
                ("FIREDRILL_LEARNER_TOKEN".into(), tokens.learner.clone()),
                ("FIREDRILL_LEARNER_NAME".into(), args.learner_name.clone()),
                ("FIREDRILL_ALERTS_TOKEN".into(), tokens.alerts.clone()),
                // Prometheus posts its alerts to the controller: an
                // exercise's page waits for a paging alert.
                ("FIREDRILL_ALERTS".into(), alerting.to_string()),
                ("FIREDRILL_QUERY_URL".into(), url(query)),
                // Which instances exist (drains) and where the queue is
                // (dead-letter ops).
                ("FIREDRILL_PEERS".into(), peers),
            ],
            health_url: format!("{}/health", url(controller_port)),
            metrics_url: format!("{}/metrics", url(controller_port)),
            private_log: Some(run_dir.controller_log()),
        });
        for (name, instance) in placed {
            let component = plan.service_instance(name, instance)?;
            plan.components.push(component);
        }
        if let Some(port) = loadgen_port {
            plan.components.push(Component {
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
                private_log: None,
            });
        }
        Ok(plan)
    }

    /// Instance `n` of service `name`: the one way a service process is
    /// described, for the planned instances and for those a scale-out adds.
    ///
    /// A planned instance keeps its planned port (callers' `--peers` name
    /// it as instance `n`, also when it comes back after a scale-in); an
    /// instance beyond the plan gets a new free port each time it starts.
    /// Flags and environment are the same for every instance but for
    /// `--listen`, `--instance` and `--seed`; `FIREDRILL_PEERS` stays the
    /// planned list. The gateway runs exactly once: it owns the public port.
    pub fn service_instance(&self, name: &str, n: u32) -> anyhow::Result<Component> {
        let Some((index, (name, needs))) = SERVICES
            .iter()
            .enumerate()
            .find(|(_, (service, _))| *service == name)
        else {
            bail!("unknown service {name:?}");
        };
        if !(1..=MAX_REPLICAS).contains(&n) {
            bail!("{name}: instance {n} is not 1 to {MAX_REPLICAS}");
        }
        let t = &self.services;
        let id = format!("{name}-{n}");
        let (port, ordinal) = match t.planned.get(&id) {
            Some(placed) => (placed.port, placed.ordinal),
            None if *name == "gateway" => {
                bail!("the gateway runs exactly once (it owns the public port)")
            }
            None => {
                let port = self.ports.lock().take_free(&id)?;
                // Past every planned ordinal, fixed by service and number:
                // the same seed each time this instance starts.
                let ordinal =
                    t.scaled_ordinals + index as u64 * u64::from(MAX_REPLICAS) + u64::from(n - 1);
                (port, ordinal)
            }
        };
        let host = &t.host;
        let url = format!("http://{host}:{port}");
        let mut argv = vec![
            "service".to_string(),
            name.to_string(),
            "--listen".into(),
            format!("{host}:{port}"),
            "--instance".into(),
            n.to_string(),
            "--seed".into(),
            t.seed.wrapping_mul(1000).wrapping_add(ordinal).to_string(),
        ];
        match needs {
            Needs::ShopDb => argv.extend(["--database".into(), t.shop_db.clone()]),
            Needs::QueueDb => argv.extend(["--database".into(), t.queue_db.clone()]),
            Needs::Nothing => {}
        }
        if *name == "gateway" {
            // The edge sheds earlier than the services behind it.
            argv.extend(["--max-in-flight".into(), "512".into()]);
        }
        let mut env = vec![
            ("FIREDRILL_PEERS".into(), t.peers.clone()),
            ("FIREDRILL_OTLP_ENDPOINT".into(), t.otlp.clone()),
            ("FIREDRILL_OTLP_PROTOCOL".into(), t.protocol.into()),
            ("FIREDRILL_CONTROLLER".into(), t.controller_url.clone()),
            ("FIREDRILL_AGENT_TOKEN".into(), t.agent_token.clone()),
        ];
        if *name == "payment-provider"
            && let Some(rate) = t.provider_rate
        {
            env.push(("FIREDRILL_PROVIDER_RATE".into(), rate.to_string()));
        }
        Ok(Component {
            id,
            name: name.to_string(),
            argv,
            env,
            health_url: format!("{url}/health"),
            metrics_url: format!("{url}/metrics"),
            private_log: None,
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

    /// A plan on free ports, as `up --base-port 0` makes one.
    fn plan_with(instances: &str, run_dir: &std::path::Path) -> Plan {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            up: UpArgs,
        }
        let args = Cli::parse_from([
            "up",
            "--base-port",
            "0",
            "--prometheus",
            "off",
            "--load-rate",
            "5",
            "--instances",
            instances,
        ])
        .up;
        let run_dir = RunDir::create(run_dir).unwrap();
        let tokens = Tokens::for_run(&args, &run_dir).unwrap();
        Plan::new(&args, &run_dir, &tokens).unwrap()
    }

    fn flag<'a>(c: &'a Component, name: &str) -> &'a str {
        c.argv
            .windows(2)
            .find(|w| w[0] == name)
            .map(|w| w[1].as_str())
            .unwrap_or_else(|| panic!("{} has no {name}: {:?}", c.id, c.argv))
    }

    fn port(c: &Component) -> u16 {
        c.listen()
            .unwrap()
            .rsplit_once(':')
            .unwrap()
            .1
            .parse()
            .unwrap()
    }

    /// The argv without the three flags that differ between instances.
    fn shape(c: &Component) -> Vec<&str> {
        let mut out = Vec::new();
        let mut args = c.argv.iter();
        while let Some(a) = args.next() {
            if ["--listen", "--instance", "--seed"].contains(&a.as_str()) {
                args.next();
            } else {
                out.push(a.as_str());
            }
        }
        out
    }

    #[test]
    fn planned_instances_are_built_by_service_instance() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan_with("catalog=2,payment=2", dir.path());
        let services: Vec<_> = plan.components.iter().filter(|c| c.is_service()).collect();
        assert_eq!(services.len(), SERVICES.len() + 2);
        for c in services {
            let n: u32 = flag(c, "--instance").parse().unwrap();
            assert_eq!(&plan.service_instance(&c.name, n).unwrap(), c);
        }
        // Seeds as before service_instance existed: the run's seed times
        // 1000 plus the place in the plan (collector, controller, then
        // services in start order).
        let queue = plan.components.iter().find(|c| c.id == "queue-1").unwrap();
        assert_eq!(flag(queue, "--seed"), "1002");
    }

    #[test]
    fn a_scaled_instance_is_the_next_number_on_a_new_free_port_with_the_planned_env() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan_with("catalog=2", dir.path());
        let planned: Vec<&Component> = plan.components.iter().collect();
        let first = planned.iter().find(|c| c.id == "catalog-1").unwrap();

        let third = plan.service_instance("catalog", 3).unwrap();
        assert_eq!(
            (third.id.as_str(), third.name.as_str()),
            ("catalog-3", "catalog")
        );
        assert_eq!(flag(&third, "--instance"), "3");
        assert_eq!(third.env, first.env, "same peers, OTLP, controller, token");
        assert_eq!(shape(&third), shape(first));
        let p = port(&third);
        assert!(
            planned
                .iter()
                .filter(|c| c.listen().is_some())
                .all(|c| port(c) != p),
            "{p} is a planned port"
        );
        TcpListener::bind(("127.0.0.1", p)).expect("the new port is free");
        assert_eq!(third.health_url, format!("http://127.0.0.1:{p}/health"));
        assert_eq!(third.metrics_url, format!("http://127.0.0.1:{p}/metrics"));
        let seeds: Vec<&str> = planned
            .iter()
            .filter(|c| c.is_service())
            .map(|c| flag(c, "--seed"))
            .collect();
        assert!(!seeds.contains(&flag(&third, "--seed")), "{seeds:?}");

        // The next number gets another port; the same number started again
        // gets a new port (the last one may not be released yet) and the
        // same seed.
        let fourth = plan.service_instance("catalog", 4).unwrap();
        assert_ne!(port(&fourth), p);
        assert_ne!(flag(&fourth, "--seed"), flag(&third, "--seed"));
        let again = plan.service_instance("catalog", 3).unwrap();
        assert!(![p, port(&fourth)].contains(&port(&again)));
        assert_eq!(flag(&again, "--seed"), flag(&third, "--seed"));

        // The payment provider's merchant rate comes along too.
        let provider = planned
            .iter()
            .find(|c| c.id == "payment-provider-1")
            .unwrap();
        let second = plan.service_instance("payment-provider", 2).unwrap();
        assert!(
            second
                .env
                .iter()
                .any(|(k, _)| k == "FIREDRILL_PROVIDER_RATE")
        );
        assert_eq!(second.env, provider.env);
    }

    #[test]
    fn instances_the_lab_cannot_run_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan_with("catalog=2", dir.path());
        for (name, n, needle) in [
            ("gateway", 2, "exactly once"),
            ("nope", 1, "unknown service"),
            ("catalog", 0, "1 to 8"),
            ("catalog", 9, "1 to 8"),
        ] {
            let err = plan.service_instance(name, n).unwrap_err().to_string();
            assert!(err.contains(needle), "{name}-{n}: {err}");
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
