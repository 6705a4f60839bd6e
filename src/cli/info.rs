//! `taskgate info`: every adapter, the chosen one, its limits and features.

use anyhow::Result;
use serde::Serialize;

use crate::gpu::{AdapterRequest, AdapterSummary, DeviceReport, Gpu, adapter, list_adapters};

#[derive(Serialize)]
struct InfoReport {
    adapters: Vec<AdapterSummary>,
    chosen: DeviceReport,
}

pub fn run(request: &AdapterRequest, json: bool) -> Result<()> {
    let backends = adapter::default_backends();
    let adapters: Vec<AdapterSummary> = pollster::block_on(list_adapters(backends))
        .iter()
        .map(|a| AdapterSummary::of(&a.get_info()))
        .collect();
    let gpu = pollster::block_on(Gpu::new(request))?;
    let report = InfoReport {
        adapters,
        chosen: gpu.report(),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("adapters:");
    for a in &report.adapters {
        let mark =
            if a.name == report.chosen.adapter.name && a.backend == report.chosen.adapter.backend {
                "*"
            } else {
                " "
            };
        println!(
            " {mark} {} [{}, {}] driver: {} {}",
            a.name, a.backend, a.device_type, a.driver, a.driver_info
        );
    }
    let c = &report.chosen;
    println!(
        "\nchosen: {} ({}, {})",
        c.adapter.name, c.adapter.backend, c.adapter.device_type
    );
    println!(
        "subgroup size: {}..{}",
        c.subgroup_size[0], c.subgroup_size[1]
    );
    println!("limits:");
    let limits = serde_json::to_value(&c.limits)?;
    if let Some(map) = limits.as_object() {
        for (name, value) in map {
            println!("  {name:<40} {value}");
        }
    }
    println!("features used:    {}", join_or_none(&c.features));
    println!("features missing: {}", join_or_none(&c.missing_features));
    Ok(())
}

fn join_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}
