use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = bayou::config::Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let result = bayou::config::Config::from_cli(cli).and_then(bayou::server::run);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("bayou: {e}");
            ExitCode::FAILURE
        }
    }
}
