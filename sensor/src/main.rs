//! `fnwatch-sensor`: the Lambda extension. See the crate docs (`lib.rs`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use fnwatch_sensor::config::Config;
use fnwatch_sensor::cpu::Proc;
use fnwatch_sensor::lambda::{ExtensionsApi, NextEvent};
use fnwatch_sensor::sink::{Output, Queue, Shipper};
use fnwatch_sensor::state::{Identity, State};
use fnwatch_sensor::{Error, Result, intake, telemetry};

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn lock(s: &Mutex<State>) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FNWATCH_SENSOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let env: HashMap<String, String> = std::env::vars().collect();
    let result = Config::from_env(&env).and_then(|cfg| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Io {
                what: "starting the async runtime",
                path: String::new(),
                source: e,
            })?;
        rt.block_on(run(cfg))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("fnwatch-sensor: {e}");
            eprintln!("fnwatch-sensor: {e}");
            ExitCode::from(2)
        }
    }
}

/// Where the Telemetry API can reach the listener: `sandbox.localdomain` in
/// Lambda; elsewhere (a stand-in) the host of `AWS_LAMBDA_RUNTIME_API`.
async fn listener_host(runtime_api: &str) -> Result<(IpAddr, String)> {
    let sandbox = tokio::time::timeout(
        Duration::from_millis(200),
        tokio::net::lookup_host("sandbox.localdomain:0"),
    )
    .await;
    if let Some(a) = sandbox.ok().and_then(Result::ok).and_then(|mut a| a.next()) {
        return Ok((a.ip(), "sandbox.localdomain".into()));
    }
    let host = runtime_api
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(runtime_api)
        .trim_matches(['[', ']']);
    let ip = tokio::net::lookup_host(format!("{host}:0"))
        .await
        .ok()
        .and_then(|mut a| a.next())
        .map(|a| a.ip())
        .ok_or_else(|| Error::Config {
            name: "AWS_LAMBDA_RUNTIME_API",
            why: format!("cannot resolve its host `{host}` for the telemetry listener"),
        })?;
    let shown = if ip.is_ipv6() {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    Ok((ip, shown))
}

async fn run(cfg: Config) -> Result<()> {
    let api = ExtensionsApi::new(cfg.runtime_api.clone());
    let reg = api.register(&cfg.extension_name).await?;
    tracing::info!(extension = %cfg.extension_name, function = %cfg.function, "registered with the Extensions API");
    let ident = Identity {
        function: cfg.function.clone(),
        version: cfg.version.clone().or(reg.function_version.clone()),
        region: cfg.region.clone(),
        account: reg
            .account_id
            .clone()
            .filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit())),
        memory_mb: cfg.memory_mb,
    };
    let queue = Queue::new(cfg.buffer_events);
    let state = Arc::new(Mutex::new(
        State::new(ident, Proc::default(), queue.clone())
            .with_init_pid(std::os::unix::process::parent_id()),
    ));

    // The hooks' socket first: the runtime starts while we subscribe.
    let st = state.clone();
    intake::listen(
        &cfg.socket,
        cfg.max_message,
        cfg.sample_bytes,
        Arc::new(move |lines| lock(&st).on_lines(lines, now_ms())),
    )
    .map_err(|e| Error::Io {
        what: "binding the hooks' socket",
        path: cfg.socket.display().to_string(),
        source: e,
    })?;

    // Node.js has no unix datagram sockets in core: its hook writes lines to
    // a stream socket beside the datagram one.
    let stream_socket = intake::stream_path(&cfg.socket);
    let st = state.clone();
    intake::listen_stream(
        &stream_socket,
        cfg.max_message,
        cfg.sample_bytes,
        Arc::new(move |lines| lock(&st).on_lines(lines, now_ms())),
    )
    .map_err(|e| Error::Io {
        what: "binding the hooks' stream socket",
        path: stream_socket.display().to_string(),
        source: e,
    })?;

    let (ip, host) = listener_host(&cfg.runtime_api).await?;
    let st = state.clone();
    let bound = telemetry::listen(
        SocketAddr::new(ip, cfg.telemetry_port),
        Arc::new(move |items, bad| lock(&st).on_telemetry(items, bad, now_ms())),
    )
    .await
    .map_err(|e| Error::Io {
        what: "binding the telemetry listener",
        path: format!("{ip}:{}", cfg.telemetry_port),
        source: e,
    })?;
    let uri = format!("http://{host}:{}", bound.port());
    api.subscribe_telemetry(&reg.id, &uri).await?;
    tracing::info!(uri = %uri, socket = %cfg.socket.display(), "subscribed to the Telemetry API");

    let output = match &cfg.stream {
        Some(stream) => {
            let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .load()
                .await;
            Output::Kinesis {
                client: aws_sdk_kinesis::Client::new(&conf),
                stream: stream.clone(),
                partition_key: cfg.function.clone(),
            }
        }
        None => Output::Stdout,
    };
    let shipper = Shipper::new(queue.clone(), output);
    shipper.ship_at_high_water();
    if !cfg.stats_interval.is_zero() {
        let st = state.clone();
        let every = cfg.stats_interval;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let c = lock(&st).counters();
                tracing::info!(stats = %c, "fnwatch-sensor stats");
            }
        });
    }

    let mut done = lock(&state).done_signal();
    loop {
        match api.next(&reg.id).await? {
            NextEvent::Invoke {
                request_id,
                deadline_ms,
                ..
            } => {
                lock(&state).on_invoke(&request_id, deadline_ms, now_ms());
                // A reading just before the deadline: a timeout may take the
                // runtime away before runtimeDone arrives.
                let st = state.clone();
                let rid = request_id.clone();
                let before = Duration::from_millis((deadline_ms - now_ms() - 30).max(0) as u64);
                let sampler = tokio::spawn(async move {
                    tokio::time::sleep(before).await;
                    lock(&st).sample_cpu(&rid);
                });
                // Lambda sends the next INVOKE only once every extension has
                // asked for it: wait for runtimeDone (the response is out), so
                // the CPU reading and the shipping below never overlap the
                // handler. Bounded by the deadline, plus slack for the record.
                let wait = Duration::from_millis((deadline_ms - now_ms()).max(0) as u64 + 2_000);
                // A runtime that died without a runtimeDone (the sandbox is
                // being reset) ends the wait too: SHUTDOWN comes next.
                let _ = tokio::time::timeout(wait, async {
                    loop {
                        {
                            let s = lock(&state);
                            if s.is_done(&request_id) || !s.runtime_alive() {
                                break;
                            }
                        }
                        tokio::select! {
                            r = done.changed() => if r.is_err() { break },
                            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                        }
                    }
                })
                .await;
                sampler.abort();
                if !shipper.flush(cfg.flush_timeout).await {
                    tracing::warn!(within = ?cfg.flush_timeout, "shipping did not finish before the next event; it goes on in the background");
                }
            }
            NextEvent::Shutdown {
                shutdown_reason,
                deadline_ms,
            } => {
                let reason = shutdown_reason.unwrap_or_default();
                tracing::info!(reason = %reason, "shutting down");
                // Give the last reports a moment, within the deadline.
                let left = |margin: i64| {
                    Duration::from_millis((deadline_ms - now_ms() - margin).max(0) as u64)
                };
                let _ = tokio::time::timeout(left(300).min(Duration::from_millis(500)), async {
                    while lock(&state).open_count() > 0 {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                })
                .await;
                lock(&state).finish_all(now_ms());
                let flushed = shipper.flush(left(50)).await;
                let c = lock(&state).counters();
                tracing::info!(stats = %c, flushed, "fnwatch-sensor stats at shutdown");
                let _ = std::fs::remove_file(&cfg.socket);
                let _ = std::fs::remove_file(&stream_socket);
                if !flushed {
                    return Err(Error::FlushTimeout(left(0)));
                }
                return Ok(());
            }
        }
    }
}
