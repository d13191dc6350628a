use clap::Parser;
use foundry_gateway_operator::settings::Settings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    foundry_gateway_operator::run::run(Settings::parse()).await
}
