//! GeoIP enrichment: country, subdivision and city from a GeoIP2 / GeoLite2 /
//! DB-IP City or Country database, and the autonomous system from an ASN
//! database. Both are memory-mapped, looked up in the event writer (on the
//! request path only the country, and only for a link whose rules ask for
//! it: `GeoDbs::country`), and swapped atomically on reload; a file that cannot be
//! opened is an error at start and keeps the old database on reload.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use maxminddb::{Mmap, PathElement, Reader, geoip2};

/// Why a database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    #[error("{key}: cannot open {path}: {source}")]
    Open {
        key: &'static str,
        path: PathBuf,
        #[source]
        source: maxminddb::MaxMindDbError,
    },
    #[error("{key}: {path} is a {found:?} database, expected {expected}")]
    WrongType {
        key: &'static str,
        path: PathBuf,
        found: String,
        expected: &'static str,
    },
}

/// What a lookup found; every part may be missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GeoInfo {
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<String>,
    /// ISO 3166-2 subdivision code, e.g. `US-CA`.
    pub region: Option<String>,
    /// English city name.
    pub city: Option<String>,
    pub asn: Option<u32>,
}

/// One loaded pair of databases.
#[derive(Default)]
pub struct GeoDbs {
    city: Option<Reader<Mmap>>,
    asn: Option<Reader<Mmap>>,
}

impl std::fmt::Debug for GeoDbs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoDbs")
            .field(
                "city",
                &self.city.as_ref().map(|r| r.metadata.database_type.clone()),
            )
            .field(
                "asn",
                &self.asn.as_ref().map(|r| r.metadata.database_type.clone()),
            )
            .finish()
    }
}

fn open(
    key: &'static str,
    path: &Path,
    expected: &'static [&'static str],
) -> Result<Reader<Mmap>, GeoError> {
    let reader = std::fs::File::open(path)
        .map_err(maxminddb::MaxMindDbError::from)
        .and_then(|file| crate::sys::map::read_only(&file).map_err(maxminddb::MaxMindDbError::Mmap))
        .and_then(Reader::from_source)
        .map_err(|source| GeoError::Open {
            key,
            path: path.to_owned(),
            source,
        })?;
    let found = &reader.metadata.database_type;
    if !expected.iter().any(|e| found.contains(e)) {
        return Err(GeoError::WrongType {
            key,
            path: path.to_owned(),
            found: found.clone(),
            expected: if expected.contains(&"ASN") {
                "an ASN database"
            } else {
                "a City or Country database"
            },
        });
    }
    Ok(reader)
}

impl GeoDbs {
    /// Opens the configured databases.
    pub fn open(city: Option<&Path>, asn: Option<&Path>) -> Result<GeoDbs, GeoError> {
        Ok(GeoDbs {
            city: city
                .map(|p| open("geo.city_db", p, &["City", "Country", "city", "country"]))
                .transpose()?,
            asn: asn
                .map(|p| open("geo.asn_db", p, &["ASN", "asn"]))
                .transpose()?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.city.is_none() && self.asn.is_none()
    }

    /// The country of `ip` (ISO 3166-1 alpha-2, upper case), reading only
    /// that one value of the record.
    pub fn country(&self, ip: IpAddr) -> Option<[u8; 2]> {
        let result = self.city.as_ref()?.lookup(ip).ok()?;
        let code: &str = result
            .decode_path(&[PathElement::Key("country"), PathElement::Key("iso_code")])
            .ok()??;
        match code.as_bytes() {
            &[a, b] => Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()]),
            _ => None,
        }
    }

    /// Whether a City or Country database is loaded (country rules need one).
    pub fn has_countries(&self) -> bool {
        self.city.is_some()
    }

    pub fn lookup(&self, ip: IpAddr) -> GeoInfo {
        let mut info = GeoInfo::default();
        if let Some(reader) = &self.city
            && let Ok(result) = reader.lookup(ip)
            && let Ok(Some(city)) = result.decode::<geoip2::City<'_>>()
        {
            info.country = city.country.iso_code.map(str::to_owned);
            info.region = match (
                city.country.iso_code,
                city.subdivisions.first().and_then(|s| s.iso_code),
            ) {
                (Some(c), Some(s)) => Some(format!("{c}-{s}")),
                _ => None,
            };
            info.city = city.city.names.english.map(str::to_owned);
        }
        if let Some(reader) = &self.asn
            && let Ok(result) = reader.lookup(ip)
            && let Ok(Some(asn)) = result.decode::<geoip2::Asn<'_>>()
        {
            info.asn = asn.autonomous_system_number;
        }
        info
    }
}

/// The databases in use, swapped whole on reload.
#[derive(Debug)]
pub struct Geo {
    city_path: Option<PathBuf>,
    asn_path: Option<PathBuf>,
    current: RwLock<Arc<GeoDbs>>,
}

impl Geo {
    /// The databases of `geo.*`; `None` when neither is set.
    pub fn from_config(config: &crate::config::GeoConfig) -> Result<Option<Geo>, GeoError> {
        if config.city_db.is_none() && config.asn_db.is_none() {
            return Ok(None);
        }
        Geo::open(config.city_db.clone(), config.asn_db.clone()).map(Some)
    }

    /// Opens the databases; an error names the key and the file.
    pub fn open(city: Option<PathBuf>, asn: Option<PathBuf>) -> Result<Geo, GeoError> {
        let dbs = GeoDbs::open(city.as_deref(), asn.as_deref())?;
        Ok(Geo {
            city_path: city,
            asn_path: asn,
            current: RwLock::new(Arc::new(dbs)),
        })
    }

    /// The databases to use now (cheap: one `Arc` clone).
    pub fn current(&self) -> Arc<GeoDbs> {
        self.current
            .read()
            .map(|c| Arc::clone(&c))
            .unwrap_or_default()
    }

    /// Reopens both files and swaps them in; on error the old ones stay.
    pub fn reload(&self) -> Result<(), GeoError> {
        let dbs = GeoDbs::open(self.city_path.as_deref(), self.asn_path.as_deref())?;
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(dbs);
        }
        Ok(())
    }
}
