//! `cargo xtask bench train`: tokens/s of each model on the CPU backends (Flex and NdArray,
//! measured on the same steps; the diffusion model with `data.max_length = 60`, the MOSES
//! setting, as its cost grows with that length), where a training step's time goes, our own logging and
//! checkpointing overhead (target: at most 2%), and the validity the default run reaches. With
//! `--features cuda` on a machine with a GPU, the same on CUDA.

use std::path::Path;

use anyhow::Context;
use xp_config::{ExperimentConfig, create_config};
use xp_train::{Engine, TrainOptions, TrainOutcome, train_with};

/// The first `n` rows of a CSV file (header kept), written to `dir`.
fn head_csv(src: &Path, n: usize, dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let text =
        std::fs::read_to_string(src).with_context(|| format!("reading {}", src.display()))?;
    let out = dir.join(src.file_name().context("a file")?);
    let lines: Vec<&str> = text.lines().take(n + 1).collect();
    std::fs::write(&out, lines.join("\n") + "\n")?;
    Ok(out)
}

fn config(model: &str, work: &Path, rows: usize) -> anyhow::Result<ExperimentConfig> {
    let data = crate::root().join("fixtures/data");
    let train = head_csv(&data.join("train.csv"), rows, work)?;
    let val = head_csv(&data.join("val.csv"), rows / 10, work)?;
    let mut sets = vec![
        format!("model.model_type={model}"),
        format!("data.train_path={}", train.display()),
        format!("data.val_path={}", val.display()),
        format!("output_dir={}", work.join("results").display()),
        "training.epochs=1".to_owned(),
        "training.sample_size=64".to_owned(),
    ];
    if model == "diffusion" {
        sets.push("data.max_length=60".to_owned());
    }
    let mut config = create_config(None, &sets)?;
    config.data.test_path = None;
    Ok(config)
}

fn run(config: &ExperimentConfig, engine: Engine) -> anyhow::Result<TrainOutcome> {
    Ok(train_with(config, &TrainOptions::default(), engine)?)
}

fn report(label: &str, o: &TrainOutcome) {
    let t = &o.timing;
    let step = t.step_time().as_secs_f64();
    let overhead = (t.logging + t.checkpointing).as_secs_f64();
    let pct = |d: std::time::Duration| 100.0 * d.as_secs_f64() / step.max(1e-9);
    println!(
        "  {label:<28} {:>8.0} tokens/s  {:>5.1} ms/step  forward {:>4.1}%  backward {:>4.1}%  optimizer {:>4.1}%  batching {:>3.1}%  | logging+checkpoints {:>4.2}% of step time (target <= 2%)  validation {:.1}s  sampling {:.1}s",
        t.tokens_per_second(),
        1000.0 * step / t.steps.max(1) as f64,
        pct(t.forward),
        pct(t.backward),
        pct(t.optimizer),
        pct(t.batching),
        100.0 * overhead / step.max(1e-9),
        t.validation.as_secs_f64(),
        t.sampling.as_secs_f64(),
    );
}

pub fn train() -> anyhow::Result<()> {
    let work = crate::interrupt::tempdir()?;
    let rows: usize = std::env::var("XP_BENCH_TRAIN_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    println!(
        "bench train: 1 epoch on {rows} MOSES molecules, default model sizes, {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let mut ratios = Vec::new();
    for model in ["autoregressive", "vae", "gnn", "diffusion"] {
        let config = config(model, work.path(), rows)?;
        println!("{model}:");
        let flex = run(&config, Engine::Flex)?;
        report("cpu (Flex)", &flex);
        let nd = run(&config, Engine::NdArray)?;
        report("cpu (NdArray)", &nd);
        ratios.push((
            model,
            flex.timing.tokens_per_second() / nd.timing.tokens_per_second(),
        ));
        match xp_train::cuda_devices() {
            Ok(n) if n > 0 => {
                let cuda = run(&config, Engine::Cuda(0))?;
                report("cuda:0", &cuda);
                println!(
                    "  cuda / best cpu: {:.1}x",
                    cuda.timing.tokens_per_second()
                        / flex
                            .timing
                            .tokens_per_second()
                            .max(nd.timing.tokens_per_second())
                );
            }
            Ok(_) => println!("  cuda: no device"),
            Err(why) => println!("  cuda: {why}"),
        }
    }
    for (model, r) in ratios {
        println!("Flex / NdArray tokens/s, {model}: {r:.2}x");
    }
    if std::env::var_os("XP_BENCH_TRAIN_SKIP_DEFAULT").is_none() {
        println!("the default experiment (`cargo xtask train`), on the CPU:");
        let mut config = create_config(
            None,
            &[format!(
                "output_dir={}",
                work.path().join("default").display()
            )],
        )?;
        config.device = xp_config::Device::Cpu;
        let started = std::time::Instant::now();
        let outcome = xp_train::train(&config, &TrainOptions::default())?;
        let m = outcome
            .metrics
            .clone()
            .context("a finished run has metrics")?;
        report("default run", &outcome);
        println!(
            "  {:.0} s, {} epochs, best val loss {:.4}, validity {:.3} of {} samples, unique@1k {:?}, novelty {:?}",
            started.elapsed().as_secs_f64(),
            outcome.epochs_completed,
            outcome.best_val_loss.unwrap_or(f64::NAN),
            m.validity,
            m.count,
            m.unique_at_1k,
            m.novelty
        );
    }
    Ok(())
}
