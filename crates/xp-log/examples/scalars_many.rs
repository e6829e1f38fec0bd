//! Logs N scalars to DIR and closes the writer: for profiling the write path.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: scalars_many DIR N")?;
    let n: i64 = std::env::args()
        .nth(2)
        .ok_or("usage: scalars_many DIR N")?
        .parse()?;
    let start = std::time::Instant::now();
    let w = xp_log::SummaryWriter::new(dir)?;
    for i in 0..n {
        w.add_scalar("loss", i as f64 * 0.001, i)?;
    }
    w.close()?;
    println!("{:.0} scalars/s", n as f64 / start.elapsed().as_secs_f64());
    Ok(())
}
