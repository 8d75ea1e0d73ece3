use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = bayou::config::Cli::parse();
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match cli.log_format {
        bayou::config::LogFormat::Json => logs.json().init(),
        bayou::config::LogFormat::Human => logs.init(),
    }
    let (check, probe) = (cli.check_config, cli.health_check);
    let config = match bayou::config::Config::from_cli(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bayou: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if check {
        println!("{}", config.describe());
        return ExitCode::SUCCESS;
    }
    if probe {
        return if bayou::admin::probe(config.admin_listen) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let result = bayou::server::run(config);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("bayou: {e}");
            ExitCode::FAILURE
        }
    }
}
