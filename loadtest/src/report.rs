//! Writing a run's results: JSON (everything), CSV (one row per second and
//! series) and a PNG chart with throughput, p99 latency and partitions over
//! time, so a split under load can be seen.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use crate::run::Report;

/// Family name the chart's embedded font is registered under.
const FONT: &str = "stratus-sans";

/// Writes `<stem>.json`, `<stem>.csv` and `<stem>.png`.
pub fn write_all(report: &Report, stem: &Path) -> Result<(), String> {
    if let Some(dir) = stem.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    std::fs::write(stem.with_extension("json"), json).map_err(|e| e.to_string())?;
    std::fs::write(stem.with_extension("csv"), csv(report)).map_err(|e| e.to_string())?;
    chart(report, &stem.with_extension("png"))
}

/// One row per second and series: workloads, then caches.
pub fn csv(report: &Report) -> String {
    let mut out = String::from(
        "second,kind,name,ops,target_rate,p50_us,p99_us,p999_us,max_us,throttled,oom,other_errors,ecpu_per_sec,partitions,bytes\n",
    );
    for s in &report.seconds {
        for (name, w) in &s.workloads {
            let l = &w.latency;
            let _ = writeln!(
                out,
                "{},workload,{name},{},{},{},{},{},{},{},{},{},,,",
                s.t,
                w.ops,
                w.target_rate,
                l.p50_us,
                l.p99_us,
                l.p999_us,
                l.max_us,
                w.errors.throttled,
                w.errors.oom,
                w.errors.other
            );
        }
        for (name, c) in &s.caches {
            let _ = writeln!(
                out,
                "{},cache,{name},,,,,,,,,,{:.3},{},{}",
                s.t, c.ecpu_per_sec, c.partitions, c.bytes
            );
        }
    }
    out
}

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
    });
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

type Series = Vec<(String, Vec<(f64, f64)>)>;

fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    title: &str,
    y_label: &str,
    series: &Series,
    x_max: f64,
) -> Result<(), String> {
    let y_max = series
        .iter()
        .flat_map(|(_, v)| v.iter().map(|p| p.1))
        .fold(0.0f64, f64::max)
        .max(1.0)
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 22))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max.max(1.0), 0f64..y_max)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc(y_label)
        .label_style((FONT, 14))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Throughput, p99 and partitions over time, one panel each.
pub fn chart(report: &Report, path: &Path) -> Result<(), String> {
    register_font();
    let x_max = report.seconds.last().map_or(1.0, |s| s.t as f64);
    let mut ops: Series = Vec::new();
    let mut p99: Series = Vec::new();
    let mut parts: Series = Vec::new();
    let mut ecpu: Series = Vec::new();
    for name in report.totals.keys() {
        let pts = |f: &dyn Fn(&crate::run::WorkloadSecond) -> f64| -> Vec<(f64, f64)> {
            report
                .seconds
                .iter()
                .filter_map(|s| s.workloads.get(name).map(|w| (s.t as f64, f(w))))
                .collect()
        };
        ops.push((format!("{name} ops/s"), pts(&|w| w.ops as f64)));
        p99.push((
            format!("{name} p99"),
            pts(&|w| w.latency.p99_us as f64 / 1000.0),
        ));
    }
    let caches: std::collections::BTreeSet<&String> = report
        .seconds
        .iter()
        .flat_map(|s| s.caches.keys())
        .collect();
    for cache in caches {
        let pts = |f: &dyn Fn(&crate::run::CacheSecond) -> f64| -> Vec<(f64, f64)> {
            report
                .seconds
                .iter()
                .filter_map(|s| s.caches.get(cache).map(|c| (s.t as f64, f(c))))
                .collect()
        };
        parts.push((format!("{cache} partitions"), pts(&|c| c.partitions as f64)));
        ecpu.push((format!("{cache} ECPU/s"), pts(&|c| c.ecpu_per_sec)));
    }
    let root = BitMapBackend::new(path, (1200, 1200)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let areas = root.split_evenly((4, 1));
    panel(
        &areas[0],
        &format!("{}: throughput", report.scenario.name),
        "ops/s",
        &ops,
        x_max,
    )?;
    panel(&areas[1], "p99 latency", "ms", &p99, x_max)?;
    panel(&areas[2], "ECPU/s metered", "ECPU/s", &ecpu, x_max)?;
    panel(&areas[3], "partitions", "partitions", &parts, x_max)?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}
