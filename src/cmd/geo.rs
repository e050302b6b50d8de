//! Geospatial commands on sorted sets: GEOADD, GEODIST, GEOHASH, GEOPOS,
//! GEOSEARCH, GEOSEARCHSTORE, GEORADIUS, GEORADIUSBYMEMBER (and their _RO
//! forms).
//!
//! A position is stored as a sorted-set member whose score is Redis's
//! 52-bit geohash (longitude and latitude interleaved, 26 bits each, over
//! Redis's Web-Mercator latitude range ±85.05112878), so scores, positions,
//! hashes and distances equal Redis's bit for bit: the encoding, decoding,
//! neighbour boxes and haversine distance below follow Redis's
//! `geohash.c` and `geohash_helper.c` step by step.
//!
//! A search runs in phases, as Redis's `georadiusGeneric`: 1 parse (the
//! source key's type first); 2 the search area: the geohash box around the
//! centre at the precision the radius calls for, and its eight neighbours
//! (boxes that cannot hold a match dropped); 3 each box's score range is
//! walked in the sorted set and every member in it decoded and tested
//! against the circle or the rectangle; 4 sorted by distance (ASC/DESC, or
//! ASC when COUNT is given without ANY); 5 replied, or stored as a sorted
//! set (scores: the geohashes, or the distances with STOREDIST) whose size
//! is checked against the room left before it is built.
//!
//! Metering: every member a search visits counts one element (decoded,
//! measured), and every member replied or stored one more.

use bytes::Bytes;

use super::args::{int, is, parse_f64};
use super::{Ctx, OpError, zset};
use crate::partition::Value;
use crate::partition::zset::{Charge, ScoreBound, ScoreRange, ZSetValue};
use crate::resp::{Reply, reply};

const STEP_MAX: u32 = 26;
const LAT_MIN: f64 = -85.05112878;
const LAT_MAX: f64 = 85.05112878;
const LONG_MIN: f64 = -180.0;
const LONG_MAX: f64 = 180.0;
const EARTH_RADIUS_IN_METERS: f64 = 6372797.560856;
const MERCATOR_MAX: f64 = 20037726.37;
const D_R: f64 = std::f64::consts::PI / 180.0;

/// A geohash of `step` bits per coordinate (`step == 0 && bits == 0`: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Hash {
    bits: u64,
    step: u32,
}

impl Hash {
    fn is_zero(self) -> bool {
        self.bits == 0 && self.step == 0
    }
}

/// A geohash box: (min, max) of longitude and latitude.
#[derive(Debug, Clone, Copy, Default)]
struct Area {
    lon: (f64, f64),
    lat: (f64, f64),
}

fn interleave64(xlo: u32, ylo: u32) -> u64 {
    const B: [u64; 5] = [
        0x5555555555555555,
        0x3333333333333333,
        0x0F0F0F0F0F0F0F0F,
        0x00FF00FF00FF00FF,
        0x0000FFFF0000FFFF,
    ];
    const S: [u32; 5] = [1, 2, 4, 8, 16];
    let (mut x, mut y) = (u64::from(xlo), u64::from(ylo));
    for i in (0..5).rev() {
        x = (x | (x << S[i])) & B[i];
        y = (y | (y << S[i])) & B[i];
    }
    x | (y << 1)
}

fn deinterleave64(interleaved: u64) -> u64 {
    const B: [u64; 6] = [
        0x5555555555555555,
        0x3333333333333333,
        0x0F0F0F0F0F0F0F0F,
        0x00FF00FF00FF00FF,
        0x0000FFFF0000FFFF,
        0x00000000FFFFFFFF,
    ];
    const S: [u32; 6] = [0, 1, 2, 4, 8, 16];
    let (mut x, mut y) = (interleaved, interleaved >> 1);
    for i in 0..6 {
        x = (x | (x >> S[i])) & B[i];
        y = (y | (y >> S[i])) & B[i];
    }
    x | (y << 32)
}

/// Redis's `geohashEncode` over the given ranges ((min, max) each).
fn encode(lon_r: (f64, f64), lat_r: (f64, f64), lon: f64, lat: f64, step: u32) -> Option<Hash> {
    if step > 32 || step == 0 {
        return None;
    }
    if !(LONG_MIN..=LONG_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return None;
    }
    if lat < lat_r.0 || lat > lat_r.1 || lon < lon_r.0 || lon > lon_r.1 {
        return None;
    }
    let scale = (1u64 << step) as f64;
    let lat_offset = (lat - lat_r.0) / (lat_r.1 - lat_r.0) * scale;
    let lon_offset = (lon - lon_r.0) / (lon_r.1 - lon_r.0) * scale;
    Some(Hash {
        bits: interleave64(lat_offset as u32, lon_offset as u32),
        step,
    })
}

fn encode_wgs84(lon: f64, lat: f64, step: u32) -> Option<Hash> {
    encode((LONG_MIN, LONG_MAX), (LAT_MIN, LAT_MAX), lon, lat, step)
}

/// Redis's `geohashDecode` over its WGS84 ranges.
fn decode(hash: Hash) -> Option<Area> {
    if hash.is_zero() {
        return None;
    }
    let sep = deinterleave64(hash.bits);
    let (lat_scale, lon_scale) = (LAT_MAX - LAT_MIN, LONG_MAX - LONG_MIN);
    let ilato = sep as u32;
    let ilono = (sep >> 32) as u32;
    let div = (1u64 << hash.step) as f64;
    Some(Area {
        lat: (
            LAT_MIN + (f64::from(ilato) * 1.0 / div) * lat_scale,
            LAT_MIN + ((f64::from(ilato) + 1.0) * 1.0 / div) * lat_scale,
        ),
        lon: (
            LONG_MIN + (f64::from(ilono) * 1.0 / div) * lon_scale,
            LONG_MIN + ((f64::from(ilono) + 1.0) * 1.0 / div) * lon_scale,
        ),
    })
}

/// The centre of a stored score's cell: (longitude, latitude).
fn decode_score(score: f64) -> Option<(f64, f64)> {
    let area = decode(Hash {
        bits: score as u64,
        step: STEP_MAX,
    })?;
    let lon = ((area.lon.0 + area.lon.1) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let lat = ((area.lat.0 + area.lat.1) / 2.0).clamp(LAT_MIN, LAT_MAX);
    Some((lon, lat))
}

/// The 52-bit score of a position.
fn score_of(lon: f64, lat: f64) -> Option<f64> {
    encode_wgs84(lon, lat, STEP_MAX).map(|h| align52(h) as f64)
}

fn align52(h: Hash) -> u64 {
    h.bits << (52 - h.step * 2)
}

fn move_x(h: &mut Hash, d: i8) {
    if d == 0 {
        return;
    }
    let mut x = h.bits & 0xaaaaaaaaaaaaaaaa;
    let y = h.bits & 0x5555555555555555;
    let zz = 0x5555555555555555u64 >> (64 - h.step * 2);
    if d > 0 {
        x = x.wrapping_add(zz + 1);
    } else {
        x |= zz;
        x = x.wrapping_sub(zz + 1);
    }
    x &= 0xaaaaaaaaaaaaaaaau64 >> (64 - h.step * 2);
    h.bits = x | y;
}

fn move_y(h: &mut Hash, d: i8) {
    if d == 0 {
        return;
    }
    let x = h.bits & 0xaaaaaaaaaaaaaaaa;
    let mut y = h.bits & 0x5555555555555555;
    let zz = 0xaaaaaaaaaaaaaaaau64 >> (64 - h.step * 2);
    if d > 0 {
        y = y.wrapping_add(zz + 1);
    } else {
        y |= zz;
        y = y.wrapping_sub(zz + 1);
    }
    y &= 0x5555555555555555u64 >> (64 - h.step * 2);
    h.bits = x | y;
}

/// Neighbours in Redis's search order after the centre: north, south,
/// east, west, north-east, north-west, south-east, south-west.
fn neighbours(h: Hash) -> [Hash; 8] {
    let at = |dx: i8, dy: i8| {
        let mut n = h;
        move_x(&mut n, dx);
        move_y(&mut n, dy);
        n
    };
    [
        at(0, 1),
        at(0, -1),
        at(1, 0),
        at(-1, 0),
        at(1, 1),
        at(-1, 1),
        at(1, -1),
        at(-1, -1),
    ]
}

fn estimate_steps(mut range_meters: f64, lat: f64) -> u32 {
    if range_meters == 0.0 {
        return 26;
    }
    let mut step: i32 = 1;
    while range_meters < MERCATOR_MAX {
        range_meters *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u32
}

fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_IN_METERS * (lat2 * D_R - lat1 * D_R).abs()
}

/// Haversine distance in meters, as Redis computes it.
fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let (lon1r, lon2r) = (lon1 * D_R, lon2 * D_R);
    let v = ((lon2r - lon1r) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let (lat1r, lat2r) = (lat1 * D_R, lat2 * D_R);
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_IN_METERS * a.sqrt().asin()
}

/// What a search covers: a circle (radius) or a rectangle (width,
/// height), in the unit `conversion` turns into meters.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Circle(f64),
    Box(f64, f64),
}

#[derive(Debug, Clone, Copy)]
struct Shape {
    lon: f64,
    lat: f64,
    conversion: f64,
    kind: Kind,
}

impl Shape {
    /// Redis's `geohashBoundingBox`: min lon, min lat, max lon, max lat.
    fn bounds(&self) -> [f64; 4] {
        let (h, w) = match self.kind {
            Kind::Circle(r) => (r, r),
            Kind::Box(w, h) => (h / 2.0, w / 2.0),
        };
        let (height, width) = (self.conversion * h, self.conversion * w);
        let lat_delta = (height / EARTH_RADIUS_IN_METERS) / D_R;
        let top = (width / EARTH_RADIUS_IN_METERS / ((self.lat + lat_delta) * D_R).cos()) / D_R;
        let bottom = (width / EARTH_RADIUS_IN_METERS / ((self.lat - lat_delta) * D_R).cos()) / D_R;
        let south = self.lat < 0.0;
        [
            if south {
                self.lon - bottom
            } else {
                self.lon - top
            },
            self.lat - lat_delta,
            if south {
                self.lon + bottom
            } else {
                self.lon + top
            },
            self.lat + lat_delta,
        ]
    }

    /// Whether a stored score lies in the shape: its position and distance.
    fn within(&self, score: f64) -> Option<(f64, f64, f64)> {
        let (lon, lat) = decode_score(score)?;
        match self.kind {
            Kind::Circle(r) => {
                let d = distance(self.lon, self.lat, lon, lat);
                (d <= r * self.conversion).then_some((lon, lat, d))
            }
            Kind::Box(w, h) => {
                let (wm, hm) = (w * self.conversion, h * self.conversion);
                if lat_distance(lat, self.lat) > hm / 2.0 {
                    return None;
                }
                if distance(lon, lat, self.lon, lat) > wm / 2.0 {
                    return None;
                }
                Some((lon, lat, distance(self.lon, self.lat, lon, lat)))
            }
        }
    }

    /// Redis's `geohashCalculateAreasByShapeWGS84`: the centre box and its
    /// neighbours (zeroed where they cannot hold a match), in search order.
    fn boxes(&self) -> [Hash; 9] {
        let [min_lon, min_lat, max_lon, max_lat] = self.bounds();
        let radius = match self.kind {
            Kind::Circle(r) => r,
            Kind::Box(w, h) => ((w / 2.0) * (w / 2.0) + (h / 2.0) * (h / 2.0)).sqrt(),
        } * self.conversion;
        let mut steps = estimate_steps(radius, self.lat);
        let mut hash = encode_wgs84(self.lon, self.lat, steps).unwrap_or_default();
        let mut n = neighbours(hash);
        let mut area = decode(hash).unwrap_or_default();
        let [north, south, east, west] =
            [n[0], n[1], n[2], n[3]].map(|h| decode(h).unwrap_or_default());
        let decrease = north.lat.1 < max_lat
            || south.lat.0 > min_lat
            || east.lon.1 < max_lon
            || west.lon.0 > min_lon;
        if steps > 1 && decrease {
            steps -= 1;
            hash = encode_wgs84(self.lon, self.lat, steps).unwrap_or_default();
            n = neighbours(hash);
            area = decode(hash).unwrap_or_default();
        }
        // [north, south, east, west, ne, nw, se, sw]
        if steps >= 2 {
            let zero = Hash::default();
            if area.lat.0 < min_lat {
                n[1] = zero;
                n[7] = zero;
                n[6] = zero;
            }
            if area.lat.1 > max_lat {
                n[0] = zero;
                n[4] = zero;
                n[5] = zero;
            }
            if area.lon.0 < min_lon {
                n[3] = zero;
                n[7] = zero;
                n[5] = zero;
            }
            if area.lon.1 > max_lon {
                n[2] = zero;
                n[6] = zero;
                n[4] = zero;
            }
        }
        [hash, n[0], n[1], n[2], n[3], n[4], n[5], n[6], n[7]]
    }
}

/// A member found by a search.
struct Found {
    member: Vec<u8>,
    lon: f64,
    lat: f64,
    dist: f64,
    score: f64,
}

/// Phases 2 and 3: the members of `z` inside `shape`, box by box, up to
/// `limit` (0 = all) as Redis's ANY stops; `visited` counts the members
/// decoded.
fn search_boxes(z: &ZSetValue, shape: &Shape, limit: usize, visited: &mut u64) -> Vec<Found> {
    let boxes = shape.boxes();
    let mut out = Vec::new();
    let mut last = 0usize;
    for (i, b) in boxes.iter().enumerate() {
        if b.is_zero() {
            continue;
        }
        if last != 0 && *b == boxes[last] {
            continue;
        }
        if !out.is_empty() && limit != 0 && out.len() >= limit {
            break;
        }
        let min = align52(*b) as f64;
        let max = align52(Hash {
            bits: b.bits + 1,
            step: b.step,
        }) as f64;
        let range = ScoreRange {
            min: ScoreBound {
                value: min,
                exclusive: false,
            },
            max: ScoreBound {
                value: max,
                exclusive: true,
            },
        };
        if let Some((first, last_rank)) = z.score_ranks(&range) {
            for (m, score) in z.iter_from(first).take(last_rank - first + 1) {
                *visited += 1;
                if let Some((lon, lat, dist)) = shape.within(score) {
                    out.push(Found {
                        member: m.to_vec(),
                        lon,
                        lat,
                        dist,
                        score,
                    });
                }
                if !out.is_empty() && limit != 0 && out.len() >= limit {
                    break;
                }
            }
        }
        last = i;
    }
    out
}

/// A distance as Redis replies it: fixed point, 4 decimals.
fn format_distance(d: f64) -> String {
    if d == 0.0 {
        return "0.0000".into();
    }
    let v = (d * 10000.0).round_ties_even() as i64;
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    format!("{sign}{}.{:04}", a / 10000, a % 10000)
}

/// A coordinate as Redis's `addReplyHumanLongDouble`: 17 decimals, trailing
/// zeros trimmed (a bulk string in RESP2; in RESP3 a double of the same
/// value).
fn coord(resp3: bool, v: f64) -> Reply {
    if resp3 {
        return Reply::Double(v);
    }
    let mut s = format!("{v:.17}");
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    if s == "-0" {
        s = "0".into();
    }
    Reply::bulk(s)
}

fn unit(arg: &[u8]) -> Result<f64, OpError> {
    if is(arg, "m") {
        Ok(1.0)
    } else if is(arg, "km") {
        Ok(1000.0)
    } else if is(arg, "ft") {
        Ok(0.3048)
    } else if is(arg, "mi") {
        Ok(1609.34)
    } else {
        Err(OpError::Static(reply::GEO_UNIT))
    }
}

fn number(arg: &[u8], error: &'static str) -> Result<f64, OpError> {
    parse_f64(arg).ok_or(OpError::Static(error))
}

/// A longitude, latitude pair within Redis's limits.
fn lon_lat(lon: &[u8], lat: &[u8]) -> Result<(f64, f64), OpError> {
    let x = number(lon, reply::NOT_FLOAT)?;
    let y = number(lat, reply::NOT_FLOAT)?;
    if !(LONG_MIN..=LONG_MAX).contains(&x) || !(LAT_MIN..=LAT_MAX).contains(&y) {
        return Err(OpError::Text(format!(
            "ERR invalid longitude,latitude pair {x:.6},{y:.6}"
        )));
    }
    Ok((x, y))
}

/// A radius and its unit: (radius, meters per unit).
fn radius(r: &[u8], u: &[u8]) -> Result<(f64, f64), OpError> {
    let d = number(r, reply::GEO_NEED_RADIUS)?;
    if d < 0.0 {
        return Err(OpError::Static(reply::GEO_NEGATIVE_RADIUS));
    }
    Ok((d, unit(u)?))
}

/// The position of `member` in `z`.
fn member_pos(z: Option<&ZSetValue>, member: &[u8]) -> Result<(f64, f64), OpError> {
    z.and_then(|z| z.score(member))
        .and_then(decode_score)
        .ok_or(OpError::Static(reply::GEO_NO_MEMBER))
}

/// GEOADD key [NX|XX] [CH] longitude latitude member ...: ZADD with the
/// positions' geohashes as scores.
pub fn geoadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let (mut nx, mut xx) = (false, false);
    let mut at = 2;
    while at < args.len() {
        let a = &args[at];
        if is(a, "NX") {
            nx = true;
        } else if is(a, "XX") {
            xx = true;
        } else if !is(a, "CH") {
            break;
        }
        at += 1;
    }
    if !(args.len() - at).is_multiple_of(3) || (nx && xx) || at == args.len() {
        return Err(OpError::Syntax);
    }
    let mut zargs: Vec<Bytes> = Vec::with_capacity(at + (args.len() - at) / 3 * 2);
    zargs.push(Bytes::from_static(b"zadd"));
    zargs.extend_from_slice(&args[1..at]);
    for triple in args[at..].chunks(3) {
        let (lon, lat) = lon_lat(&triple[0], &triple[1])?;
        let score = score_of(lon, lat).ok_or(OpError::Syntax)?;
        zargs.push(Bytes::from((score as u64).to_string()));
        zargs.push(triple[2].clone());
    }
    zset::zadd(ctx, &zargs)
}

/// GEODIST key member1 member2 [M|KM|FT|MI]
pub fn geodist(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let to_meter = match args.len() {
        4 => 1.0,
        5 => unit(&args[4])?,
        _ => return Err(OpError::Syntax),
    };
    let Some(z) = read(ctx, &args[1])? else {
        return Ok(Reply::Nil);
    };
    let (Some(a), Some(b)) = (z.score(&args[2]), z.score(&args[3])) else {
        return Ok(Reply::Nil);
    };
    match (decode_score(a), decode_score(b)) {
        (Some((x1, y1)), Some((x2, y2))) => Ok(Reply::bulk(format_distance(
            distance(x1, y1, x2, y2) / to_meter,
        ))),
        _ => Ok(Reply::Nil),
    }
}

fn read<'a>(ctx: &'a mut Ctx<'_>, key: &[u8]) -> Result<Option<&'a ZSetValue>, OpError> {
    super::read_as(ctx, key)
}

/// GEOHASH key [member ...]: 11-character standard geohashes.
pub fn geohash(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let z = read(ctx, &args[1])?;
    let out = args[2..]
        .iter()
        .map(|m| {
            let Some((lon, lat)) = z.and_then(|z| z.score(m)).and_then(decode_score) else {
                return Reply::Nil;
            };
            let bits = encode((-180.0, 180.0), (-90.0, 90.0), lon, lat, 26).map_or(0, |h| h.bits);
            let s: Vec<u8> = (0..11)
                .map(|i| {
                    let idx = if i == 10 {
                        0
                    } else {
                        (bits >> (52 - (i + 1) * 5)) & 0x1f
                    };
                    ALPHABET[idx as usize]
                })
                .collect();
            Reply::bulk(s)
        })
        .collect::<Vec<_>>();
    ctx.count_extra(out.len());
    Ok(Reply::Array(out))
}

/// GEOPOS key [member ...]
pub fn geopos(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let resp3 = ctx.resp3;
    let z = read(ctx, &args[1])?;
    let out = args[2..]
        .iter()
        .map(
            |m| match z.and_then(|z| z.score(m)).and_then(decode_score) {
                Some((lon, lat)) => Reply::Array(vec![coord(resp3, lon), coord(resp3, lat)]),
                None => Reply::NilArray,
            },
        )
        .collect::<Vec<_>>();
    ctx.count_extra(out.len());
    Ok(Reply::Array(out))
}

/// Which search command runs (Redis's `georadiusGeneric` flags).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    Radius { ro: bool },
    ByMember { ro: bool },
    Search,
    SearchStore,
}

/// GEORADIUS, GEORADIUSBYMEMBER (and _RO), GEOSEARCH, GEOSEARCHSTORE.
pub fn georadius(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let name = &args[0];
    let variant = if is(name, "georadius") {
        Variant::Radius { ro: false }
    } else if is(name, "georadius_ro") {
        Variant::Radius { ro: true }
    } else if is(name, "georadiusbymember") {
        Variant::ByMember { ro: false }
    } else if is(name, "georadiusbymember_ro") {
        Variant::ByMember { ro: true }
    } else if is(name, "geosearch") {
        Variant::Search
    } else {
        Variant::SearchStore
    };
    let src_idx = if variant == Variant::SearchStore {
        2
    } else {
        1
    };
    // Phase 1: the source's type, then the arguments.
    let exists = read(ctx, &args[src_idx])?.is_some();
    let mut store: Option<&Bytes> = None;
    let mut storedist = false;
    let mut center: Option<(f64, f64)> = None;
    let mut kind: Option<(Kind, f64)> = None;
    let base = match variant {
        Variant::Radius { .. } => {
            center = Some(lon_lat(&args[2], &args[3])?);
            let (r, conv) = radius(&args[4], &args[5])?;
            kind = Some((Kind::Circle(r), conv));
            6
        }
        Variant::ByMember { .. } => {
            if exists {
                let z = read(ctx, &args[1])?;
                center = Some(member_pos(z, &args[2])?);
                let (r, conv) = radius(&args[3], &args[4])?;
                kind = Some((Kind::Circle(r), conv));
            }
            5
        }
        Variant::Search => 2,
        Variant::SearchStore => {
            store = Some(&args[1]);
            3
        }
    };
    let search = matches!(variant, Variant::Search | Variant::SearchStore);
    let nostore = matches!(
        variant,
        Variant::Radius { ro: true } | Variant::ByMember { ro: true }
    );
    let (mut withdist, mut withhash, mut withcoord, mut any) = (false, false, false, false);
    let (mut frommember, mut fromloc, mut byradius, mut bybox) = (false, false, false, false);
    let mut sort = 0; // 0 none, 1 asc, 2 desc
    let mut count: i64 = 0;
    let rest = &args[base..];
    let mut i = 0;
    while i < rest.len() {
        let a = &rest[i];
        let more = rest.len() - i - 1;
        if is(a, "WITHDIST") {
            withdist = true;
        } else if is(a, "WITHHASH") {
            withhash = true;
        } else if is(a, "WITHCOORD") {
            withcoord = true;
        } else if is(a, "ANY") {
            any = true;
        } else if is(a, "ASC") {
            sort = 1;
        } else if is(a, "DESC") {
            sort = 2;
        } else if is(a, "COUNT") && more >= 1 {
            count = int(&rest[i + 1])?;
            if count <= 0 {
                return Err(OpError::Static(reply::GEO_COUNT));
            }
            i += 1;
        } else if (is(a, "STORE") || is(a, "STOREDIST")) && more >= 1 && !nostore && !search {
            store = Some(&rest[i + 1]);
            storedist = is(a, "STOREDIST");
            i += 1;
        } else if is(a, "STOREDIST") && variant == Variant::SearchStore {
            storedist = true;
        } else if is(a, "FROMMEMBER") && more >= 1 && search && !fromloc {
            if exists {
                let z = read(ctx, &args[src_idx])?;
                center = Some(member_pos(z, &rest[i + 1])?);
            }
            frommember = true;
            i += 1;
        } else if is(a, "FROMLONLAT") && more >= 2 && search && !frommember {
            center = Some(lon_lat(&rest[i + 1], &rest[i + 2])?);
            fromloc = true;
            i += 2;
        } else if is(a, "BYRADIUS") && more >= 2 && search && !bybox {
            let (r, conv) = radius(&rest[i + 1], &rest[i + 2])?;
            kind = Some((Kind::Circle(r), conv));
            byradius = true;
            i += 2;
        } else if is(a, "BYBOX") && more >= 3 && search && !byradius {
            let w = number(&rest[i + 1], reply::GEO_NEED_WIDTH)?;
            let h = number(&rest[i + 2], reply::GEO_NEED_HEIGHT)?;
            if h < 0.0 || w < 0.0 {
                return Err(OpError::Static(reply::GEO_NEGATIVE_BOX));
            }
            kind = Some((Kind::Box(w, h), unit(&rest[i + 3])?));
            bybox = true;
            i += 3;
        } else {
            return Err(OpError::Syntax);
        }
        i += 1;
    }
    let cmd = String::from_utf8_lossy(name);
    if store.is_some() && (withdist || withhash || withcoord) {
        return Err(OpError::Text(if variant == Variant::SearchStore {
            "ERR GEOSEARCHSTORE is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
                .into()
        } else {
            "ERR STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and WITHCOORD options".into()
        }));
    }
    if search && !(frommember || fromloc) {
        return Err(OpError::Text(format!(
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {cmd}"
        )));
    }
    if search && !(byradius || bybox) {
        return Err(OpError::Text(format!(
            "ERR exactly one of BYRADIUS and BYBOX can be specified for {cmd}"
        )));
    }
    if any && count == 0 {
        return Err(OpError::Static(reply::GEO_ANY_NEEDS_COUNT));
    }
    let (Some((lon, lat)), Some((kind, conversion)), true) = (center, kind, exists) else {
        return Ok(match store {
            Some(dest) => {
                ctx.ks.remove(dest, ctx.now);
                Reply::Int(0)
            }
            None => Reply::Array(Vec::new()),
        });
    };
    if count != 0 && sort == 0 && !any {
        sort = 1;
    }
    // Phases 2 and 3.
    let shape = Shape {
        lon,
        lat,
        conversion,
        kind,
    };
    let limit = if any { count as usize } else { 0 };
    let mut visited = 0;
    let mut found = match read(ctx, &args[src_idx])? {
        Some(z) => search_boxes(z, &shape, limit, &mut visited),
        None => Vec::new(),
    };
    ctx.work += visited;
    // Phase 4.
    if sort != 0 {
        found.sort_by(|a, b| {
            let o = a
                .dist
                .partial_cmp(&b.dist)
                .unwrap_or(std::cmp::Ordering::Equal);
            if sort == 2 { o.reverse() } else { o }
        });
    }
    if count > 0 {
        found.truncate(count as usize);
    }
    ctx.work += found.len() as u64;
    // Phase 5.
    let Some(dest) = store else {
        let resp3 = ctx.resp3;
        let options = withdist || withhash || withcoord;
        let out = found
            .into_iter()
            .map(|f| {
                let member = Reply::bulk(f.member);
                if !options {
                    return member;
                }
                let mut row = vec![member];
                if withdist {
                    row.push(Reply::bulk(format_distance(f.dist / conversion)));
                }
                if withhash {
                    row.push(Reply::Int(f.score as i64));
                }
                if withcoord {
                    row.push(Reply::Array(vec![coord(resp3, f.lon), coord(resp3, f.lat)]));
                }
                Reply::Array(row)
            })
            .collect();
        return Ok(Reply::Array(out));
    };
    let n = found.len();
    if n == 0 {
        ctx.ks.remove(dest, ctx.now);
        return Ok(Reply::Int(0));
    }
    let score = |f: &Found| {
        if storedist {
            f.dist / conversion
        } else {
            f.score
        }
    };
    let room = ctx.room_for_store(dest);
    let size: Charge = found.iter().map(|f| (&f.member[..], score(f))).collect();
    if size.bytes() > room {
        return Err(OpError::Static(reply::OOM));
    }
    let mut z = ZSetValue::default();
    z.reserve(found.len());
    for f in &found {
        z.insert(&f.member, score(f));
    }
    ctx.reserve_store(dest, z.mem_bytes())?;
    ctx.ks.insert(dest, Value::ZSet(Box::new(z)), 0, ctx.now);
    Ok(Reply::Int(n as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_and_positions_match_redis() {
        // GEOADD g 13.361389 38.115556 Palermo on redis-server 7.0.
        assert_eq!(score_of(13.361389, 38.115556), Some(3479099956230698.0));
        let (lon, lat) = decode_score(3479099956230698.0).unwrap();
        assert_eq!(coord(false, lon), Reply::bulk("13.36138933897018433"));
        assert_eq!(coord(false, lat), Reply::bulk("38.11555639549629859"));
    }

    #[test]
    fn distances_format_with_four_decimals() {
        assert_eq!(format_distance(0.0), "0.0000");
        assert_eq!(format_distance(166274.15156960033), "166274.1516");
        assert_eq!(format_distance(0.00004), "0.0000");
        assert_eq!(format_distance(12.5), "12.5000");
    }
}
