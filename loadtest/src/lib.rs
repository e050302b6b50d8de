//! Shared pieces of the Stratus load tools: starting a server process pinned
//! to a CPU, the control API over plain HTTP/1.1, and a lean pipelined RESP
//! client that records latencies in an HDR histogram.
//!
//! Everything talks to 127.0.0.1 only.

#![forbid(unsafe_code)]

pub mod report;
pub mod resp;
pub mod run;
pub mod scenario;
pub mod server;

use std::time::Duration;

/// Median of a list of measurements (the middle one; mean of the two middle).
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Formats a duration in microseconds with one decimal.
pub fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}
