//! Source catalogues as surveys ship them: FITS binary tables (KiDS' multi-band catalogues) or
//! CSV, with the survey's own column names.
//!
//! Only the columns asked for are read: a KiDS catalogue has hundreds of columns and millions of
//! rows, and reading them all would take gigabytes. Names are matched without regard to case, and
//! each role has its aliases (see [`ID_COLUMNS`] and the others).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Object identifiers, in order of preference.
pub const ID_COLUMNS: &[&str] = &["ID", "KIDS_ID", "OBJID", "OBJECT_ID", "SOURCE_ID", "NAME"];
/// The tile an object belongs to.
pub const TILE_COLUMNS: &[&str] = &["KIDS_TILE", "THELI_NAME", "TILE", "TILENAME"];
/// Right ascension (J2000 degrees).
pub const RA_COLUMNS: &[&str] = &["RAJ2000", "ALPHA_J2000", "RA", "RA_DEG"];
/// Declination (J2000 degrees).
pub const DEC_COLUMNS: &[&str] = &["DECJ2000", "DELTA_J2000", "DEC", "DEC_DEG"];
/// Columns kept in the manifest and the project when present, for selections made later.
pub const SELECTION_COLUMNS: &[&str] = &["MAG_AUTO", "Z_B", "Flag", "IMAFLAGS_ISO", "MASK", "SG2DPHOT", "CLASS_STAR"];

/// The rows of one or more catalogue files: identifiers, positions and the numeric columns asked
/// for.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    pub ids: Vec<String>,
    pub ra: Vec<f64>,
    pub dec: Vec<f64>,
    pub tile: Option<Vec<String>>,
    /// Column name (as in the first file) -> one value per row (NaN where missing).
    pub columns: BTreeMap<String, Vec<f64>>,
    /// The file each row came from.
    pub files: Vec<PathBuf>,
    pub row_file: Vec<u32>,
}

impl Catalogue {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// A column's values by name, without regard to case.
    pub fn column(&self, name: &str) -> Option<&[f64]> {
        self.columns.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("catalogue {path}: {detail}")]
    Unreadable { path: PathBuf, detail: String },
    #[error("catalogue {path}: no {role} column (looked for {looked_for})")]
    MissingColumn { path: PathBuf, role: &'static str, looked_for: String },
    #[error("catalogue {path}: no column {name:?} (the selection names it); numeric columns there: {available}")]
    UnknownColumn { path: PathBuf, name: String, available: String },
    #[error("catalogue folder {0} holds no .fits, .fit, .cat or .csv file")]
    EmptyFolder(PathBuf),
}

/// Reads a catalogue file, or every catalogue file of a folder (per-tile catalogues) in name
/// order. Besides identifiers, positions and tiles, it reads the numeric columns in `required`
/// (a selection names them: a missing one is an error that names it) and those of `optional`
/// that are present.
pub fn read(path: &Path, required: &[String], optional: &[&str]) -> Result<Catalogue, CatalogueError> {
    let files = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| CatalogueError::Unreadable { path: path.into(), detail: e.to_string() })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && is_catalogue_name(p))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(CatalogueError::EmptyFolder(path.into()));
        }
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut out = Catalogue::default();
    for (k, file) in files.iter().enumerate() {
        let part = read_one(file, required, optional)?;
        append(&mut out, part, k as u32);
        out.files.push(file.clone());
    }
    Ok(out)
}

fn is_catalogue_name(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("").to_ascii_lowercase();
    [".fits", ".fit", ".cat", ".csv", ".fits.gz", ".cat.fits"].iter().any(|s| name.ends_with(s))
}

fn append(out: &mut Catalogue, part: Catalogue, file: u32) {
    let before = out.len();
    let n = part.len();
    out.ids.extend(part.ids);
    out.ra.extend(part.ra);
    out.dec.extend(part.dec);
    match (&mut out.tile, part.tile) {
        (Some(t), Some(p)) => t.extend(p),
        (Some(t), None) => t.extend(std::iter::repeat_n(String::new(), n)),
        (None, Some(p)) => {
            let mut t = vec![String::new(); before];
            t.extend(p);
            out.tile = Some(t);
        }
        (None, None) => {}
    }
    for (name, values) in part.columns {
        let key = out.columns.keys().find(|k| k.eq_ignore_ascii_case(&name)).cloned().unwrap_or(name);
        let column = out.columns.entry(key).or_insert_with(|| vec![f64::NAN; before]);
        column.extend(values);
    }
    for column in out.columns.values_mut() {
        column.resize(before + n, f64::NAN);
    }
    out.row_file.extend(std::iter::repeat_n(file, n));
}

/// Whether a file is FITS (by its first bytes, so a misnamed file is still read right).
pub fn is_fits(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 9];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok() && &head == b"SIMPLE  ="
        || path.to_string_lossy().to_ascii_lowercase().ends_with(".gz")
}

fn read_one(path: &Path, required: &[String], optional: &[&str]) -> Result<Catalogue, CatalogueError> {
    if !path.exists() {
        return Err(CatalogueError::Unreadable { path: path.into(), detail: "file not found".into() });
    }
    let table = if is_fits(path) { read_fits_table(path)? } else { read_csv_table(path)? };
    table.into_catalogue(path, required, optional)
}

/// A column as read, before roles are assigned.
enum RawColumn {
    Numbers(Vec<f64>),
    Text(Vec<String>),
}

/// Reads one column by its exact name.
type ColumnReader = Box<dyn FnMut(&str) -> Result<RawColumn, String>>;

struct RawTable {
    /// Column names in file order, with a reader for each.
    names: Vec<String>,
    rows: usize,
    read: ColumnReader,
}

fn find<'a>(names: &'a [String], aliases: &[&str]) -> Option<&'a String> {
    aliases.iter().find_map(|a| names.iter().find(|n| n.eq_ignore_ascii_case(a)))
}

impl RawTable {
    fn into_catalogue(
        mut self,
        path: &Path,
        required: &[String],
        optional: &[&str],
    ) -> Result<Catalogue, CatalogueError> {
        let unreadable = |detail: String| CatalogueError::Unreadable { path: path.into(), detail };
        let missing = |role: &'static str, aliases: &[&str]| CatalogueError::MissingColumn {
            path: path.into(),
            role,
            looked_for: aliases.join(", "),
        };
        let names = self.names.clone();
        let ra_name = find(&names, RA_COLUMNS).ok_or_else(|| missing("right ascension", RA_COLUMNS))?;
        let dec_name = find(&names, DEC_COLUMNS).ok_or_else(|| missing("declination", DEC_COLUMNS))?;
        let numbers = |read: &mut ColumnReader, name: &str| -> Result<Vec<f64>, CatalogueError> {
            match read(name).map_err(|e| unreadable(format!("column {name}: {e}")))? {
                RawColumn::Numbers(v) => Ok(v),
                RawColumn::Text(t) => Ok(t.iter().map(|s| s.trim().parse::<f64>().unwrap_or(f64::NAN)).collect()),
            }
        };
        let texts = |read: &mut ColumnReader, name: &str| -> Result<Vec<String>, CatalogueError> {
            match read(name).map_err(|e| unreadable(format!("column {name}: {e}")))? {
                RawColumn::Text(t) => Ok(t.into_iter().map(|s| s.trim().to_string()).collect()),
                RawColumn::Numbers(v) => Ok(v
                    .iter()
                    .map(|x| if x.fract() == 0.0 && x.abs() < 1e15 { format!("{}", *x as i64) } else { format!("{x}") })
                    .collect()),
            }
        };
        let ra = numbers(&mut self.read, ra_name)?;
        let dec = numbers(&mut self.read, dec_name)?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("row").to_string();
        let ids = match find(&names, ID_COLUMNS) {
            Some(name) => texts(&mut self.read, name)?,
            // No identifier column: the row number, made unique by the file's name.
            None => (0..self.rows).map(|r| format!("{stem}-{r}")).collect(),
        };
        let tile = find(&names, TILE_COLUMNS).map(|n| texts(&mut self.read, n)).transpose()?;
        let mut columns = BTreeMap::new();
        for name in required {
            let actual = names.iter().find(|n| n.eq_ignore_ascii_case(name)).ok_or_else(|| {
                CatalogueError::UnknownColumn { path: path.into(), name: name.clone(), available: names.join(", ") }
            })?;
            columns.insert(actual.clone(), numbers(&mut self.read, actual)?);
        }
        for name in optional {
            if let Some(actual) = names.iter().find(|n| n.eq_ignore_ascii_case(name)) {
                if !columns.contains_key(actual) {
                    columns.insert(actual.clone(), numbers(&mut self.read, actual)?);
                }
            }
        }
        let rows = self.rows;
        let check = |what: &str, n: usize| {
            if n == rows {
                Ok(())
            } else {
                Err(unreadable(format!("column {what} has {n} values for {rows} rows")))
            }
        };
        check("ra", ra.len())?;
        check("dec", dec.len())?;
        check("id", ids.len())?;
        Ok(Catalogue { ids, ra, dec, tile, columns, files: Vec::new(), row_file: Vec::new() })
    }
}

fn read_fits_table(path: &Path) -> Result<RawTable, CatalogueError> {
    use fitsio::hdu::HduInfo;
    use fitsio::tables::ColumnDataType as T;
    let unreadable = |detail: String| CatalogueError::Unreadable { path: path.into(), detail };
    let mut file = fitsio::FitsFile::open(path).map_err(|e| unreadable(e.to_string()))?;
    let n = file.num_hdus().map_err(|e| unreadable(e.to_string()))?;
    let mut found = None;
    for k in 0..n {
        let hdu = file.hdu(k).map_err(|e| unreadable(e.to_string()))?;
        if let HduInfo::TableInfo { column_descriptions, num_rows } = &hdu.info {
            found = Some((k, column_descriptions.clone(), *num_rows));
            break;
        }
    }
    let (index, descriptions, rows) =
        found.ok_or_else(|| unreadable("no table HDU (expected a FITS binary table)".into()))?;
    let hdu = file.hdu(index).map_err(|e| unreadable(e.to_string()))?;
    let names: Vec<String> = descriptions.iter().map(|d| d.name.clone()).collect();
    let read = move |name: &str| -> Result<RawColumn, String> {
        let d = descriptions.iter().find(|d| d.name == name).ok_or_else(|| format!("no column {name}"))?;
        let typ = d.data_type.typ;
        match typ {
            T::String | T::Text => {
                hdu.read_col::<String>(&mut file, name).map(RawColumn::Text).map_err(|e| e.to_string())
            }
            T::Logical => hdu
                .read_col::<bool>(&mut file, name)
                .map(|v| RawColumn::Numbers(v.into_iter().map(|b| if b { 1.0 } else { 0.0 }).collect()))
                .map_err(|e| e.to_string()),
            _ if d.data_type.repeat != 1 => {
                Err(format!("holds {} values per row; only scalar columns can be used", d.data_type.repeat))
            }
            T::LongLong | T::UnsignedLongLong | T::Long | T::UnsignedLong | T::Int => hdu
                .read_col::<i64>(&mut file, name)
                .map(|v| RawColumn::Numbers(v.into_iter().map(|x| x as f64).collect()))
                .map_err(|e| e.to_string()),
            _ => hdu.read_col::<f64>(&mut file, name).map(RawColumn::Numbers).map_err(|e| e.to_string()),
        }
    };
    Ok(RawTable { names, rows, read: Box::new(read) })
}

fn read_csv_table(path: &Path) -> Result<RawTable, CatalogueError> {
    let unreadable = |detail: String| CatalogueError::Unreadable { path: path.into(), detail };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_path(path)
        .map_err(|e| unreadable(e.to_string()))?;
    let names: Vec<String> =
        reader.headers().map_err(|e| unreadable(e.to_string()))?.iter().map(str::to_string).collect();
    let mut cells: Vec<Vec<String>> = vec![Vec::new(); names.len()];
    for (k, rec) in reader.records().enumerate() {
        let rec = rec.map_err(|e| unreadable(format!("line {}: {e}", k + 2)))?;
        for (c, column) in cells.iter_mut().enumerate() {
            column.push(rec.get(c).unwrap_or("").to_string());
        }
    }
    let rows = cells.first().map_or(0, Vec::len);
    let index: BTreeMap<String, usize> = names.iter().enumerate().map(|(i, n)| (n.clone(), i)).collect();
    let read = move |name: &str| -> Result<RawColumn, String> {
        let i = *index.get(name).ok_or_else(|| format!("no column {name}"))?;
        let column = &cells[i];
        let numeric = column.iter().all(|s| s.is_empty() || s.parse::<f64>().is_ok());
        if numeric {
            Ok(RawColumn::Numbers(column.iter().map(|s| s.parse::<f64>().unwrap_or(f64::NAN)).collect()))
        } else {
            Ok(RawColumn::Text(column.clone()))
        }
    };
    Ok(RawTable { names, rows, read: Box::new(read) })
}

/// Every scalar column of a file's first table as text (numbers as written by Rust's shortest
/// round-trip format, logicals as true/false); vector columns are left out.
pub fn table_as_text(path: &Path) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    let mut table = read_fits_table(path).map_err(|e| e.to_string())?;
    let mut names = Vec::new();
    let mut columns = Vec::new();
    for name in table.names.clone() {
        match (table.read)(&name) {
            Ok(RawColumn::Text(t)) => columns.push(t),
            Ok(RawColumn::Numbers(v)) => {
                columns.push(v.iter().map(|x| if x.is_nan() { String::new() } else { format!("{x}") }).collect())
            }
            Err(_) => continue,
        }
        names.push(name);
    }
    Ok((names, columns))
}
