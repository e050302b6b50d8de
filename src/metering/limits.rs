//! A cache's usage limits (ElastiCache Serverless's `CacheUsageLimits`:
//! data storage and ECPU per second, each a minimum and a maximum): their
//! shape in the control API, their validation and their figures in bytes.
//! Metering enforces them; the registry keeps them per cache.

use serde::{Deserialize, Serialize};

/// Data storage limits, ElastiCache's `DataStorage` shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DataStorageLimit {
    #[serde(default, alias = "Minimum")]
    pub minimum: i64,
    #[serde(default, alias = "Maximum")]
    pub maximum: i64,
    #[serde(default, alias = "Unit")]
    pub unit: StorageUnit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum StorageUnit {
    MB,
    #[default]
    GB,
}

impl StorageUnit {
    pub fn bytes(self) -> u64 {
        match self {
            StorageUnit::MB => 1 << 20,
            StorageUnit::GB => 1 << 30,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            StorageUnit::MB => "MB",
            StorageUnit::GB => "GB",
        }
    }
}

/// ECPU per second limits, ElastiCache's `ECPUPerSecond` shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EcpuLimit {
    #[serde(default, alias = "Minimum")]
    pub minimum: i64,
    #[serde(default, alias = "Maximum")]
    pub maximum: i64,
}

/// A cache's usage limits; 0 or absent = no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UsageLimits {
    #[serde(default, alias = "DataStorage")]
    pub data_storage: DataStorageLimit,
    #[serde(default, alias = "ECPUPerSecond")]
    pub ecpu_per_second: EcpuLimit,
}

/// Largest data storage limit accepted (minimum or maximum), in bytes: 1 PiB,
/// that is 1,048,576 GB or 1,073,741,824 MB. Far above one machine, and far
/// enough below `i64`/`u64` that byte and byte-second sums cannot overflow.
pub const MAX_DATA_STORAGE_BYTES: u64 = 1 << 50;
/// Largest ECPU/s limit accepted (minimum or maximum): one billion, about
/// 70 times ElastiCache Serverless's own ceiling (15 million ECPU/s).
pub const MAX_ECPU_PER_SECOND: i64 = 1_000_000_000;

impl DataStorageLimit {
    /// `figure` of this limit's unit in bytes; `None` if negative or above
    /// [`MAX_DATA_STORAGE_BYTES`] (checked: `figure × unit` never overflows).
    fn bytes_of(&self, figure: i64) -> Option<u64> {
        u64::try_from(figure)
            .ok()?
            .checked_mul(self.unit.bytes())
            .filter(|b| *b <= MAX_DATA_STORAGE_BYTES)
    }
}

impl UsageLimits {
    /// Checks signs, ceilings and order; the message names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        let d = &self.data_storage;
        let e = &self.ecpu_per_second;
        let figures = [
            ("data_storage.minimum", d.minimum),
            ("data_storage.maximum", d.maximum),
            ("ecpu_per_second.minimum", e.minimum),
            ("ecpu_per_second.maximum", e.maximum),
        ];
        for (name, v) in figures {
            if v < 0 {
                return Err(format!("{name} must not be negative (got {v})"));
            }
        }
        let unit = d.unit.name();
        let most = MAX_DATA_STORAGE_BYTES / d.unit.bytes();
        for (name, v) in [figures[0], figures[1]] {
            if d.bytes_of(v).is_none() {
                return Err(format!(
                    "{name} is too large (got {v} {unit}, at most {most} {unit}: 1 PiB)"
                ));
            }
        }
        for (name, v) in [figures[2], figures[3]] {
            if v > MAX_ECPU_PER_SECOND {
                return Err(format!(
                    "{name} is too large (got {v}, at most {MAX_ECPU_PER_SECOND})"
                ));
            }
        }
        if d.maximum > 0 && d.minimum > d.maximum {
            return Err(format!(
                "data_storage.minimum ({}) is above data_storage.maximum ({})",
                d.minimum, d.maximum
            ));
        }
        if e.maximum > 0 && e.minimum > e.maximum {
            return Err(format!(
                "ecpu_per_second.minimum ({}) is above ecpu_per_second.maximum ({})",
                e.minimum, e.maximum
            ));
        }
        Ok(())
    }

    /// The storage maximum in bytes (0 = no limit). Limits that did not pass
    /// [`UsageLimits::validate`] saturate: negative → 0, too large → the ceiling.
    pub fn max_storage_bytes(&self) -> u64 {
        storage_bytes(&self.data_storage, self.data_storage.maximum)
    }

    /// The storage minimum in bytes (billed even when less is stored); same
    /// saturation as [`UsageLimits::max_storage_bytes`].
    pub fn min_storage_bytes(&self) -> u64 {
        storage_bytes(&self.data_storage, self.data_storage.minimum)
    }
}

fn storage_bytes(d: &DataStorageLimit, figure: i64) -> u64 {
    if figure <= 0 {
        return 0;
    }
    d.bytes_of(figure).unwrap_or(MAX_DATA_STORAGE_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_validated() {
        let mut l = UsageLimits::default();
        l.data_storage.minimum = 5;
        l.data_storage.maximum = 2;
        assert!(l.validate().unwrap_err().contains("above"));
        l.data_storage.maximum = 0;
        l.validate().unwrap();
        l.ecpu_per_second.maximum = -1;
        assert!(l.validate().unwrap_err().contains("negative"));
    }

    /// Storage figures × unit never overflow: anything above 1 PiB is refused,
    /// and unvalidated limits saturate instead of wrapping.
    #[test]
    fn limit_arithmetic_is_checked() {
        let storage = |minimum, maximum, unit| UsageLimits {
            data_storage: DataStorageLimit {
                minimum,
                maximum,
                unit,
            },
            ..UsageLimits::default()
        };
        let ok = [
            storage(0, 1 << 20, StorageUnit::GB),
            storage(1 << 20, 1 << 20, StorageUnit::GB),
            storage(0, 1 << 30, StorageUnit::MB),
        ];
        for l in ok {
            l.validate().unwrap();
            assert_eq!(l.max_storage_bytes(), MAX_DATA_STORAGE_BYTES);
        }
        let too_large = [
            storage(0, (1 << 20) + 1, StorageUnit::GB),
            storage((1 << 20) + 1, 0, StorageUnit::GB),
            storage(0, (1 << 30) + 1, StorageUnit::MB),
            storage(0, 1 << 40, StorageUnit::GB),
            storage(0, 1 << 34, StorageUnit::GB),
            storage(0, i64::MAX, StorageUnit::GB),
            storage(i64::MAX, i64::MAX, StorageUnit::MB),
        ];
        for l in too_large {
            let e = l.validate().unwrap_err();
            assert!(e.contains("too large"), "{l:?}: {e}");
            assert_eq!(
                l.max_storage_bytes().max(l.min_storage_bytes()),
                MAX_DATA_STORAGE_BYTES
            );
        }
        let negative = storage(-1, i64::MIN, StorageUnit::GB);
        assert!(negative.validate().is_err());
        assert_eq!(
            (negative.min_storage_bytes(), negative.max_storage_bytes()),
            (0, 0)
        );
        assert_eq!(storage(3, 10, StorageUnit::GB).min_storage_bytes(), 3 << 30);

        let mut l = UsageLimits::default();
        l.ecpu_per_second.maximum = MAX_ECPU_PER_SECOND;
        l.validate().unwrap();
        l.ecpu_per_second.maximum = MAX_ECPU_PER_SECOND + 1;
        assert!(l.validate().unwrap_err().contains("too large"));
        l.ecpu_per_second.maximum = 0;
        l.ecpu_per_second.minimum = i64::MAX;
        assert!(l.validate().unwrap_err().contains("too large"));
    }
}
