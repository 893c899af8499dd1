//! `depin audit-epoch` and `depin claims`: read a coordinator's store.

use anyhow::Context;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct AuditArgs {
    /// The coordinator's database: sqlite://FILE or postgres://…
    #[arg(long, env = "DEPIN_DATABASE_URL")]
    database_url: String,
    /// The closed epoch to recompute.
    #[arg(long)]
    epoch: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct ClaimsArgs {
    /// The coordinator's database: sqlite://FILE or postgres://…
    #[arg(long, env = "DEPIN_DATABASE_URL")]
    database_url: String,
    /// The closed epoch whose claim tree to write.
    #[arg(long)]
    epoch: u64,
    /// Output file (OpenZeppelin StandardMerkleTree dump, format standard-v1).
    #[arg(long)]
    out: PathBuf,
}

/// Opens an existing store read-only: an auditor needs no write access, and
/// nothing can be created or changed by accident.
async fn open_existing(url: &str) -> anyhow::Result<depin_store::Store> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or(path);
        anyhow::ensure!(
            std::path::Path::new(path).is_file(),
            "--database-url: no store at {path}"
        );
    }
    depin_store::Store::open_read_only(url)
        .await
        .with_context(|| {
            format!(
                "--database-url: cannot open {}",
                depin_store::redact_url(url)
            )
        })
}

pub async fn run_audit(a: AuditArgs) -> anyhow::Result<()> {
    let store = open_existing(&a.database_url).await?;
    let report = depin_coordinator::audit::audit_epoch(&store, a.epoch).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if report.passed() {
        println!(
            "epoch {}: OK — recomputed from the stored inputs, byte-identical\n  policy {}\n  {} reward lines, sheet hash {}\n  claim root {}",
            report.epoch, report.policy_id, report.devices, report.sheet_hash, report.claim_root
        );
    } else {
        println!(
            "epoch {}: MISMATCH — the stored results differ from a recomputation:",
            report.epoch
        );
        for d in &report.differences {
            println!("  - {d}");
        }
    }
    store.close().await;
    anyhow::ensure!(
        report.passed(),
        "audit of epoch {} failed: {} difference(s)",
        a.epoch,
        report.differences.len()
    );
    Ok(())
}

pub async fn run_claims(a: ClaimsArgs) -> anyhow::Result<()> {
    let store = open_existing(&a.database_url).await?;
    let tree = depin_coordinator::claim_tree(&store, a.epoch).await?;
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("--out: cannot create {}", dir.display()))?;
    }
    // Write then rename, so a crash never leaves half a claim file.
    let tmp = a.out.with_extension("json.tmp");
    std::fs::write(&tmp, tree.to_json())
        .with_context(|| format!("--out: cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &a.out)
        .with_context(|| format!("--out: cannot write {}", a.out.display()))?;
    println!(
        "epoch {}: {} claims, root {} → {}",
        a.epoch,
        tree.len(),
        depin_merkle::to_hex(&tree.root()),
        a.out.display()
    );
    store.close().await;
    Ok(())
}
