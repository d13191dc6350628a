use clap::Parser;
use foundry_gateway_emulator::Emulator;
use foundry_gateway_emulator::cli::{Cli, shutdown_signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    cli.init_logging();
    let running = Emulator::start(cli.into_config()?).await?;
    println!("foundry-emulator listening on {}", running.base_url);
    shutdown_signal().await;
    running.shutdown().await;
    Ok(())
}
