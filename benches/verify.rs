//! Throughput and latency of `POST /v1/keys/verify` among 100,000 keys, against a bare hyper
//! server answering a fixed 200, measured in the same run on the same machine.
//!
//! `cargo bench --bench verify [-- --keys N --seconds S --connections C --compare EXE]`
//!
//! `--compare EXE` measures a second Keyward, the same benchmark binary built from another
//! commit, in the same interleaved rounds: the same-run A/B a change to the hot path must pass.
//!
//! Every run also measures Keyward with usage counting off (`KEYWARD_USAGE_COUNTING=off`), in
//! the same rounds on the same database, and prints what counting costs the verify path
//! (counting on / off): the budget is 5%.
//!
//! The servers run in child processes (this binary re-executed), so that their CPU time per
//! request is measured apart from the load generator's.

use std::convert::Infallible;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use keyward::config::{Config, ServerArgs};
use keyward::domain::key;
use keyward::domain::model::{Environment, Key};
use keyward::domain::{Clock, SystemClock};
use rand::Rng;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PEPPER: &str = "bench-pepper-0123456789abcdef0123456789abcdef";

struct Opts {
    keys: usize,
    seconds: u64,
    connections: usize,
    /// Another build of this benchmark, whose Keyward is measured beside this one's.
    compare: Option<std::path::PathBuf>,
}

fn opts() -> Opts {
    let mut o = Opts {
        keys: 100_000,
        seconds: 60,
        connections: 32,
        compare: None,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let next = || args.get(i + 1).and_then(|v| v.parse().ok());
        match args[i].as_str() {
            "--keys" => o.keys = next().unwrap_or(o.keys as u64) as usize,
            "--seconds" => o.seconds = next().unwrap_or(o.seconds),
            "--connections" => o.connections = next().unwrap_or(o.connections as u64) as usize,
            "--compare" => o.compare = args.get(i + 1).map(Into::into),
            _ => {}
        }
        i += 1;
    }
    o
}

fn main() {
    match std::env::var("KEYWARD_BENCH_ROLE").as_deref() {
        Ok("bare") => return run_bare(),
        Ok("axum-hmac") => return run_axum_hmac(),
        Ok("keyward") => return run_keyward(true),
        Ok("keyward-uncounted") => return run_keyward(false),
        _ => {}
    }
    if !std::env::args().any(|a| a == "--bench") {
        println!("verify benchmark: run it with `cargo bench --bench verify`");
        return;
    }
    let o = opts();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(bench(o));
}

/// Child role: a bare hyper server answering 200 to everything, reading the body first.
fn run_bare() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        announce(listener.local_addr().unwrap());
        let stop = exit_when_stdin_closes();
        tokio::pin!(stop);
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => accepted.unwrap(),
                _ = &mut stop => return,
            };
            stream.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let _ = req.into_body().collect().await;
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                        b"{\"valid\":true}",
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
}

/// The calibration server's state: the pepper and the hashes of every key.
type Table = Arc<(key::Pepper, std::collections::HashMap<[u8; 32], usize>)>;

/// Child role: the calibration point, a plain axum handler doing an HMAC lookup among the keys
/// (JSON in, a fixed JSON out), without anything else Keyward does.
fn run_axum_hmac() {
    use axum::Json;
    use axum::extract::State;
    let dir = std::env::var("KEYWARD_BENCH_DIR").unwrap();
    let pepper = key::Pepper::new(1, PEPPER.as_bytes());
    let secrets = std::fs::read_to_string(format!("{dir}/secrets.txt")).unwrap();
    let table: std::collections::HashMap<[u8; 32], usize> = secrets
        .lines()
        .enumerate()
        .map(|(i, s)| (pepper.hash(s).0, i))
        .collect();
    let state: Table = Arc::new((pepper, table));
    #[derive(serde::Deserialize)]
    struct Body {
        key: String,
    }
    async fn check(State(st): State<Table>, Json(body): Json<Body>) -> Json<serde_json::Value> {
        let found = st.1.contains_key(&st.0.hash(&body.key).0);
        Json(serde_json::json!({"valid": found}))
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let app = axum::Router::new()
            .route("/v1/keys/verify", axum::routing::post(check))
            .with_state(state);
        use axum::serve::ListenerExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        announce(listener.local_addr().unwrap());
        let listener = listener.tap_io(|t| {
            let _ = t.set_nodelay(true);
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(exit_when_stdin_closes())
            .await
            .unwrap();
    });
}

/// Child role: Keyward itself on the prepared data directory, counting usage or not.
fn run_keyward(counting: bool) {
    let dir = std::env::var("KEYWARD_BENCH_DIR").unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let app = keyward::Application::build(config_with(&dir, counting))
            .await
            .unwrap();
        announce(app.local_addr());
        app.run_until(exit_when_stdin_closes()).await.unwrap();
    });
}

fn announce(addr: SocketAddr) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {addr}").unwrap();
    out.flush().unwrap();
}

async fn exit_when_stdin_closes() {
    let _ = tokio::task::spawn_blocking(|| {
        let mut s = String::new();
        let _ = std::io::stdin().read_line(&mut s);
    })
    .await;
}

fn config(dir: &str) -> Config {
    config_with(dir, true)
}

fn config_with(dir: &str, counting: bool) -> Config {
    Config::load(&ServerArgs {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        data_dir: Some(dir.into()),
        pepper: Some(PEPPER.into()),
        usage_counting: Some(if counting { "on" } else { "off" }.into()),
        ..Default::default()
    })
    .unwrap()
}

/// What writing keys' last use behind costs, measured through the same storage code as Keyward's
/// flush, in this process: one flush a second among many keys in steady use writes a batch of
/// keys scattered over the table (about 270 for 100,000 keys, each written every five minutes and
/// up to half that more). The verification rounds below rarely see such writes: warm-up writes
/// every key's first use, and the next are due after the rounds are over.
async fn write_behind_cost(store: &keyward::store::Store, secrets: &[String], now: i64) {
    const BATCHES: usize = 40;
    // A key's writes are the interval plus a quarter of it apart, on average (see
    // `write_interval`): a second's share of the keys.
    let mean_interval_s = keyward::verify::LAST_USED_WRITE_INTERVAL_MS * 5 / 4 / 1_000;
    let per_batch = (secrets.len() / mean_interval_s as usize).max(1);
    let mut rng = rand::thread_rng();
    let batches: Vec<Vec<keyward::store::UsageTouch>> = (0..BATCHES)
        .map(|b| {
            (0..per_batch)
                .map(|_| {
                    let secret = &secrets[rng.gen_range(0..secrets.len())];
                    let id = key::parse(secret).unwrap().id;
                    keyward::store::UsageTouch {
                        key_id: format!("key_{id}"),
                        at: now + 1_000 * (b as i64 + 1),
                        ip: Some("127.0.0.1".into()),
                    }
                })
                .collect()
        })
        .collect();
    let before = cpu_of("self");
    for batch in &batches {
        store.touch_keys(batch).await.unwrap();
    }
    let cpu = cpu_of("self") - before;
    let rows = (BATCHES * per_batch) as f64;
    println!(
        "Writing last use behind: {:.1} µs of CPU per key written, in {BATCHES} batches of {per_batch} \
         (one second's batch for {} keys in steady use: {:.1} ms)",
        cpu.as_secs_f64() * 1e6 / rows,
        secrets.len(),
        cpu.as_secs_f64() * 1e3 / BATCHES as f64
    );
}

/// User plus system CPU time of a process (`self` for this one) so far.
fn cpu_of(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn spawn(role: &str, dir: &str) -> Server {
        Server::spawn_from(&std::env::current_exe().unwrap(), role, dir)
    }

    /// A server of `role` run by the benchmark binary `exe`.
    fn spawn_from(exe: &std::path::Path, role: &str, dir: &str) -> Server {
        let mut child = Command::new(exe)
            .env("KEYWARD_BENCH_ROLE", role)
            .env("KEYWARD_BENCH_DIR", dir)
            .env("KEYWARD_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("ready ")
            .expect("the server announces its address")
            .parse()
            .unwrap();
        Server { child, addr }
    }

    /// User plus system CPU time of the server process so far.
    fn cpu(&self) -> Duration {
        cpu_of(&self.child.id().to_string())
    }

    /// Waits until the server is idle: less than 5 ms of CPU in 250 ms.
    async fn settle(&self) -> Duration {
        let start = Instant::now();
        loop {
            let before = self.cpu();
            tokio::time::sleep(Duration::from_millis(250)).await;
            if self.cpu() - before < Duration::from_millis(5) || start.elapsed().as_secs() > 120 {
                return start.elapsed();
            }
        }
    }

    fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

#[derive(Default)]
struct Run {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies_us: Vec<u32>,
    cpu: Duration,
    /// CPU time of the load generator (this process) meanwhile.
    client_cpu: Duration,
}

impl Run {
    /// Adds another round's figures.
    fn add(&mut self, other: Run) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.cpu += other.cpu;
        self.client_cpu += other.client_cpu;
        self.latencies_us.extend(other.latencies_us);
    }

    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn pct(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * p).round() as usize;
        f64::from(self.latencies_us[i]) / 1000.0
    }

    fn cpu_us_per_request(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.requests.max(1) as f64
    }

    fn client_cpu_us_per_request(&self) -> f64 {
        self.client_cpu.as_secs_f64() * 1e6 / self.requests.max(1) as f64
    }
}

/// Drives `connections` keep-alive connections for `seconds`, each posting a verify body for a
/// random key (or, with `sweep`, each key once).
async fn drive(
    server: &Server,
    auth: &str,
    keys: Arc<Vec<String>>,
    connections: usize,
    seconds: u64,
    sweep: bool,
) -> Run {
    let cpu_before = server.cpu();
    let client_before = cpu_of("self");
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let keys = keys.clone();
        let auth = format!("Bearer {auth}");
        let addr = server.addr;
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            let mut lat = Vec::with_capacity(1 << 16);
            let mut errors = 0;
            let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_entropy();
            loop {
                let key = if sweep {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= keys.len() {
                        break;
                    }
                    &keys[i]
                } else {
                    if Instant::now() >= deadline {
                        break;
                    }
                    &keys[rng.gen_range(0..keys.len())]
                };
                let body = format!("{{\"key\":\"{key}\"}}");
                let req = Request::post("/v1/keys/verify")
                    .header("host", "bench")
                    .header("authorization", &auth)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .unwrap();
                let t = Instant::now();
                send.ready().await.unwrap();
                match send.send_request(req).await {
                    Ok(res) => {
                        let ok = res.status().is_success();
                        let body = res
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        // Every target's verdict starts so: a check that costs the load generator
                        // the same whatever the size of the answer.
                        let valid = body.starts_with(b"{\"valid\":true");
                        if !ok || !valid {
                            errors += 1;
                        }
                    }
                    Err(_) => errors += 1,
                }
                lat.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
            }
            (lat, errors)
        }));
    }
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        latencies_us.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed();
    latencies_us.sort_unstable();
    Run {
        requests: latencies_us.len(),
        errors,
        elapsed,
        latencies_us,
        cpu: server.cpu() - cpu_before,
        client_cpu: cpu_of("self") - client_before,
    }
}

async fn bench(o: Opts) {
    let dir = tempfile::tempdir().unwrap();
    let dir_s = dir.path().to_str().unwrap().to_owned();
    println!("Preparing {} keys in a SQLite database...", o.keys);
    let cfg = config(&dir_s);
    let ctx = keyward::connect(&cfg, Arc::new(SystemClock)).await.unwrap();
    let boot = keyward::initialize(&ctx).await.unwrap().unwrap();
    let admin = boot.secret.expose().to_owned();
    let pepper = ctx.verifier.peppers().current().clone();
    let now = SystemClock.now_ms();
    let mut secrets = Vec::with_capacity(o.keys);
    let mut batch = Vec::with_capacity(5_000);
    for i in 0..o.keys {
        let secret = key::generate("kw_live_", &mut rand::rngs::OsRng);
        let id = key::parse(secret.expose()).unwrap().id.to_owned();
        let mut k: Key = boot.key.clone();
        k.id = format!("key_{id}");
        k.api_id = boot.default_api.id.clone();
        k.name = format!("bench {i}");
        k.description = None;
        k.scopes = Vec::new();
        k.environment = Environment::Live;
        k.hash = pepper.hash(secret.expose());
        k.created_at = now;
        k.updated_at = now;
        batch.push(k);
        secrets.push(secret.expose().to_owned());
        if batch.len() == 5_000 {
            ctx.store.create_keys(&batch).await.unwrap();
            batch.clear();
        }
    }
    ctx.store.create_keys(&batch).await.unwrap();
    write_behind_cost(&ctx.store, &secrets, now).await;
    ctx.store.close().await;
    std::fs::write(dir.path().join("secrets.txt"), secrets.join("\n")).unwrap();
    let secrets = Arc::new(secrets);

    // All three servers run at once (idle ones cost nothing) and are measured in interleaved
    // rounds, so that a machine whose speed drifts during the run affects each target alike.
    let kw = Server::spawn("keyward", &dir_s);
    let uncounted = Server::spawn("keyward-uncounted", &dir_s);
    let calib = Server::spawn("axum-hmac", &dir_s);
    let bare_server = Server::spawn("bare", &dir_s);
    let other = o
        .compare
        .as_ref()
        .map(|exe| Server::spawn_from(exe, "keyward", &dir_s));
    println!("Warming Keyward's cache with every key once...");
    let warm = drive(&kw, &admin, secrets.clone(), o.connections, 600, true).await;
    assert_eq!(warm.errors, 0, "every key verifies during warm-up");
    let warm = drive(
        &uncounted,
        &admin,
        secrets.clone(),
        o.connections,
        600,
        true,
    )
    .await;
    assert_eq!(warm.errors, 0, "every key verifies without counting too");
    uncounted.settle().await;
    if let Some(other) = &other {
        let warm = drive(other, &admin, secrets.clone(), o.connections, 600, true).await;
        assert_eq!(
            warm.errors, 0,
            "every key verifies on the compared build too"
        );
        other.settle().await;
    }
    // Warm-up used every key, so Keyward now writes their last use behind (once, then at most
    // once every five minutes per key): let that finish, or it would land in whichever round
    // comes next.
    let settled = kw.settle().await;
    println!(
        "Keyward settled {:.1} s after warm-up (writing {} keys' last use)",
        settled.as_secs_f64(),
        o.keys
    );
    // Random keys for `seconds` on `server`, the same load for each target.
    let load = |server, seconds| {
        drive(
            server,
            &admin,
            secrets.clone(),
            o.connections,
            seconds,
            false,
        )
    };
    load(&calib, 1).await;
    load(&bare_server, 1).await;
    let rounds = o.seconds.div_ceil(2).max(1);
    println!(
        "Measuring each server for {} s in {rounds} interleaved rounds, {} connections...",
        rounds * 2,
        o.connections
    );
    let (mut verify, mut axum_hmac, mut bare) = (Run::default(), Run::default(), Run::default());
    let mut compared = Run::default();
    let mut not_counting = Run::default();
    let mut counting_ratios = Vec::new();
    let mut ab_ratios = Vec::new();
    let mut round_ratios = Vec::new();
    // Keyward's CPU while the other servers are measured: work it does behind (writing last use),
    // which its own rounds do not count and which the others' rounds pay for.
    let mut kw_behind = Duration::ZERO;
    for _ in 0..rounds {
        let v = load(&kw, 2).await;
        let kw_before = kw.cpu();
        let u = load(&uncounted, 2).await;
        counting_ratios.push(v.rps() / u.rps());
        not_counting.add(u);
        if let Some(other) = &other {
            let o = load(other, 2).await;
            ab_ratios.push(v.rps() / o.rps());
            compared.add(o);
        }
        let c = load(&calib, 2).await;
        let b = load(&bare_server, 2).await;
        kw_behind += kw.cpu() - kw_before;
        round_ratios.push(v.rps() / b.rps());
        verify.add(v);
        axum_hmac.add(c);
        bare.add(b);
    }
    for r in [
        &mut verify,
        &mut axum_hmac,
        &mut bare,
        &mut compared,
        &mut not_counting,
    ] {
        r.latencies_us.sort_unstable();
    }
    kw.stop();
    uncounted.stop();
    if let Some(other) = other {
        other.stop();
    }
    calib.stop();
    bare_server.stop();

    println!();
    println!(
        "{:<28} {:>12} {:>9} {:>9} {:>14} {:>14} {:>7}",
        "target", "requests/s", "p50 ms", "p99 ms", "server CPU/req", "client CPU/req", "errors"
    );
    let mut targets = vec![
        ("POST /v1/keys/verify", &verify),
        ("  the same, counting off", &not_counting),
    ];
    if o.compare.is_some() {
        targets.push(("  the same, compared build", &compared));
    }
    targets.extend([
        ("axum + HMAC lookup", &axum_hmac),
        ("bare hyper 200", &bare),
    ]);
    for (name, r) in targets {
        println!(
            "{:<28} {:>12.0} {:>9.3} {:>9.3} {:>11.1} µs {:>11.1} µs {:>7}",
            name,
            r.rps(),
            r.pct(0.50),
            r.pct(0.99),
            r.cpu_us_per_request(),
            r.client_cpu_us_per_request(),
            r.errors
        );
    }
    println!();
    println!(
        "keys: {}  connections: {}  seconds per server: {}",
        o.keys,
        o.connections,
        verify.elapsed.as_secs()
    );
    println!(
        "ratio verify/bare (requests/s): {:.3}",
        verify.rps() / bare.rps()
    );
    println!(
        "ratio calibration/bare (requests/s): {:.3}, verify/calibration: {:.3}",
        axum_hmac.rps() / bare.rps(),
        verify.rps() / axum_hmac.rps()
    );
    println!(
        "Keyward's CPU while the other servers were measured: {:.2} s ({:.1}% of theirs)",
        kw_behind.as_secs_f64(),
        100.0 * kw_behind.as_secs_f64()
            / (axum_hmac.cpu + bare.cpu + not_counting.cpu).as_secs_f64()
    );
    round_ratios.sort_by(f64::total_cmp);
    println!(
        "ratio verify/bare per round: median {:.3}, lowest {:.3}, highest {:.3}",
        round_ratios[round_ratios.len() / 2],
        round_ratios[0],
        round_ratios[round_ratios.len() - 1]
    );
    println!(
        "ratio bare/verify (server CPU per request): {:.3}",
        bare.cpu_us_per_request() / verify.cpu_us_per_request()
    );
    counting_ratios.sort_by(f64::total_cmp);
    println!(
        "usage counting on/off: {:.3} requests/s (rounds: median {:.3}, lowest {:.3}, highest \
         {:.3}), {:.3} server CPU per request; the budget is 0.95 requests/s or more",
        verify.rps() / not_counting.rps(),
        counting_ratios[counting_ratios.len() / 2],
        counting_ratios[0],
        counting_ratios[counting_ratios.len() - 1],
        verify.cpu_us_per_request() / not_counting.cpu_us_per_request()
    );
    if o.compare.is_some() {
        ab_ratios.sort_by(f64::total_cmp);
        println!(
            "A/B: this build / compared build: {:.3} requests/s (rounds: median {:.3}, lowest \
             {:.3}, highest {:.3}), {:.3} server CPU per request",
            verify.rps() / compared.rps(),
            ab_ratios[ab_ratios.len() / 2],
            ab_ratios[0],
            ab_ratios[ab_ratios.len() - 1],
            verify.cpu_us_per_request() / compared.cpu_us_per_request()
        );
    }
    assert_eq!(verify.errors, 0, "every verify answered VALID");
    assert_eq!(
        not_counting.errors, 0,
        "every verify answered VALID without counting"
    );
}
