//! Requests/s and latency through Keyward's gateway, through nginx (`proxy_pass` with upstream
//! keepalive) and straight to the upstream, in one run on the same machine and the same trivial
//! upstream, with the same load generator (`wrk`).
//!
//! `cargo bench --bench gateway [-- --seconds S --rounds R --connections C --threads T]`
//!
//! `wrk` and `nginx` are Debian's packages, installed with apt-get when missing. nginx runs from a
//! configuration of its own in a temporary directory. The upstream and Keyward run in child
//! processes (this binary re-executed). Neither proxy writes an access log. The targets are
//! measured in interleaved rounds, so that a machine whose speed drifts affects each alike.

use std::convert::Infallible;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use keyward::config::{Config, ServerArgs};
use keyward::domain::SystemClock;
use keyward::domain::model::Plan;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PEPPER: &str = "bench-pepper-0123456789abcdef0123456789abcdef";

struct Opts {
    /// Seconds each target is measured, over all rounds.
    seconds: u64,
    rounds: u64,
    connections: u32,
    threads: u32,
}

fn opts() -> Opts {
    let mut o = Opts {
        seconds: 60,
        rounds: 6,
        connections: 64,
        threads: 2,
    };
    let args: Vec<String> = std::env::args().collect();
    for (i, a) in args.iter().enumerate() {
        let next = || args.get(i + 1).and_then(|v| v.parse().ok());
        match a.as_str() {
            "--seconds" => o.seconds = next().unwrap_or(o.seconds),
            "--rounds" => o.rounds = next().unwrap_or(o.rounds).max(1),
            "--connections" => o.connections = next().map_or(o.connections, |n: u64| n as u32),
            "--threads" => o.threads = next().map_or(o.threads, |n: u64| n as u32),
            _ => {}
        }
    }
    o
}

fn main() {
    match std::env::var("KEYWARD_BENCH_ROLE").as_deref() {
        Ok("upstream") => return run_upstream(),
        Ok("keyward") => return run_keyward(),
        _ => {}
    }
    if !std::env::args().any(|a| a == "--bench") {
        println!("gateway benchmark: run it with `cargo bench --bench gateway`");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(bench(opts()));
}

/// Child role: the trivial upstream, a bare hyper server answering a fixed 200.
fn run_upstream() {
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
                let svc = hyper::service::service_fn(|_req: Request<Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                        b"{\"ok\":true}",
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
}

/// Child role: Keyward with its gateway, on the prepared data directory.
fn run_keyward() {
    let dir = std::env::var("KEYWARD_BENCH_DIR").unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let app = keyward::Application::build(config(&dir)).await.unwrap();
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "ready {} {}",
            app.local_addr(),
            app.gateway_addr().unwrap()
        )
        .unwrap();
        out.flush().unwrap();
        drop(out);
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

/// Keyward's settings: the plans without a default rate limit, so that every request of the
/// run is forwarded (a limit would add its headers, and refuse most requests).
fn config(dir: &str) -> Config {
    let mut c = Config::load(&ServerArgs {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        gateway_listen: Some("127.0.0.1:0".parse().unwrap()),
        data_dir: Some(dir.into()),
        pepper: Some(PEPPER.into()),
        ..Default::default()
    })
    .unwrap();
    c.plans = vec![Plan {
        name: "pro".into(),
        api_access: true,
        rate_limit: None,
    }];
    c
}

/// A child process of this binary in `role`, with the address(es) it announced.
struct Server {
    child: Child,
    addrs: Vec<SocketAddr>,
}

impl Server {
    fn spawn(role: &str, dir: &str) -> Server {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env("KEYWARD_BENCH_ROLE", role)
            .env("KEYWARD_BENCH_DIR", dir)
            // No access log, as nginx is run without one.
            .env("KEYWARD_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addrs = line
            .trim()
            .strip_prefix("ready ")
            .expect("the server announces its address")
            .split(' ')
            .map(|a| a.parse().unwrap())
            .collect();
        Server { child, addrs }
    }

    fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// The path of `tool`, installing `package` with apt-get when it is missing.
fn ensure(tool: &str, package: &str) -> String {
    let find = || {
        ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"]
            .iter()
            .map(|d| format!("{d}/{tool}"))
            .find(|p| std::path::Path::new(p).exists())
    };
    if let Some(path) = find() {
        return path;
    }
    println!("Installing {package} (apt-get)...");
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !apt(&["install", "-y", "-qq", package]) {
        apt(&["update", "-qq"]);
        apt(&["install", "-y", "-qq", package]);
    }
    find().unwrap_or_else(|| panic!("{tool} is missing and apt-get could not install {package}"))
}

/// nginx in front of `upstream`, from a configuration in `dir`, on a free port.
fn start_nginx(nginx: &str, dir: &std::path::Path, upstream: SocketAddr) -> (Child, SocketAddr) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = dir.display();
    let conf = format!(
        "worker_processes auto;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\n\
         daemon off;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n\
           access_log off;\n\
           client_body_temp_path {d}/client_body;\n\
           proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n\
           uwsgi_temp_path {d}/uwsgi;\n\
           scgi_temp_path {d}/scgi;\n\
           upstream backend {{ server {upstream}; keepalive 128; }}\n\
           server {{\n\
             listen 127.0.0.1:{port};\n\
             location / {{\n\
               proxy_pass http://backend;\n\
               proxy_http_version 1.1;\n\
               proxy_set_header Connection \"\";\n\
             }}\n\
           }}\n\
         }}\n"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let mut child = Command::new(nginx)
        .args(["-p", &d.to_string(), "-e", &format!("{d}/error.log"), "-c"])
        .arg(&path)
        .stdout(Stdio::null())
        .spawn()
        .expect("nginx starts");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return (child, addr);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "nginx did not start: {}",
        std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
    );
}

/// One wrk run's figures.
#[derive(Debug, Clone, Copy, Default)]
struct Round {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    errors: u64,
}

/// A wrk latency such as `812.00us`, `1.23ms` or `1.01s`, in milliseconds.
fn millis(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = text.split_at(split);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => return None,
    })
}

fn parse_wrk(out: &str) -> Round {
    let mut r = Round::default();
    for line in out.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Requests/sec:"), Some(n)) => r.rps = n.parse().unwrap_or(0.0),
            (Some("50%"), Some(t)) => r.p50_ms = millis(t).unwrap_or(0.0),
            (Some("99%"), Some(t)) => r.p99_ms = millis(t).unwrap_or(0.0),
            (Some(n), Some("requests")) => r.requests = n.parse().unwrap_or(0),
            _ => {}
        }
        if let Some(n) = line.strip_prefix("Non-2xx or 3xx responses:") {
            r.errors += n.trim().parse::<u64>().unwrap_or(0);
        }
        if let Some(rest) = line.strip_prefix("Socket errors:") {
            r.errors += rest
                .split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    r
}

/// `wrk` against `addr` for `seconds`, every request with the same key header.
fn wrk(tool: &str, o: &Opts, addr: SocketAddr, seconds: u64, key: &str) -> Round {
    let out = Command::new(tool)
        .args([
            &format!("-t{}", o.threads),
            &format!("-c{}", o.connections),
            &format!("-d{seconds}s"),
            "--latency",
            "-H",
            &format!("Authorization: Bearer {key}"),
            &format!("http://{addr}/api/v1/items?page=1"),
        ])
        .output()
        .expect("wrk runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let r = parse_wrk(&text);
    assert!(r.rps > 0.0, "wrk measured nothing: {text}");
    r
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn bench(o: Opts) {
    let wrk_tool = ensure("wrk", "wrk");
    let nginx_tool = ensure("nginx", "nginx");
    let dir = tempfile::tempdir().unwrap();
    let dir_s = dir.path().to_str().unwrap().to_owned();
    let ctx = keyward::connect(&config(&dir_s), Arc::new(SystemClock))
        .await
        .unwrap();
    let admin = keyward::initialize(&ctx)
        .await
        .unwrap()
        .unwrap()
        .secret
        .expose()
        .to_owned();
    ctx.store.close().await;

    let upstream = Server::spawn("upstream", &dir_s);
    let up = upstream.addrs[0];
    let kw = Server::spawn("keyward", &dir_s);
    let (management, gateway) = (kw.addrs[0], kw.addrs[1]);
    let http = reqwest::Client::new();
    let api: serde_json::Value = http
        .post(format!("http://{management}/v1/apis"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"name": "Bench", "slug": "bench", "upstream": format!("http://{up}"),
                                 "routes": [{"path_prefix": "/api/v1", "methods": ["GET"]}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key: serde_json::Value = http
        .post(format!("http://{management}/v1/keys"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"name": "bench", "api_id": api["id"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = key["key"].as_str().expect("a key").to_owned();
    let nginx_dir = tempfile::tempdir().unwrap();
    let (mut nginx, nginx_addr) = start_nginx(&nginx_tool, nginx_dir.path(), up);

    // Every target answers before the rounds, the gateway once its routes are read.
    for addr in [gateway, nginx_addr, up] {
        let mut ok = false;
        for _ in 0..100 {
            let res = http
                .get(format!("http://{addr}/api/v1/items"))
                .bearer_auth(&key)
                .send()
                .await;
            if res.is_ok_and(|r| r.status().is_success()) {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ok, "{addr} does not answer 200");
    }
    let per_round = (o.seconds / o.rounds).max(1);
    println!(
        "Measuring each target for {} s in {} interleaved rounds: wrk, {} threads, {} connections, keep-alive",
        per_round * o.rounds,
        o.rounds,
        o.threads,
        o.connections
    );
    let targets = [
        ("Keyward gateway", gateway),
        ("nginx proxy_pass", nginx_addr),
        ("upstream directly", up),
    ];
    for (_, addr) in targets {
        wrk(&wrk_tool, &o, addr, 1, &key);
    }
    let mut rounds: Vec<[Round; 3]> = Vec::new();
    for _ in 0..o.rounds {
        let mut round = [Round::default(); 3];
        for (i, (_, addr)) in targets.iter().enumerate() {
            round[i] = wrk(&wrk_tool, &o, *addr, per_round, &key);
        }
        rounds.push(round);
    }
    kw.stop();
    let _ = nginx.kill();
    let _ = nginx.wait();
    upstream.stop();

    println!();
    println!(
        "{:<20} {:>12} {:>9} {:>9} {:>12} {:>8}",
        "target", "requests/s", "p50 ms", "p99 ms", "requests", "errors"
    );
    for (i, (name, _)) in targets.iter().enumerate() {
        let of = |f: fn(&Round) -> f64| median(rounds.iter().map(|r| f(&r[i])).collect());
        println!(
            "{:<20} {:>12.0} {:>9.3} {:>9.3} {:>12} {:>8}",
            name,
            of(|r| r.rps),
            of(|r| r.p50_ms),
            of(|r| r.p99_ms),
            rounds.iter().map(|r| r[i].requests).sum::<u64>(),
            rounds.iter().map(|r| r[i].errors).sum::<u64>(),
        );
    }
    println!("(medians of the rounds)");
    let ratio = |a: usize, b: usize| {
        let per: Vec<f64> = rounds.iter().map(|r| r[a].rps / r[b].rps).collect();
        let (lo, hi) = per
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), x| (l.min(*x), h.max(*x)));
        (median(per), lo, hi)
    };
    for (label, a, b) in [
        ("gateway/nginx", 0, 1),
        ("gateway/direct", 0, 2),
        ("nginx/direct", 1, 2),
    ] {
        let (m, lo, hi) = ratio(a, b);
        println!("ratio {label} (requests/s): median {m:.3}, lowest {lo:.3}, highest {hi:.3}");
    }
    let errors: u64 = rounds.iter().flat_map(|r| r.iter().map(|x| x.errors)).sum();
    assert_eq!(errors, 0, "every request answered 200");
}
