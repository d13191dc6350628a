//! `kubectl-foundry`: the kubectl plugin of the Foundry gateway operator (`kubectl foundry ...`).

use clap::Parser as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = kubectl_foundry::Cli::parse();
    let env = kubectl_foundry::Env::from_process(&cli).await?;
    print!("{}", kubectl_foundry::execute(cli, env).await?);
    Ok(())
}
