//! `taskgate tune CONFIG.toml --out DIR [--trials N] [--method grid|random|tpe] [--steps S]
//! [--jobs J]` and `taskgate tune --resume DIR`.

use anyhow::Result;

use crate::gpu::AdapterRequest;
use crate::tune::{BEST_CONFIG, STUDY_CHART, STUDY_TABLE, TuneOptions, tune};

pub fn run(request: &AdapterRequest, options: TuneOptions) -> Result<()> {
    let summary = tune(request, &options)?;
    println!("{}", summary.table);
    let dir = options.out.display();
    println!(
        "{} trials; table {dir}/{STUDY_TABLE}, chart {dir}/{STUDY_CHART}, best config \
         {dir}/{BEST_CONFIG}",
        summary.records.len()
    );
    Ok(())
}
