//! Writes one of every kind of summary into DIR, with known values, for TensorBoard (and the
//! oracle check in `cargo xtask test`) to read: `cargo run -p xp-log --example all_kinds -- DIR`.

use xp_log::{Chart, ChartCategory, ExperimentLogger, HParam, Image, SummaryWriter};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: all_kinds DIR")?;
    let w = SummaryWriter::new(format!("{dir}/writer"))?;
    for step in 0..10 {
        w.add_scalar("loss/train", 1.0 / (1.0 + step as f64), step)?;
    }
    w.add_scalar("special", f64::NAN, 0)?;
    w.add_scalar("special", f64::INFINITY, 1)?;
    w.add_scalar("special", f64::NEG_INFINITY, 2)?;
    w.add_scalar_at("timed", 3.5, 7, 1_700_000_000.25)?;
    for step in 0..3 {
        w.add_scalars(
            "group/run",
            &[("a", step as f64), ("b", -(step as f64))],
            step,
        )?;
    }
    // Histogram values the oracle regenerates: i * 0.37 - 20 for i in 0..1000, plus 0 and a spike.
    let mut values: Vec<f64> = (0..1000).map(|i| f64::from(i) * 0.37 - 20.0).collect();
    values.extend([0.0, 1e-13, 1e6]);
    w.add_histogram("weights/layer0", &values, 5)?;
    let f32s: Vec<f32> = (0..100).map(|i| i as f32 * 0.5).collect();
    w.add_histogram("weights/f32", &f32s, 6)?;
    w.add_histogram_raw(
        "raw",
        -1.0,
        3.0,
        6.0,
        5.0,
        13.0,
        &[0.0, 1.0, 3.0],
        &[1.0, 2.0, 3.0],
        2,
    )?;
    // Images: pixel (y, x, c) = (y * 7 + x * 3 + c * 50) % 256; sizes that tell width from height.
    for (tag, h, w_, c) in [
        ("img/grey", 4u32, 6u32, 1u8),
        ("img/rgb", 5, 3, 3),
        ("img/rgba", 2, 7, 4),
    ] {
        let mut data = Vec::new();
        for y in 0..h {
            for x in 0..w_ {
                for ch in 0..u32::from(c) {
                    data.push(((y * 7 + x * 3 + ch * 50) % 256) as u8);
                }
            }
        }
        w.add_image(
            tag,
            &Image {
                height: h,
                width: w_,
                channels: c,
                data,
            },
            3,
        )?;
    }
    w.add_text("notes", "**bold** and `code` — ünïcode", 4)?;
    w.add_custom_scalars(&[
        ChartCategory {
            title: "losses".to_owned(),
            charts: vec![
                Chart::Multiline {
                    title: "loss and group".to_owned(),
                    tags: vec!["loss/.*".to_owned(), "group/run".to_owned()],
                },
                Chart::Margin {
                    title: "band".to_owned(),
                    value: "loss/train".to_owned(),
                    lower: "special".to_owned(),
                    upper: "timed".to_owned(),
                },
            ],
        },
        ChartCategory {
            title: "empty".to_owned(),
            charts: Vec::new(),
        },
    ])?;
    w.add_hparams(
        &[
            ("lr".to_owned(), HParam::Number(3e-4)),
            ("model".to_owned(), HParam::Text("vae".to_owned())),
            ("dropout".to_owned(), HParam::Bool(true)),
        ],
        &[("hparam/val_loss", 0.25), ("hparam/validity", 0.9)],
        "hp",
    )?;
    w.close()?;

    let mut logger = ExperimentLogger::create(
        format!("{dir}/runs"),
        "demo",
        "name = \"demo\"\n[training]\nepochs = 2\n",
    )?;
    for _ in 0..5 {
        let step = logger.step() as f64;
        logger.log_scalars(&[("train/loss", 2.0 - step * 0.25), ("lr", 1e-4)])?;
        logger.increment_step();
    }
    logger.log_scalar("odd", f64::NAN)?;
    println!("{}", logger.run_dir().display());
    logger.close()?;

    // A session that crashed after its checkpoint at step 4, having logged steps 4..=7 (a text at
    // 6) and torn its last metrics line; the resumed session logs steps 4..=9 again.
    let mut crashed = ExperimentLogger::create(format!("{dir}/runs"), "crashed", "seed = 1\n")?;
    let run_dir = crashed.run_dir().to_path_buf();
    for step in 0..=7 {
        crashed.set_step(step);
        crashed.log_scalar("train/loss", 1.0 + step as f64)?;
        if step == 6 {
            crashed.log_text("samples", "from the crashed session")?;
        }
    }
    crashed.close()?;
    let metrics = run_dir.join(xp_log::METRICS_FILE);
    let mut text = std::fs::read(&metrics)?;
    text.extend_from_slice(br#"{"step":8,"tag":"tra"#);
    std::fs::write(&metrics, text)?;
    let mut resumed = ExperimentLogger::resume(&run_dir, 4, "seed = 2\n")?;
    for step in 4..=9 {
        resumed.set_step(step);
        resumed.log_scalar("train/loss", 100.0 + step as f64)?;
    }
    resumed.close()?;

    // A run that finished (its hparams row logged at the end) and was resumed from its last
    // checkpoint, at step 4, for two more epochs.
    let epochs = |n: f64| [("epochs".to_owned(), HParam::Number(n))];
    let mut finished = ExperimentLogger::create(format!("{dir}/runs"), "extended", "epochs = 2\n")?;
    let run_dir = finished.run_dir().to_path_buf();
    finished.log_hparams(&epochs(2.0), &[("hparam/val_loss", 0.5)])?;
    finished.close()?;
    let mut extended = ExperimentLogger::resume(&run_dir, 4, "epochs = 4\n")?;
    extended.log_hparams(&epochs(4.0), &[("hparam/val_loss", 0.25)])?;
    extended.close()?;
    Ok(())
}
