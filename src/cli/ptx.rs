//! `eqopt compile --backend ptx`: the module, its launch plan and weights, and
//! the roofline estimate of every launch on a GPU profile.

use super::backend::{ArchName, CompileArgs, load, memory_lines, w};
use crate::error::{Error, Result};
use crate::ptx::PtxModel;
use eqopt_ptx::SmTarget;
use std::io::Write;

/// Launches listed in the printed report (all of them are in plan.json).
const REPORT_TOP: usize = 10;

pub(super) fn run_compile_ptx(a: &CompileArgs, out: &mut dyn Write) -> Result<()> {
    let target = match a.arch {
        ArchName::Sm80 => SmTarget::Sm80,
        ArchName::Sm90 => SmTarget::Sm90,
    };
    let (profile, _) = crate::calibrate::resolve_target(&a.target)?;
    let g = load(&a.graph, &a.shapes, a.optimize, &a.target)?;
    let model = PtxModel::compile(&g, target)?;
    let estimates = model.estimate(&profile);
    let total: f64 = estimates.iter().map(|e| e.seconds).sum();
    let c = &model.compiled;
    let mut text = format!(
        "{}: {} kernels for {}, {} lines of PTX; weights image {:.2} MiB\n{}",
        a.graph.display(),
        c.launches.len(),
        target.name(),
        c.ptx.lines().count(),
        c.weights_bytes as f64 / (1024.0 * 1024.0),
        memory_lines(&model.memory)
    );
    text += &format!(
        "roofline estimate on {} (kernels run one after another): {:.1} us in all\n",
        profile.name,
        total * 1e6
    );
    let mut order: Vec<usize> = (0..estimates.len()).collect();
    order.sort_by(|&x, &y| estimates[y].seconds.total_cmp(&estimates[x].seconds).then(x.cmp(&y)));
    text += &format!(
        "{:>6}  {:<22} {:>16} {:>6} {:>8} {:>12} {:>12} {:>10}\n",
        "launch", "entry", "grid", "block", "smem", "flops", "bytes", "est. us"
    );
    for &i in order.iter().take(REPORT_TOP) {
        let (l, e) = (&c.launches[i], &estimates[i]);
        text += &format!(
            "{:>6}  {:<22} {:>16} {:>6} {:>8} {:>12} {:>12} {:>10.2}\n",
            i,
            l.entry,
            format!("{}x{}x{}", l.grid[0], l.grid[1], l.grid[2]),
            l.block[0] * l.block[1] * l.block[2],
            l.shared_bytes,
            e.flops,
            e.bytes,
            e.seconds * 1e6
        );
    }
    if estimates.len() > REPORT_TOP {
        text += &format!("({} more launches in plan.json)\n", estimates.len() - REPORT_TOP);
    }
    w(out, &text)?;
    if let Some(dir) = &a.output {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut plan: serde_json::Value = serde_json::from_str(&c.plan_json()).expect("the plan is JSON");
        plan["module"] = "model.ptx".into();
        plan["weights"] = "weights.bin".into();
        plan["memory"] = serde_json::to_value(model.memory).expect("plain struct");
        plan["estimate"] = serde_json::json!({
            "profile": profile.name,
            "total_s": total,
            "launches": estimates,
        });
        let json = serde_json::to_string_pretty(&plan).expect("plain values") + "\n";
        crate::graph::json::write_atomic(&dir.join("model.ptx"), c.ptx.as_bytes())?;
        crate::graph::json::write_atomic(&dir.join("weights.bin"), &c.weights_image(&model.program))?;
        crate::graph::json::write_atomic(&dir.join("plan.json"), json.as_bytes())?;
        crate::graph::json::write_atomic(&dir.join("program.txt"), model.program.to_string().as_bytes())?;
        w(
            out,
            &format!("wrote {}/model.ptx, plan.json, weights.bin and program.txt\n", dir.display()),
        )?;
    }
    Ok(())
}
