//! `ringkvd`: run one ringkv storage node. See `ringkvd --help` and ringkvd.example.toml.

use clap::Parser;
use ringkv_server::config::LogFormat;
use ringkv_server::{Args, Config, node};
use tokio_util::sync::CancellationToken;
use tracing::info;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs.json().init(),
    }
    let config = Config::load(&args)?;
    ringkv_server::clock::init_from_env().map_err(anyhow::Error::msg)?;
    if args.print_config {
        print!("{}", toml::to_string_pretty(&config)?);
        return Ok(());
    }
    if args.print_admin_token {
        let secret = node::security::Security::load(&config.security)?;
        let Some(token) = ringkv_server::ops::admin::admin_token(secret.cluster_secret()) else {
            anyhow::bail!("no cluster secret is configured: the admin port takes no token");
        };
        println!("{token}");
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            info!("shutdown requested");
            // Before anything stops: systemd learns the stop is a graceful one under way.
            ringkv_server::ops::systemd::notify("STOPPING=1");
            signal.cancel();
        });
        node::run(config, shutdown).await?;
        Ok(())
    })
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
